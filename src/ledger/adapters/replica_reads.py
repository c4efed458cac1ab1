"""The credentials table's reads, served by replicas where that is safe (ADR 0023).

- **Verify misses** (``auth_row``) read a replica that has replayed the WAL position this
  process knows the credential last changed at (``WrittenAt``), else the primary: a revocation
  announced to this process is never undone by a replica that has not replayed it.
- **Unknown on a replica.** A token minted through another process a moment ago may not be
  known to this process yet (its announcement is a millisecond away) nor to a lagging replica;
  a replica's "no such credential" for a credential with no noted change is therefore asked
  again of the primary, but at most ``unknown_token_primary_reads_per_s`` times a second per
  process (a ``TokenBucket``): a flood of made-up tokens cannot move to the primary. Beyond the
  budget the replica's answer stands (and is cached briefly, as any unknown token's; the mint's
  announcement evicts it). Malformed tokens never get here (checksum), nor repeats (the cache).
- **Listings** (a page of a user's tokens, a workspace's daemon tokens) read a replica that has
  replayed everything this process has written or heard of, else the primary.
- A command's own reads stay on the primary (``CredentialsTable`` itself): aggregate loads, the
  candidates of a cascade, an offboarding or a revoke-all (``personal_access_tokens``), and the
  by-id reads that guard a command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg_pool import ConnectionPool

from ledger.adapters.credentials_table import CredentialsTable
from ledger.adapters.replicas import ReadRouter, TokenBucket, WrittenAt
from ledger.application.ports import AuthRow
from ledger.domain import TokenKind
from ledger.domain.credential_row import CredentialRow


@dataclass(slots=True)
class UnknownTokenStats:
    """Replica answers of "no such credential" asked again of the primary, or not (over budget)."""

    asked_primary: int = 0
    over_budget: int = 0


class RoutedCredentials(CredentialsTable):
    """``CredentialsTable`` with its verify and listing reads routed to replicas."""

    def __init__(
        self,
        pool: ConnectionPool[Any],
        *,
        schema: str = "public",
        router: ReadRouter,
        written: WrittenAt,
        unknown_token_primary_reads_per_s: float,
        before_read: Callable[[], None] | None = None,
    ) -> None:
        """``before_read`` runs before a listing (the composition root starts the cache
        invalidator there, which notes what other processes change; verify calls it itself)."""
        super().__init__(pool, schema=schema)
        self._before_read = before_read
        self._router = router
        self._written = written
        self._bucket = TokenBucket(unknown_token_primary_reads_per_s)
        self.unknown = UnknownTokenStats()

    def auth_row(self, credential_id: UUID) -> AuthRow | None:
        table: CredentialsTable = self

        def read(conn: Connection[Any]) -> AuthRow | None:
            return table.auth_row_on(conn, credential_id)

        written = self._written
        known = written.known(credential_id)
        served = self._router.read(written.required(credential_id), read)
        if served.value is not None or not served.by_replica:
            return served.value
        if known:
            return None  # the replica has replayed its last change: the answer stands
        if written.known(credential_id):
            # Heard of while the replica was read (a mint announced meanwhile).
            return self._router.on_primary(read)
        if self._bucket.take():
            self.unknown.asked_primary += 1
            return self._router.on_primary(read)
        self.unknown.over_budget += 1
        return None

    def personal_access_tokens_page(
        self,
        user_id: UUID,
        *,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
        expiring: tuple[datetime, datetime] | None = None,
    ) -> list[CredentialRow]:
        table: CredentialsTable = self
        if self._before_read is not None:
            self._before_read()

        def read(conn: Connection[Any]) -> list[CredentialRow]:
            return table.personal_access_tokens_page_on(
                conn, user_id, limit=limit, after=after, expiring=expiring
            )

        return self._router.read(self._written.high, read).value

    def of_workspace(self, workspace_id: UUID, kind: TokenKind) -> list[CredentialRow]:
        table: CredentialsTable = self
        if self._before_read is not None:
            self._before_read()

        def read(conn: Connection[Any]) -> list[CredentialRow]:
            return table.of_workspace_on(conn, workspace_id, kind)

        return self._router.read(self._written.high, read).value
