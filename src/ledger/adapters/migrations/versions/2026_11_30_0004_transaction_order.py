"""The log ordered by transaction; writes without the table lock or NOTIFY (ADR 0018).

- ``ledger_events.transaction_id xid8``: the writing transaction's ``pg_current_xact_id()``.
  Rows already stored get the constant 0, below every real transaction id, so they keep their
  notification-id order ahead of every later event (a constant default: no table rewrite). The
  index on ``(transaction_id, notification_id)`` serves the readers (``ledger.adapters.log_order``).
- The projections' tracking rows keep a full position: ``transaction_id`` (0 for a position in
  the old log, which is where every existing row stands) next to ``notification_id``, and the
  ``position`` ordinal of that event (the notification id, for an event of the old log).
- ``ledger_write_batch(events, rows, lock_timeout)`` replaces the function of migration 0003:
  no table lock and no ``NOTIFY``. Events are numbered in batch order, then inserted in key
  order with ``ON CONFLICT DO NOTHING`` (concurrent batches take key locks in one order, so they
  cannot deadlock; a key that a concurrent transaction holds is waited for, then refused if it
  committed). A command any of whose events was refused is refused whole: its other events are
  deleted again in the same transaction, and its credentials rows are not written.

The statement's text is frozen here, as migrations are (``tests/unit/test_write_batch_function``
checks it against the recorder's column list).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TRACKING_TABLES = ("ledger_credentials_view_tracking", "ledger_audit_tracking")

WRITE_BATCH = r"""
CREATE OR REPLACE FUNCTION ledger_write_batch(p_events jsonb, p_rows jsonb, p_lock_timeout text)
RETURNS TABLE (command int, notification_ids bigint[])
LANGUAGE plpgsql
AS $function$
#variable_conflict use_column
DECLARE
    v_cmds int[];
    v_ids bigint[];
    v_inserted boolean[];
    v_refused int[];
BEGIN
    -- How long a write waits for a key or row that a concurrent transaction holds.
    PERFORM set_config('lock_timeout', p_lock_timeout, true);
    WITH ev AS (
        -- p_events: one array per command (its index in the batch, from 0), of
        -- [originator_id, originator_version, topic, state as hex] per event
        SELECT (e->>0)::uuid AS originator_id, (e->>1)::bigint AS originator_version,
               e->>2 AS topic, decode(e->>3, 'hex') AS state, (c.n - 1)::int AS cmd, t.pos
        FROM jsonb_array_elements(p_events) WITH ORDINALITY AS c(events, n)
        CROSS JOIN LATERAL jsonb_array_elements(c.events) WITH ORDINALITY AS t(e, pos)
    ), numbered AS MATERIALIZED (
        -- notification ids in batch order: the commands', and each command's events'
        SELECT o.*, nextval('ledger_events_notification_id_seq') AS nid
        FROM (SELECT * FROM ev ORDER BY cmd, pos) AS o
    ), inserted AS (
        -- in key order (every writer takes key locks in the same order: no deadlock); of two
        -- commands of the batch on one key, the first one's event is tried first
        INSERT INTO ledger_events (
            originator_id, originator_version, topic, state, notification_id
        )
        SELECT originator_id, originator_version, topic, state, nid FROM numbered
        ORDER BY originator_id, originator_version, cmd
        ON CONFLICT (originator_id, originator_version) DO NOTHING
        RETURNING notification_id
    )
    SELECT array_agg(n.cmd ORDER BY n.nid), array_agg(n.nid ORDER BY n.nid),
           array_agg(i.notification_id IS NOT NULL ORDER BY n.nid)
    INTO v_cmds, v_ids, v_inserted
    FROM numbered n LEFT JOIN inserted i ON i.notification_id = n.nid;

    -- a command with any event refused is refused whole
    SELECT coalesce(array_agg(DISTINCT c), '{}') INTO v_refused
    FROM unnest(v_cmds, v_inserted) AS u(c, ok) WHERE NOT ok;
    IF cardinality(v_refused) > 0 THEN
        DELETE FROM ledger_events WHERE notification_id IN (
            SELECT id FROM unnest(v_cmds, v_ids, v_inserted) AS u(c, id, ok)
            WHERE ok AND c = ANY(v_refused)
        );
    END IF;

    -- the credentials rows of the commands written, in key order (no deadlock either)
    INSERT INTO ledger_credentials (
        credential_id, token_hash, kind, token_prefix, name, user_id, workspace_id,
        daemon_id, install_token_id, created_by, created_at, expires_at, revoked_at,
        revoked_reason, consumed_at, version
    )
    SELECT DISTINCT ON (r.credential_id)
        r.credential_id, r.token_hash, r.kind, r.token_prefix, r.name, r.user_id,
        r.workspace_id, r.daemon_id, r.install_token_id, r.created_by, r.created_at,
        r.expires_at, r.revoked_at, r.revoked_reason, r.consumed_at, r.version
    FROM (
        -- p_rows: one array per command, of the row's values in WRITE_COLUMNS order
        SELECT (r->>0)::uuid AS credential_id, r->>1 AS token_hash, r->>2 AS kind,
               r->>3 AS token_prefix, r->>4 AS name, (r->>5)::uuid AS user_id,
               (r->>6)::uuid AS workspace_id, r->>7 AS daemon_id,
               (r->>8)::uuid AS install_token_id, (r->>9)::uuid AS created_by,
               (r->>10)::timestamptz AS created_at, (r->>11)::timestamptz AS expires_at,
               (r->>12)::timestamptz AS revoked_at, r->>13 AS revoked_reason,
               (r->>14)::timestamptz AS consumed_at, (r->>15)::bigint AS version,
               (c.n - 1)::int AS cmd
        FROM jsonb_array_elements(p_rows) WITH ORDINALITY AS c(rows, n)
        CROSS JOIN LATERAL jsonb_array_elements(c.rows) AS t(r)
    ) AS r
    WHERE r.cmd <> ALL(v_refused)
    ORDER BY r.credential_id, r.version DESC
    ON CONFLICT (credential_id) DO UPDATE SET
        expires_at = EXCLUDED.expires_at, revoked_at = EXCLUDED.revoked_at,
        revoked_reason = EXCLUDED.revoked_reason, consumed_at = EXCLUDED.consumed_at,
        version = EXCLUDED.version
    WHERE ledger_credentials.version < EXCLUDED.version;

    -- one row per command: its notification ids in event order, or NULL if refused
    RETURN QUERY
    SELECT u.c, CASE WHEN u.c = ANY(v_refused) THEN NULL ELSE array_agg(u.id ORDER BY u.id) END
    FROM unnest(v_cmds, v_ids) AS u(c, id)
    GROUP BY u.c;
