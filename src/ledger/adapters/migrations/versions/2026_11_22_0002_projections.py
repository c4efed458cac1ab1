"""Projections: the Credentials view, the Audit trail, and their tracking tables.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TRACKING_TABLES = ("ledger_credentials_view_tracking", "ledger_audit_tracking")


def upgrade() -> None:
    op.create_table(
        "ledger_credentials_view",
        sa.Column("credential_id", sa.Uuid(), primary_key=True),
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
        sa.Column("daemon_token_id", sa.Uuid()),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ledger_credentials_view_user_idx", "ledger_credentials_view", ["user_id", "created_at"]
    )
    op.create_index(
        "ledger_credentials_view_workspace_idx",
        "ledger_credentials_view",
        ["workspace_id", "kind", "created_at"],
    )
    op.create_table(
        "ledger_audit",
        sa.Column("position", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("stream_id", sa.Uuid(), nullable=False),
        sa.Column("stream_version", sa.BigInteger(), nullable=False),
        sa.Column("credential_id", sa.Uuid()),
        sa.Column("kind", sa.Text()),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", sa.Text(), nullable=False),
        sa.Column("actor_id", sa.Text(), nullable=False),
        sa.Column("workspace_id", sa.Uuid()),
        sa.Column("user_id", sa.Uuid()),
        sa.Column("data", JSONB(), nullable=False),
    )
    op.create_index("ledger_audit_credential_idx", "ledger_audit", ["credential_id", "position"])
    op.create_index("ledger_audit_workspace_idx", "ledger_audit", ["workspace_id", "position"])
    op.create_index("ledger_audit_user_idx", "ledger_audit", ["user_id", "position"])
    op.create_index("ledger_audit_type_idx", "ledger_audit", ["type", "position"])
    op.create_index("ledger_audit_at_idx", "ledger_audit", ["at"])
    for name in TRACKING_TABLES:
        # eventsourcing's single-row tracking layout (PostgresTrackingRecorder).
        op.create_table(
            name,
            sa.Column("application_name", sa.Text(), primary_key=True),
            sa.Column("notification_id", sa.BigInteger()),
        )


def downgrade() -> None:
    for name in TRACKING_TABLES:
        op.drop_table(name)
    op.drop_table("ledger_audit")
    op.drop_table("ledger_credentials_view")
