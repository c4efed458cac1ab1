"""The inline credentials table: the auth lookup table, written in the event-insert transaction.

One row per credential, keyed by the credential id (a uuid5 of the token hash, so a lookup by
token needs no secondary index). It holds the hash and the 12-character display prefix, never the
raw token. Because it commits with the events, it is exact the moment a command returns.

Reads take a connection straight from a ``psycopg_pool`` pool and fetch tuples: verify's read
(``auth_row``) selects only the eight columns it decides with, as one prepared statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool

from ledger.adapters.postgres import CREDENTIALS_TABLE
from ledger.application.ports import AuthRow
from ledger.domain import TokenKind
from ledger.domain.credential_row import (
    MUTABLE_FIELDS,
    TABLE_COLUMNS,
    WRITE_COLUMNS,
    CredentialRow,
)
from ledger.domain.credential_row import SQL_TYPES as DECLARED_TYPES

COLUMNS = TABLE_COLUMNS
"""The table's columns: the declaration's fields the table holds (``CredentialRow``)."""
__all__ = [
    "COLUMNS",
    "MUTABLE_COLUMNS",
    "SQL_TYPES",
    "WRITE_COLUMNS",
    "CredentialsTable",
    "row_values",
]
SQL_TYPES = {c: DECLARED_TYPES[c] for c in COLUMNS}
MUTABLE_COLUMNS = tuple(c for c in MUTABLE_FIELDS if c in WRITE_COLUMNS)
"""``SQL_TYPES`` and ``MUTABLE_COLUMNS`` describe what the write-batch function (migration 0003)
must cast and update; since its SQL is frozen there, ``tests/unit/test_write_batch_function.py``
holds it to them."""


_row_values = attrgetter(*WRITE_COLUMNS)


def row_values(row: CredentialRow) -> tuple[Any, ...]:
    """The row's values in ``WRITE_COLUMNS`` order (no copies, unlike ``dataclasses.astuple``)."""
    values: tuple[Any, ...] = _row_values(row)
    return values


