"""A one-row-per-token credential store, as a conventional service would write it.

One ``tokens`` table, one mutable row per token. Minting is one ``INSERT``; exchanging an install
token is one transaction: a guarded ``UPDATE … RETURNING`` that marks the install token used
(only if it is unused, unrevoked and unexpired) followed by the ``INSERT`` of the daemon token.
Tokens are generated and hashed exactly as the ledger does (``ledger.tokens``), so both sides pay
the same CPU for token text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID, uuid4

from psycopg_pool import ConnectionPool

from ledger.domain import TokenKind
from ledger.tokens import IssuedToken, hash_token, issue, parse_kind

SCHEMA = """
CREATE TABLE tokens (
    id           uuid PRIMARY KEY,
    token_hash   text NOT NULL UNIQUE,
    kind         text NOT NULL,
    user_id      uuid,
    workspace_id uuid,
    daemon_id    text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    used_at      timestamptz,
    revoked_at   timestamptz
)
"""

_MINT_PAT = (
    "INSERT INTO tokens (id, token_hash, kind, user_id, expires_at) "
    "VALUES (%s, %s, 'pat', %s, now() + make_interval(days => %s))"
)
_CONSUME_INSTALL = (
    "UPDATE tokens SET used_at = now() "
    "WHERE token_hash = %s AND kind = 'install' AND used_at IS NULL AND revoked_at IS NULL "
    "AND expires_at > now() RETURNING workspace_id"
)
_MINT_DAEMON = (
    "INSERT INTO tokens (id, token_hash, kind, workspace_id, daemon_id) "
    "VALUES (%s, %s, 'daemon', %s, %s)"
)
_COPY_INSTALL = "COPY tokens (id, token_hash, kind, workspace_id, expires_at) FROM STDIN"
_COUNTS = (
    "SELECT count(*) FILTER (WHERE kind = 'install' AND used_at IS NOT NULL), "
    "count(*) FILTER (WHERE kind = 'daemon') FROM tokens"
)


@dataclass(frozen=True, slots=True)
class ExchangeCounts:
    """What the store holds after exchanges: used install tokens and daemon tokens."""

    used_install_tokens: int
    daemon_tokens: int


class BaselineStore:
    """The ``tokens`` table behind a ``psycopg_pool.ConnectionPool``."""

    def __init__(self, database_url: str, *, pool_size: int) -> None:
        self._pool = ConnectionPool(
            database_url,
            min_size=pool_size,
            max_size=pool_size,
            kwargs={"autocommit": True},
            open=True,
            name="baseline",
        )
        self._pool.wait()

    def close(self) -> None:
        self._pool.close()

    def create_schema(self) -> None:
        """Create the ``tokens`` table afresh."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("DROP TABLE IF EXISTS tokens")
            conn.execute(SCHEMA)

    def mint_personal_access_token(self, user_id: UUID, expires_in_days: int) -> IssuedToken:
        """Mint: one ``INSERT`` in its own transaction."""
        token = issue(TokenKind.PERSONAL_ACCESS_TOKEN)
        with self._pool.connection() as conn:
            conn.execute(
                _MINT_PAT, (uuid4(), token.token_hash, user_id, expires_in_days), prepare=True
            )
        return token

    def insert_install_tokens(self, workspace_id: UUID, count: int) -> list[str]:
        """Create ``count`` install tokens valid for 15 minutes (set-up, not measured)."""
        tokens = [issue(TokenKind.INSTALL_TOKEN) for _ in range(count)]
        with self._pool.connection() as conn, conn.transaction():
            expires_at = conn.execute("SELECT now() + interval '15 minutes'").fetchone()
            assert expires_at is not None
            with conn.cursor().copy(_COPY_INSTALL) as copy:
                for token in tokens:
                    copy.write_row(
                        (uuid4(), token.token_hash, "install", workspace_id, expires_at[0])
                    )
        return [t.raw for t in tokens]

    def exchange_install_token(self, raw: str, daemon_id: str) -> IssuedToken | None:
        """Exchange: consume the install token and mint a daemon token in one transaction.

        ``None`` when the install token is malformed, unknown, used, revoked or expired.
        """
        if parse_kind(raw) is not TokenKind.INSTALL_TOKEN:
            return None
        daemon = issue(TokenKind.DAEMON_TOKEN)
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            cursor.execute(_CONSUME_INSTALL, (hash_token(raw),), prepare=True)
            row = cursor.fetchone()
            if row is None:
                return None
            cursor.execute(
                _MINT_DAEMON, (uuid4(), daemon.token_hash, row[0], daemon_id), prepare=True
            )
        return daemon

    def exchange_counts(self) -> ExchangeCounts:
        with self._pool.connection() as conn:
            row = conn.execute(_COUNTS).fetchone()
        assert row is not None
        return ExchangeCounts(used_install_tokens=row[0], daemon_tokens=row[1])

    def server_settings(self, names: Sequence[str]) -> dict[str, str]:
        """The server's current value of each named setting (``server_version``, ``fsync`` …)."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(names),)
            ).fetchall()
        return {str(name): str(value) for name, value in rows}
