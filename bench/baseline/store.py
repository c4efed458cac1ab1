"""A one-row-per-token credential store, as a conventional service would write it.

One ``tokens`` table, one mutable row per token, written as the reference system does:

- mint: one ``INSERT``;
- exchange an install token: one transaction, a guarded ``UPDATE … WHERE used_at IS NULL …
  RETURNING`` that marks the install token used (only if it is unused, unrevoked and unexpired)
  followed by the ``INSERT`` of the daemon token;
- renew a personal access token: read the row, and when 7 days or less remain a compare-and-set
  ``UPDATE … WHERE id = … AND expires_at = <the value read>``; a loser re-reads the winner's
  expiry;
- revoke: ``UPDATE … SET revoked_at = now() WHERE … AND revoked_at IS NULL`` (a revoked flag);
- verify: hash the presented token and ``SELECT`` its row by the unique index on ``token_hash``,
  once per request (no cache), then check usability.

Tokens are generated and hashed exactly as the ledger does (``ledger.domain.tokens``), so both
sides pay the same CPU for token text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from psycopg_pool import ConnectionPool

from ledger.domain import TokenKind
from ledger.domain.tokens import IssuedToken, hash_token, issue, parse_kind

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
_COPY_PAT = "COPY tokens (id, token_hash, kind, user_id, expires_at) FROM STDIN"
_COUNTS = (
    "SELECT count(*) FILTER (WHERE kind = 'install' AND used_at IS NOT NULL), "
    "count(*) FILTER (WHERE kind = 'daemon') FROM tokens"
)
_VERIFY = (
    "SELECT id, kind, user_id, workspace_id, daemon_id, expires_at, used_at, revoked_at "
    "FROM tokens WHERE token_hash = %s"
)
_READ_PAT = "SELECT id, expires_at, revoked_at FROM tokens WHERE token_hash = %s AND kind = 'pat'"
_RENEW_CAS = "UPDATE tokens SET expires_at = %s WHERE id = %s AND expires_at = %s"
_REVOKE = (
    "UPDATE tokens SET revoked_at = now() "
    "WHERE id = %s AND user_id = %s AND kind = 'pat' AND revoked_at IS NULL"
)
_EXISTS = "SELECT 1 FROM tokens WHERE id = %s AND user_id = %s AND kind = 'pat'"
RENEWAL_WINDOW = timedelta(days=7)
RENEWAL_EXTENSION = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class BaselinePrincipal:
    """Who a verified token stands for."""

    token_id: UUID
    kind: str
    user_id: UUID | None
    workspace_id: UUID | None
    daemon_id: str | None


@dataclass(frozen=True, slots=True)
class Renewal:
    """What a renewal did (``renewed`` for exactly one of racing renewals)."""

    renewed: bool
    expires_at: datetime | None


@dataclass(slots=True)
class SeededTokens:
    """Rows written by a bulk insert: their ids and raw texts, in the same order."""

    ids: list[UUID] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)


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

    def insert_personal_access_tokens(
        self, user_id: UUID, count: int, expires_in: timedelta
    ) -> SeededTokens:
        """Create ``count`` personal access tokens of ``user_id`` (set-up, not measured)."""
        tokens = [issue(TokenKind.PERSONAL_ACCESS_TOKEN) for _ in range(count)]
        seeded = SeededTokens(ids=[uuid4() for _ in tokens], raw=[t.raw for t in tokens])
        expires_at = datetime.now(UTC) + expires_in
        with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor().copy(_COPY_PAT) as copy,
        ):
            for token_id, token in zip(seeded.ids, tokens, strict=True):
                copy.write_row((token_id, token.token_hash, "pat", user_id, expires_at))
        return seeded

    def verify(self, raw: str) -> BaselinePrincipal | None:
        """One indexed lookup by token hash; ``None`` unless the token is usable now."""
        with self._pool.connection() as conn:
            row = conn.execute(_VERIFY, (hash_token(raw),), prepare=True).fetchone()
        if row is None:
            return None
        token_id, kind, user_id, workspace_id, daemon_id, expires_at, used_at, revoked_at = row
        now = datetime.now(UTC)
        if (
            (expires_at is not None and expires_at <= now)
            or revoked_at is not None
            or (kind == "install" and used_at is not None)
        ):
            return None
        return BaselinePrincipal(token_id, kind, user_id, workspace_id, daemon_id)

    def renew_personal_access_token(self, raw: str) -> Renewal | None:
        """Extend to now + 90 days when 7 days or less remain: compare-and-set on the expiry
        read. ``None`` when the token is unknown, revoked or expired."""
        token_hash = hash_token(raw)
        with self._pool.connection() as conn:
            row = conn.execute(_READ_PAT, (token_hash,), prepare=True).fetchone()
            now = datetime.now(UTC)
            if row is None or row[2] is not None or (row[1] is not None and row[1] <= now):
                return None
            token_id, expires_at = row[0], row[1]
            if expires_at is None or expires_at - now > RENEWAL_WINDOW:
                return Renewal(renewed=False, expires_at=expires_at)
            after = now + RENEWAL_EXTENSION
            cursor = conn.execute(_RENEW_CAS, (after, token_id, expires_at), prepare=True)
            if cursor.rowcount == 1:
                return Renewal(renewed=True, expires_at=after)
            # Lost the race: report the winner's expiry.
            again = conn.execute(_READ_PAT, (token_hash,), prepare=True).fetchone()
        return Renewal(renewed=False, expires_at=again[1] if again else None)

    def revoke_personal_access_token(self, user_id: UUID, token_id: UUID) -> bool:
        """Set the revoked flag; ``False`` if there is no such token of the user. Revoking a
        revoked token is a no-op that returns ``True``."""
        with self._pool.connection() as conn:
            if conn.execute(_REVOKE, (token_id, user_id), prepare=True).rowcount == 1:
                return True
            return conn.execute(_EXISTS, (token_id, user_id)).fetchone() is not None

    def count_existing(self, token_hashes: Sequence[str]) -> int:
        """How many of these token hashes have a row (acknowledged writes must all be there)."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM tokens WHERE token_hash = ANY(%s)", (list(token_hashes),)
            ).fetchone()
        assert row is not None
        return int(row[0])

    def count_revoked(self, token_ids: Sequence[UUID]) -> int:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM tokens WHERE id = ANY(%s) AND revoked_at IS NOT NULL",
                (list(token_ids),),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def count_renewed(self, raws: Sequence[str], after: datetime) -> int:
        """How many of these tokens now expire later than ``after``."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM tokens WHERE token_hash = ANY(%s) AND expires_at > %s",
                ([hash_token(r) for r in raws], after),
            ).fetchone()
        assert row is not None
        return int(row[0])

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
