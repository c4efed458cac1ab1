"""The verifier that auth middleware calls: a bounded in-process cache over the credentials table.

- Format and checksum are checked first, with no store access and no cache entry.
- An entry lives at most ``max_ttl`` and never past the token's own expiry (both measured on
  the injected clock); every hit still checks usability at the current instant, so expiry is
  exact whatever the cache holds.
- The cache is a bounded LRU: a flood of unknown tokens evicts old entries, it cannot grow
  memory without limit. Unknown tokens are cached too (briefly), so the flood does not reach
  the database at full rate either.
- Invalidation: the process that writes a change evicts the credentials it wrote as soon as the
  commit returns (exact). Every other process runs a ``CacheInvalidator`` that LISTENs on the
  events channel and tails the event log by notification id, evicting the id of every new
  event. It tracks its position, so a dropped connection loses nothing: it reconnects, and
  clears the whole cache before resuming. ``max_ttl`` bounds staleness even then.
- ``max_ttl`` of 0 disables the cache: every call reads the table, and every process is exact.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from ledger.adapters.credentials_table import CredentialRow, CredentialsTable
from ledger.application.views import Principal
from ledger.clock import Clock
from ledger.domain import Credential, TokenKind
from ledger.errors import InvalidToken
from ledger.tokens import hash_token, parse_kind
from ledger.usage import UsageRecorder

log = logging.getLogger(__name__)

ALL_KINDS = frozenset(TokenKind)


@dataclass(slots=True)
class CacheStats:
    """Counters of the cache's work (for metrics and benchmarks)."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0


@dataclass(frozen=True, slots=True)
class _Entry:
    row: CredentialRow | None  # None: no such credential
    fresh_until: datetime


class VerifierCache:
    """A thread-safe LRU of credentials-table rows, with lifetimes on the injected clock."""

    def __init__(
        self,
        *,
        clock: Clock,
        max_ttl: timedelta,
        max_entries: int,
        unknown_ttl: timedelta = timedelta(seconds=5),
    ) -> None:
        self._clock = clock
        self._max_ttl = max_ttl
        self._unknown_ttl = min(unknown_ttl, max_ttl)
        self._max_entries = max_entries
        self._entries: OrderedDict[UUID, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        # Bumped by every eviction. A reader notes it before reading the table and its fill is
        # dropped if it moved: otherwise a row read just before a revocation committed could be
        # cached just after the revocation's eviction, and let the revoked token back in.
        self._epoch = 0
        self.stats = CacheStats()

    @property
    def enabled(self) -> bool:
        return self._max_ttl > timedelta(0) and self._max_entries > 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, credential_id: UUID, now: datetime) -> _Entry | None:
        """The fresh entry for ``credential_id``, or ``None`` (a miss)."""
        with self._lock:
            entry = self._entries.get(credential_id)
            if entry is None or entry.fresh_until <= now:
                if entry is not None:
                    del self._entries[credential_id]
                self.stats.misses += 1
                return None
            self._entries.move_to_end(credential_id)
            self.stats.hits += 1
            return entry

    @property
    def epoch(self) -> int:
        """Note this before reading the table; hand it to ``put``."""
        with self._lock:
            return self._epoch

    def put(
        self, credential_id: UUID, row: CredentialRow | None, now: datetime, epoch: int
    ) -> None:
        """Remember ``row`` (or that there is none) for at most the allowed lifetime, unless
        something was evicted since ``epoch`` was read (the row may predate that change)."""
        if not self.enabled:
            return
        ttl = self._max_ttl if row is not None else self._unknown_ttl
        fresh_until = now + ttl
        if row is not None and row.expires_at is not None:
            fresh_until = min(fresh_until, row.expires_at)
        if fresh_until <= now:
            return
        with self._lock:
            if self._epoch != epoch:
                return
            self._entries[credential_id] = _Entry(row, fresh_until)
            self._entries.move_to_end(credential_id)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def evict(self, credential_ids: Iterable[UUID]) -> None:
        with self._lock:
            self._epoch += 1
            for credential_id in credential_ids:
                if self._entries.pop(credential_id, None) is not None:
                    self.stats.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._epoch += 1
            self.stats.evictions += len(self._entries)
            self._entries.clear()


