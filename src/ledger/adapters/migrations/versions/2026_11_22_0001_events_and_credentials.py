"""Events table (eventsourcing's layout) and the inline credentials table.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The composite type and table below are what eventsourcing.postgres 9.5 creates for an
    # application named "Ledger"; a test compares them with the library's own DDL.
    op.execute(
        "DO $$ BEGIN "
        "CREATE TYPE stored_event_uuid AS "
        "(originator_id uuid, originator_version bigint, topic text, state bytea); "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    op.execute(
        "CREATE TABLE ledger_events ("
        "originator_id uuid NOT NULL, "
        "originator_version bigint NOT NULL, "
        "topic text, "
        "state bytea, "
        "notification_id bigserial, "
        "PRIMARY KEY (originator_id, originator_version)) "
        "WITH (autovacuum_enabled = true, autovacuum_vacuum_threshold = 100000000, "
        "autovacuum_vacuum_scale_factor = 0.5, autovacuum_analyze_threshold = 1000, "
        "autovacuum_analyze_scale_factor = 0.01)"
    )
    op.execute(
        "CREATE UNIQUE INDEX ledger_events_notification_id_idx "
        "ON ledger_events (notification_id ASC)"
    )
    op.create_table(
        "ledger_credentials",
        sa.Column("credential_id", sa.Uuid(), primary_key=True),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("token_prefix", sa.Text(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("user_id", sa.Uuid()),
        sa.Column("workspace_id", sa.Uuid()),
        sa.Column("daemon_id", sa.Text()),
        sa.Column("install_token_id", sa.Uuid()),
        sa.Column("created_by", sa.Uuid()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_reason", sa.Text()),
        sa.Column("consumed_at", sa.DateTime(timezone=True)),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.create_index("ledger_credentials_user_idx", "ledger_credentials", ["user_id", "created_at"])
    op.create_index(
        "ledger_credentials_workspace_idx",
        "ledger_credentials",
        ["workspace_id", "kind", "created_at"],
    )
    op.create_index(
        "ledger_credentials_issuer_idx", "ledger_credentials", ["workspace_id", "created_by"]
    )


def downgrade() -> None:
    op.drop_table("ledger_credentials")
    op.drop_table("ledger_events")
    op.execute("DROP TYPE IF EXISTS stored_event_uuid")
