"""Token limits held in the write transaction (ADR 0021).

``ledger_write_batch(events, rows, limits, lock_timeout)`` replaces the function of migration
0004. A command may name one limit (``limits``: one entry per command, ``null`` or ``[scope,
principal, maximum, at]``): the user's usable personal access tokens, or the workspace's
unrevoked daemon tokens. The function takes a transaction-scoped advisory lock per scope named in
the batch, in one order, before it inserts anything; then, after the key conflicts are known, it
counts each limited command's scope in the credentials table (plus the commands of the batch
admitted before it in that scope) and refuses, whole, a command that would go past its maximum.
Each command's row says whether its limit refused it. Two partial indexes serve the counts.

The statement's text is frozen here, as migrations are (``tests/unit/test_write_batch_function``
checks it against the recorder's column list).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WRITE_BATCH = r"""
CREATE OR REPLACE FUNCTION ledger_write_batch(
    p_events jsonb, p_rows jsonb, p_limits jsonb, p_lock_timeout text
)
RETURNS TABLE (command int, notification_ids bigint[], limited boolean)
LANGUAGE plpgsql
AS $function$
#variable_conflict use_column
DECLARE
    v_cmds int[];
    v_ids bigint[];
    v_inserted boolean[];
    v_refused int[];
    v_limited int[] := '{}';
    v_out int[];
    v_limit record;
    v_count bigint;
    v_admitted jsonb := '{}';
    v_scope text;
BEGIN
    -- How long a write waits for a key, row or scope that a concurrent transaction holds.
    PERFORM set_config('lock_timeout', p_lock_timeout, true);

    -- p_limits: one entry per command, null or [scope, principal, maximum, at]; NULL when no
    -- command of the batch has a limit (then nothing below about limits runs). Every scope
    -- named in the batch is locked until the commit, in one order (batches cannot deadlock on
    -- them), before any event key: a count made under the lock sees every earlier commit of
    -- the scope, and no later one can add to it before this transaction ends.
    IF p_limits IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(s.k)
        FROM (
            SELECT DISTINCT
                hashtextextended('ledger_limit:' || (l->>0) || ':' || (l->>1), 0) AS k
            FROM jsonb_array_elements(p_limits) AS l
            WHERE jsonb_typeof(l) = 'array'
            ORDER BY 1
        ) AS s;
    END IF;
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

    -- a command past its limit is refused whole too: in batch order, each counts what the
    -- store holds of its scope plus the commands of the batch admitted before it
    IF p_limits IS NOT NULL THEN
        FOR v_limit IN
            SELECT (c.n - 1)::int AS cmd, l->>0 AS scope, (l->>1)::uuid AS principal,
                   (l->>2)::int AS maximum, (l->>3)::timestamptz AS at
            FROM jsonb_array_elements(p_limits) WITH ORDINALITY AS c(l, n)
            WHERE jsonb_typeof(l) = 'array'
            ORDER BY c.n
        LOOP
            CONTINUE WHEN v_limit.cmd = ANY(v_refused);
            IF v_limit.scope = 'personal_access_tokens' THEN
                SELECT count(*) INTO v_count FROM (
                    SELECT 1 FROM ledger_credentials
                    WHERE user_id = v_limit.principal AND kind = 'personal_access_token'
                      AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > v_limit.at)
                    LIMIT v_limit.maximum
                ) AS held;
            ELSIF v_limit.scope = 'daemon_tokens' THEN
                SELECT count(*) INTO v_count FROM (
                    SELECT 1 FROM ledger_credentials
                    WHERE workspace_id = v_limit.principal AND kind = 'daemon_token'
                      AND revoked_at IS NULL
                    LIMIT v_limit.maximum
                ) AS held;
            ELSE
                RAISE EXCEPTION 'unknown limit scope %', v_limit.scope;
            END IF;
            v_scope := v_limit.scope || ':' || v_limit.principal;
            v_count := v_count + coalesce((v_admitted->>v_scope)::bigint, 0);
            IF v_count >= v_limit.maximum THEN
                v_limited := v_limited || v_limit.cmd;
            ELSE
                v_admitted := v_admitted || jsonb_build_object(
                    v_scope, coalesce((v_admitted->>v_scope)::bigint, 0) + 1
                );
            END IF;
        END LOOP;
    END IF;

    v_out := v_refused || v_limited;
    IF cardinality(v_out) > 0 THEN
        DELETE FROM ledger_events WHERE notification_id IN (
            SELECT id FROM unnest(v_cmds, v_ids, v_inserted) AS u(c, id, ok)
            WHERE ok AND c = ANY(v_out)
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
    WHERE r.cmd <> ALL(v_out)
    ORDER BY r.credential_id, r.version DESC
    ON CONFLICT (credential_id) DO UPDATE SET
        expires_at = EXCLUDED.expires_at, revoked_at = EXCLUDED.revoked_at,
        revoked_reason = EXCLUDED.revoked_reason, consumed_at = EXCLUDED.consumed_at,
        version = EXCLUDED.version
    WHERE ledger_credentials.version < EXCLUDED.version;

    -- one row per command: its notification ids in event order, or NULL if refused, and
    -- whether its limit refused it
    RETURN QUERY
    SELECT u.c, CASE WHEN u.c = ANY(v_out) THEN NULL ELSE array_agg(u.id ORDER BY u.id) END,
           u.c = ANY(v_limited)
    FROM unnest(v_cmds, v_ids) AS u(c, id)
    GROUP BY u.c;
END
$function$
"""


def _previous_write_batch() -> str:
    path = Path(__file__).with_name("2026_11_30_0004_transaction_order.py")
    spec = importlib.util.spec_from_file_location("write_batch_0004", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module.WRITE_BATCH
    return text


def upgrade() -> None:
    op.create_index(
        "ledger_credentials_live_pats_idx",
        "ledger_credentials",
        ["user_id", "expires_at"],
        postgresql_where=sa.text("kind = 'personal_access_token' AND revoked_at IS NULL"),
    )
    op.create_index(
        "ledger_credentials_live_daemons_idx",
        "ledger_credentials",
        ["workspace_id"],
        postgresql_where=sa.text("kind = 'daemon_token' AND revoked_at IS NULL"),
    )
    op.execute("DROP FUNCTION IF EXISTS ledger_write_batch(jsonb, jsonb, text)")
    op.execute(WRITE_BATCH)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS ledger_write_batch(jsonb, jsonb, jsonb, text)")
    op.execute(_previous_write_batch())
    op.drop_index("ledger_credentials_live_daemons_idx", table_name="ledger_credentials")
    op.drop_index("ledger_credentials_live_pats_idx", table_name="ledger_credentials")