END
$function$
"""


def _previous_write_batch() -> str:
    path = Path(__file__).with_name("2026_11_22_0003_write_batch_function.py")
    spec = importlib.util.spec_from_file_location("write_batch_0003", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module.WRITE_BATCH
    return text


def upgrade() -> None:
    # A constant default is stored once in the catalog: existing rows read 0 without a rewrite.
    # Only then does the default become the writing transaction's id.
    op.execute("ALTER TABLE ledger_events ADD COLUMN transaction_id xid8 NOT NULL DEFAULT '0'")
    op.execute(
        "ALTER TABLE ledger_events ALTER COLUMN transaction_id SET DEFAULT pg_current_xact_id()"
    )
    op.execute(
        "CREATE UNIQUE INDEX ledger_events_transaction_order_idx "
        "ON ledger_events (transaction_id, notification_id)"
    )
    for name in TRACKING_TABLES:
        op.execute(f"ALTER TABLE {name} ADD COLUMN transaction_id xid8 NOT NULL DEFAULT '0'")
        op.execute(f"ALTER TABLE {name} ADD COLUMN position bigint NOT NULL DEFAULT 0")
        op.execute(f"UPDATE {name} SET position = coalesce(notification_id, 0)")  # noqa: S608 - constant names
    op.execute("DROP FUNCTION IF EXISTS ledger_write_batch(jsonb, jsonb, text, text)")
    op.execute(WRITE_BATCH)


def downgrade() -> None:
    # Back to the table lock. Projections that read events written meanwhile by transaction
    # order must be rebuilt after a downgrade (their notification ids did not commit in order).
    op.execute("DROP FUNCTION IF EXISTS ledger_write_batch(jsonb, jsonb, text)")
    op.execute(_previous_write_batch())
    for name in TRACKING_TABLES:
        op.execute(f"ALTER TABLE {name} DROP COLUMN position")
        op.execute(f"ALTER TABLE {name} DROP COLUMN transaction_id")
    op.execute("DROP INDEX ledger_events_transaction_order_idx")
    op.execute("ALTER TABLE ledger_events DROP COLUMN transaction_id")