class CredentialsTable:
    """Reads of the inline credentials table, and the batched ``last_used_at`` write."""

    def __init__(self, pool: ConnectionPool[Any], *, schema: str = "public") -> None:
        self._pool = pool
        table = sql.Identifier(schema, CREDENTIALS_TABLE)

        def select(columns: Sequence[str], where: sql.SQL) -> str:
            # Rendered once: psycopg would re-render a Composed statement on every execute.
            return (
                sql.SQL("SELECT {columns} FROM {table} WHERE ").format(
                    columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns), table=table
                )
                + where
            ).as_string()

        self._auth_row = select(AuthRow._fields, sql.SQL("credential_id = %s"))
        self._by_id = select(COLUMNS, sql.SQL("credential_id = %s"))
        self._pats_of_user = select(
            COLUMNS,
            sql.SQL(
                "user_id = %s AND kind = 'personal_access_token' AND revoked_at IS NULL "
                "ORDER BY created_at DESC, credential_id"
            ),
        )
        self._of_workspace = select(
            COLUMNS,
            sql.SQL("workspace_id = %s AND kind = %s ORDER BY created_at DESC, credential_id"),
        )
        self._live_issued_by = select(
            COLUMNS,
            sql.SQL(
                "workspace_id = %s AND created_by = %s AND revoked_at IS NULL "
                "AND (kind = 'daemon_token' OR (kind = 'install_token' AND consumed_at IS NULL)) "
                "ORDER BY created_at, credential_id"
            ),
        )
        self._pats_page = select(
            COLUMNS,
            sql.SQL(
                "user_id = %(user)s AND kind = 'personal_access_token' AND revoked_at IS NULL "
                "AND (%(after_at)s::timestamptz IS NULL OR created_at < %(after_at)s "
                " OR (created_at = %(after_at)s AND credential_id > %(after_id)s)) "
                "AND (%(from)s::timestamptz IS NULL "
                " OR (expires_at > %(from)s AND expires_at <= %(until)s)) "
                "ORDER BY created_at DESC, credential_id LIMIT %(limit)s"
            ),
        )
        self._live_of_user = select(
            COLUMNS,
            sql.SQL(
                "revoked_at IS NULL AND ("
                "(user_id = %(user)s AND kind = 'personal_access_token') OR "
                "(created_by = %(user)s AND (kind = 'daemon_token' "
                " OR (kind = 'install_token' AND consumed_at IS NULL)))) "
                "ORDER BY created_at, credential_id"
            ),
        )
        self._expiring = select(
            COLUMNS,
            sql.SQL(
                "revoked_at IS NULL AND consumed_at IS NULL "
                "AND expires_at > %(from)s AND expires_at <= %(until)s "
                "AND (%(workspace)s::uuid IS NULL OR workspace_id = %(workspace)s) "
                "ORDER BY expires_at, credential_id"
            ),
        )
        self._count_expiring = (
            sql.SQL(
                "SELECT kind, count(*) FROM {table} WHERE revoked_at IS NULL "
                "AND consumed_at IS NULL AND expires_at > %s AND expires_at <= %s GROUP BY kind"
            )
            .format(table=table)
            .as_string()
        )
        self._record_last_used = (
            sql.SQL(
                # Rows are locked in credential-id order, the order in which write batches
                # upsert them, so a flush and a write batch cannot deadlock.
                "WITH locked AS ("
                " SELECT c.credential_id, u.at FROM {table} AS c"
                " JOIN unnest(%s::uuid[], %s::timestamptz[]) AS u(id, at)"
                " ON c.credential_id = u.id"
                " WHERE c.last_used_at IS NULL OR c.last_used_at < u.at"
                " ORDER BY c.credential_id FOR UPDATE OF c) "
                "UPDATE {table} AS c SET last_used_at = locked.at FROM locked "
                "WHERE c.credential_id = locked.credential_id "
                "AND (c.last_used_at IS NULL OR c.last_used_at < locked.at)"
            )
            .format(table=table)
            .as_string()
        )

    def auth_row(self, credential_id: UUID) -> AuthRow | None:
        """What verify needs of one credential (one prepared primary-key read), or ``None``."""
        with self._pool.connection() as conn:
            row = (
                conn.cursor(row_factory=tuple_row)
                .execute(self._auth_row, (credential_id,), prepare=True)
                .fetchone()
            )
        return None if row is None else AuthRow._make(row)

    def _fetch(
        self, statement: str, params: Sequence[Any] | Mapping[str, Any]
    ) -> list[CredentialRow]:
        with self._pool.connection() as conn:
            cursor = conn.cursor(row_factory=tuple_row)
            rows = cursor.execute(statement, params, prepare=True).fetchall()
        return [CredentialRow(*row) for row in rows]

    def record_last_used(self, uses: dict[UUID, datetime]) -> None:
        """Advance ``last_used_at`` of many credentials in one statement (never backwards)."""
        if not uses:
            return
        with self._pool.connection() as conn:
            conn.execute(self._record_last_used, (list(uses), list(uses.values())))

    def get(self, credential_id: UUID) -> CredentialRow | None:
        rows = self._fetch(self._by_id, (credential_id,))
        return rows[0] if rows else None

    def personal_access_tokens(self, user_id: UUID) -> list[CredentialRow]:
        """The user's tokens that are not revoked (expired ones included), newest first."""
        return self._fetch(self._pats_of_user, (user_id,))

    def personal_access_tokens_page(
        self,
        user_id: UUID,
        *,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
        expiring: tuple[datetime, datetime] | None = None,
    ) -> list[CredentialRow]:
        """At most ``limit`` of the user's unrevoked tokens, newest first, after the key
        ``after`` (a row's ``(created_at, credential_id)``), optionally only those whose expiry
        is in ``(expiring[0], expiring[1]]``."""
        after_at, after_id = after if after is not None else (None, None)
        start, end = expiring if expiring is not None else (None, None)
        params = {
            "user": user_id,
            "after_at": after_at,
            "after_id": after_id,
            "from": start,
            "until": end,
            "limit": limit,
        }
        return self._fetch(self._pats_page, params)

    def live_of_user(self, user_id: UUID) -> list[CredentialRow]:
        """What offboarding revokes: the user's unrevoked personal access tokens, and the
        unrevoked daemon tokens and unconsumed, unrevoked install tokens they issued in any
        workspace."""
        return self._fetch(self._live_of_user, {"user": user_id})

    def expiring(
        self, start: datetime, end: datetime, workspace_id: UUID | None = None
    ) -> list[CredentialRow]:
        """Usable-looking credentials (neither revoked nor consumed) whose expiry is in
        ``(start, end]``, soonest first; only the workspace's when ``workspace_id`` is given."""
        params = {"from": start, "until": end, "workspace": workspace_id}
        return self._fetch(self._expiring, params)

    def count_expiring(self, start: datetime, end: datetime) -> dict[str, int]:
        """How many credentials of each kind ``expiring`` would list (one aggregate query)."""
        with self._pool.connection() as conn:
            cursor = conn.cursor(row_factory=tuple_row)
            rows = cursor.execute(self._count_expiring, (start, end), prepare=True).fetchall()
        return {str(kind): int(count) for kind, count in rows}

    def of_workspace(self, workspace_id: UUID, kind: TokenKind) -> list[CredentialRow]:
        """Every credential of ``kind`` in the workspace, revoked ones included, newest first."""
        return self._fetch(self._of_workspace, (workspace_id, kind.value))

    def live_issued_by(self, workspace_id: UUID, user_id: UUID) -> list[CredentialRow]:
        """The member-removal cascade's targets: unrevoked daemon tokens minted through the
        user's install tokens, and the user's unconsumed, unrevoked install tokens."""
        return self._fetch(self._live_issued_by, (workspace_id, user_id))
