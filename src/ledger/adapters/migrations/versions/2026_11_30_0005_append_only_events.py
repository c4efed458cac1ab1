"""The event log is append-only in the database; the witnessed Merkle leaves of the log.

``UPDATE``, ``DELETE`` and ``TRUNCATE`` of ``ledger_events`` and ``ledger_log_leaves`` fail with
an error for every role, superusers included: statement-level triggers refuse them. The triggers
are ``ENABLE ALWAYS``, so ``SET session_replication_role = replica`` does not silence them;
only ``ALTER TABLE … DISABLE TRIGGER`` (the owner or a superuser) does (ADR 0019).

``ledger_log_leaves`` holds, for each event of the log that a checkpoint has covered, its index
in the log's order and the hash of its stored row: a signed checkpoint authenticates these
leaves (their Merkle root), and they let ``ledger audit verify`` name the events that changed.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

APPEND_ONLY_TABLES = ("ledger_events", "ledger_log_leaves")

REFUSE = r"""
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger
LANGUAGE plpgsql
AS $function$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'events are never changed or removed; see docs/adr/0019';
END
$function$
"""


def upgrade() -> None:
    op.create_table(
        "ledger_log_leaves",
        sa.Column("leaf_index", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("originator_id", sa.Uuid(), nullable=False),
        sa.Column("originator_version", sa.BigInteger(), nullable=False),
        sa.Column("notification_id", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint(
            "originator_id", "originator_version", name="ledger_log_leaves_event_key"
        ),
    )
    op.execute(REFUSE)
    for table in APPEND_ONLY_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )
        op.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_append_only")
        op.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_truncate")


def downgrade() -> None:
    for table in APPEND_ONLY_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.execute("DROP FUNCTION IF EXISTS ledger_refuse_change()")
    op.drop_table("ledger_log_leaves")
