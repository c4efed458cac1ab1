"""The write-batch function: a group-commit batch as one statement (ADR 0015).

``ledger_write_batch(events, rows, lock_timeout, origin)`` does, inside the caller's transaction
(an autocommit statement is its own), what the recorder sent as a six-statement pipeline before:
set the lock timeout, take the events-table lock, queue the NOTIFY (delivered at commit, with the
writing process's origin as payload), then the conflict check, the event insert and the
credentials upsert of ADR 0003 / 0012. One round trip, one prepared statement, no pipeline
bookkeeping on the client.

The statement's text is frozen here, as migrations are: a change to the credentials table's
written columns (``ledger.adapters.credentials_table.WRITE_COLUMNS``) needs a migration that
replaces the function; ``tests/unit/test_write_batch_function.py`` fails until it does.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

WRITE_BATCH = r"""
CREATE OR REPLACE FUNCTION ledger_write_batch(
    p_events jsonb, p_rows jsonb, p_lock_timeout text, p_origin text
)
RETURNS TABLE (command int, notification_ids bigint[])
LANGUAGE plpgsql
AS $function$
#variable_conflict use_column
BEGIN
    -- Notification ids must commit in order: every events-table writer takes this lock.
    PERFORM set_config('lock_timeout', p_lock_timeout, true);
    LOCK TABLE ledger_events IN EXCLUSIVE MODE;
    -- delivered at commit; the payload names the writing process (its cache is exact already)
    PERFORM pg_notify('ledger_events', p_origin);
    RETURN QUERY
    WITH ev AS (
        -- p_events: one array per command (its index in the batch, from 0), of
        -- [originator_id, originator_version, topic, state as hex] per event
        SELECT (e->>0)::uuid AS originator_id, (e->>1)::bigint AS originator_version,
               e->>2 AS topic, decode(e->>3, 'hex') AS state, (c.n - 1)::int AS cmd, t.pos
        FROM jsonb_array_elements(p_events) WITH ORDINALITY AS c(events, n)
        CROSS JOIN LATERAL jsonb_array_elements(c.events) WITH ORDINALITY AS t(e, pos)
    ), refused AS (
        -- a command is refused if any of its events' keys is taken in the table (a LATERAL
        -- index probe, never a join that a generic plan could turn into a scan: ADR 0012) ...
        SELECT ev.cmd FROM ev CROSS JOIN LATERAL (
            SELECT 1 FROM ledger_events t
            WHERE t.originator_id = ev.originator_id
              AND t.originator_version = ev.originator_version
            LIMIT 1
        ) AS taken
        UNION
        -- ... or by an earlier command of the same batch
        SELECT cmd FROM (
            SELECT cmd, min(cmd) OVER (PARTITION BY originator_id, originator_version) AS first
            FROM ev
        ) AS keys
        WHERE cmd > first
    ), inserted AS (
        -- in batch order: notification ids follow the commands, and each command's events
        INSERT INTO ledger_events (originator_id, originator_version, topic, state)
        SELECT originator_id, originator_version, topic, state FROM ev
        WHERE cmd NOT IN (SELECT cmd FROM refused) ORDER BY cmd, pos
        RETURNING notification_id, originator_id, originator_version
    ), upserted AS (
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
        WHERE r.cmd NOT IN (SELECT cmd FROM refused)
        ORDER BY r.credential_id, r.version DESC
        ON CONFLICT (credential_id) DO UPDATE SET
            expires_at = EXCLUDED.expires_at, revoked_at = EXCLUDED.revoked_at,
            revoked_reason = EXCLUDED.revoked_reason, consumed_at = EXCLUDED.consumed_at,
            version = EXCLUDED.version
        WHERE ledger_credentials.version < EXCLUDED.version
        RETURNING 1
    )
    SELECT cmd, NULL::bigint[] FROM refused
    UNION ALL
    SELECT ev.cmd, array_agg(i.notification_id ORDER BY i.notification_id)
    FROM inserted i JOIN ev USING (originator_id, originator_version)
    WHERE ev.cmd NOT IN (SELECT cmd FROM refused)  -- a refused duplicate has the same key
    GROUP BY ev.cmd;
END
$function$
"""


def upgrade() -> None:
    op.execute(WRITE_BATCH)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS ledger_write_batch(jsonb, jsonb, text, text)")
