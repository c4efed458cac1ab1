"""The event log is append-only in the database; the witnessed Merkle leaves of the log.

``UPDATE``, ``DELETE`` and ``TRUNCATE`` of ``ledger_events`` and ``ledger_log_leaves`` fail with
an error for every role, superusers included: statement-level triggers refuse them. The triggers
are ``ENABLE ALWAYS``, so ``SET session_replication_role = replica`` does not silence them;
only ``ALTER TABLE … DISABLE TRIGGER`` (the owner or a superuser) does (ADR 0019).

One ``DELETE`` of ``ledger_events`` passes: of rows that the deleting transaction itself
inserted and has not committed (``transaction_id = pg_current_xact_id()``), which no other
transaction has ever seen. That is how ``ledger_write_batch`` (migration 0004) refuses a
conflicting command whole: it takes back the command's other events before its commit. A
committed row is refused to every transaction, as is every ``UPDATE`` and ``TRUNCATE``.

``ledger_log_leaves`` holds, for each event of the log that a checkpoint has covered, its index
in the log's order and the hash of its stored row: a signed checkpoint authenticates these
leaves (their Merkle root), and they let ``ledger audit verify`` name the events that changed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
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

REFUSE_COMMITTED = r"""
CREATE OR REPLACE FUNCTION ledger_refuse_committed_delete() RETURNS trigger
LANGUAGE plpgsql
AS $function$
BEGIN
    -- Only the inserting transaction, before its commit, may take its own rows back.
    IF OLD.transaction_id = pg_current_xact_id() THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'events are never changed or removed; see docs/adr/0019';
END
$function$
"""


def _statement_trigger(table: str, name: str, events: str) -> None:
    op.execute(
        f"CREATE TRIGGER {table}_{name} BEFORE {events} ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
    )
    op.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_{name}")


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
    op.execute(REFUSE_COMMITTED)
    _statement_trigger("ledger_events", "append_only", "UPDATE")
    _statement_trigger("ledger_events", "no_truncate", "TRUNCATE")
    op.execute(
        "CREATE TRIGGER ledger_events_no_delete BEFORE DELETE ON ledger_events "
        "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_committed_delete()"
    )
    op.execute("ALTER TABLE ledger_events ENABLE ALWAYS TRIGGER ledger_events_no_delete")
    _statement_trigger("ledger_log_leaves", "append_only", "UPDATE OR DELETE")
    _statement_trigger("ledger_log_leaves", "no_truncate", "TRUNCATE")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS ledger_events_no_delete ON ledger_events")
    op.execute("DROP FUNCTION IF EXISTS ledger_refuse_committed_delete()")
    for table in APPEND_ONLY_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.execute("DROP FUNCTION IF EXISTS ledger_refuse_change()")
    op.drop_table("ledger_log_leaves")