class Verifier:
    """``verify(raw, kinds)`` → ``Principal``, through the cache."""

    def __init__(
        self,
        credentials: CredentialsTable,
        cache: VerifierCache,
        clock: Clock,
        usage: UsageRecorder | None = None,
    ) -> None:
        self._credentials = credentials
        self.cache = cache
        self._clock = clock
        self._usage = usage

    def verify(self, raw: str, allowed_kinds: Iterable[TokenKind] = ALL_KINDS) -> Principal:
        kind = parse_kind(raw) if isinstance(raw, str) else None
        if kind is None or kind not in frozenset(allowed_kinds):
            raise InvalidToken
        credential_id = Credential.create_id(hash_token(raw))
        now = self._clock.now()
        entry = self.cache.get(credential_id, now) if self.cache.enabled else None
        if entry is not None:
            row = entry.row
        else:
            epoch = self.cache.epoch
            row = self._credentials.get(credential_id)
            self.cache.put(credential_id, row, now, epoch)
        if row is None or not row.is_usable(now):
            raise InvalidToken
        if self._usage is not None:
            self._usage.note(row.credential_id, now)
        return Principal(
            credential_id=row.credential_id,
            kind=row.token_kind,
            user_id=row.user_id,
            workspace_id=row.workspace_id,
            daemon_id=row.daemon_id,
            expires_at=row.expires_at,
        )


class CacheInvalidator:
    """Evicts, from one process's cache, what other processes changed.

    A thread LISTENs on the events table's channel (the recorder NOTIFYs once per committed
    batch, with its process's ``origin`` as payload) and reads the ids of the events after its
    last position; it also looks every ``poll_s``. Batches of its own process (``own_origin``)
    were evicted by the writing thread already, so they alone do not start a read: under write
    load that saves a query per batch, and ``poll_s`` still moves the position along.

    On any connection error it clears the cache, waits, reconnects and catches up from the
    position it had reached, so a change committed while it was disconnected is still evicted
    (entries cached meanwhile included).
    """

    BATCH = 10_000

    def __init__(
        self,
        database_url: str,
        cache: VerifierCache,
        *,
        events_table: str,
        channel: str,
        own_origin: str | None = None,
        poll_s: float = 1.0,
    ) -> None:
        self._url = database_url
        self._own_origin = own_origin
        self._cache = cache
        self._poll_s = poll_s
        self._listen = sql.SQL("LISTEN {}").format(sql.Identifier(channel)).as_string()
        table = sql.Identifier(events_table)
        self._head = sql.SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(table)
        self._since = (
            sql.SQL(
                "SELECT notification_id, originator_id FROM {} WHERE notification_id > %s "
                "ORDER BY notification_id LIMIT %s"
            )
            .format(table)
            .as_string()
        )
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._thread = threading.Thread(
            target=self._run, name="ledger-cache-invalidator", daemon=True
        )
        self.position: int | None = None  # None until the first connection finds the log's end

    def start(self, timeout: float = 10.0) -> None:
        """Start the thread and wait until it listens (so no later change can be missed)."""
        self._thread.start()
        self._ready.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            conn.close()  # interrupts a wait for notifications at once
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    self._conn = conn
                    if self._stop.is_set():
                        return
                    conn.execute(self._listen)
                    if self.position is None:
                        row = conn.execute(self._head).fetchone()
                        self.position = int(row[0]) if row else 0
                    self._catch_up(conn)
                    self._ready.set()
                    backoff = 0.1
                    self._follow(conn)
            except psycopg.Error as error:
                if self._stop.is_set():
                    return
                log.warning("cache invalidator lost its connection: %s", type(error).__name__)
                # Changes may have been missed while disconnected: forget everything.
                self._cache.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _follow(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            foreign = heard = False
            for notify in conn.notifies(timeout=self._poll_s, stop_after=1):
                heard = True
                foreign = notify.payload != self._own_origin
            if heard and not foreign:
                # Only our own batch so far: is another process's already queued behind it?
                foreign = any(n.payload != self._own_origin for n in conn.notifies(timeout=0))
            now = time.monotonic()
            if foreign or now - last >= self._poll_s:
                self._catch_up(conn)
                last = now

    def _catch_up(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        assert self.position is not None
        while True:
            rows = conn.execute(self._since, (self.position, self.BATCH)).fetchall()
            if not rows:
                return
            self._cache.evict(originator_id for _, originator_id in rows)
            self.position = rows[-1][0]
            if len(rows) < self.BATCH:
                return
