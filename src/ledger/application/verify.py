"""The verifier that auth middleware calls: a bounded in-process cache over the credentials table.

- The cache is keyed by the SHA-256 digest of the token text and is looked up first. An entry
  is only ever made for a well-formed token with a valid checksum, so a hit needs neither the
  checksum nor the credential id again; a hit still checks the kinds the caller accepts.
- A miss checks format and checksum (no store access and no entry for a malformed token), then
  the kinds, then reads the table by credential id (a uuid5 of the hash).
- An entry holds the ready ``Principal`` (or none: an unknown, revoked or consumed token). It
  lives at most ``max_ttl`` (unknown tokens ``unknown_ttl``) and never past the token's
  expiry. An entry that accepts ends at the expiry, revocation or consumption, whichever comes
  first, so a hit's ``usable_from <= now < fresh_until`` is the usability rule
  (``ledger.domain.credential.usable_at``) at the current instant: expiry is exact whatever the
  cache holds. Instants are read from the injected clock.
- The cache is a bounded LRU: a flood of unknown tokens evicts old entries, it cannot grow
  memory without limit. Unknown tokens are cached too (briefly), so the flood does not reach
  the database at full rate either.
- Invalidation is by credential id (a map from id to digest finds the entry). The process that
  writes a change evicts the credentials it wrote as soon as the commit returns (exact). Every
  other process runs a ``CacheInvalidator`` (``ledger.adapters.invalidation``): it evicts the
  ids that writers announce after each commit, and follows the event log as a backstop.
  ``max_ttl`` bounds staleness even when an announcement is lost.
- ``max_ttl`` of 0 disables the cache: every call reads the table, and every process is exact.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from typing import NamedTuple, Protocol
from uuid import UUID

from ledger.domain import Credential, TokenKind
from ledger.domain.clock import Clock, from_nanos, nanos_of, to_nanos
from ledger.domain.credential_row import usable_at
from ledger.domain.errors import InvalidToken
from ledger.domain.principal import Principal
from ledger.domain.tokens import TOKEN_LENGTH, parse_kind

log = logging.getLogger(__name__)

ALL_KINDS = frozenset(TokenKind)
_KINDS = {kind.value: kind for kind in TokenKind}


def _nanos(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1) * 1000


class AuthRow(NamedTuple):
    """What verify decides with: a credential's row without its bookkeeping columns."""

    kind: str
    user_id: UUID | None
    workspace_id: UUID | None
    daemon_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    consumed_at: datetime | None


StoreErrors = Callable[[], AbstractContextManager[None]]
"""A context that turns the store's own errors into ``LedgerError``s."""


class AuthRows(Protocol):
    """Where a miss reads a credential (``CredentialsTable``)."""

    def auth_row(self, credential_id: UUID) -> AuthRow | None: ...


class UsageNotes(Protocol):
    """Where accepted uses are noted, at nanoseconds since the epoch (``UsageRecorder``)."""

    def note(self, credential_id: UUID, at: int) -> None: ...


@dataclass(slots=True)
class CacheStats:
    """Counters of the cache's work (for metrics and benchmarks)."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0


class CacheEntry:
    """What verify answers for one token digest, and until when (instants in nanoseconds
    since the Unix epoch, on the injected clock)."""

    __slots__ = ("credential_id", "fresh_until", "next_note", "principal", "usable_from")

    def __init__(
        self,
        credential_id: UUID,
        principal: Principal | None,
        usable_from: int,
        fresh_until: int,
    ) -> None:
        self.credential_id = credential_id
        self.principal = principal
        """``None``: refuse (no such credential, or revoked or consumed)."""
        self.usable_from = usable_from
        """The mint instant: the principal is refused before it."""
        self.fresh_until = fresh_until
        """The entry answers only before this instant."""
        self.next_note = usable_from
        """When a hit next notes a use (``NOTE_EVERY_NS`` apart; the first use at once)."""


NOTE_EVERY_NS = 1_000_000_000
"""A credential verified from the cache notes its use at most once a second (``last_used_at``
is approximate by contract; noting every hit cost about a fifth of one)."""


class VerifierCache:
    """A thread-safe LRU of verify answers by token digest, with lifetimes in nanoseconds."""

    def __init__(
        self,
        *,
        max_ttl: timedelta,
        max_entries: int,
        unknown_ttl: timedelta = timedelta(seconds=5),
    ) -> None:
        """Instants come from the caller (the verifier reads the clock once per verify)."""
        self._max_ttl_ns = _nanos(max_ttl)
        self._unknown_ttl_ns = _nanos(min(unknown_ttl, max_ttl))
        self._max_entries = max_entries
        self.enabled = max_ttl > timedelta(0) and max_entries > 0
        self._entries: OrderedDict[bytes, CacheEntry] = OrderedDict()
        self._digests: dict[UUID, bytes] = {}  # credential id -> key of its entry
        self._lock = threading.Lock()
        # Bumped by every eviction. A reader notes it before reading the table and its fill is
        # dropped if it moved: otherwise a row read just before a revocation committed could be
        # cached just after the revocation's eviction, and let the revoked token back in.
        self._epoch = 0
        self.stats = CacheStats()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, digest: bytes, now: int) -> CacheEntry | None:
        """The fresh entry for the token with this digest at ``now`` (nanoseconds), or
        ``None`` (a miss).

        A hit takes no lock: each dict operation is atomic under the GIL, and a hit that
        overlaps an eviction answers as of just before it, as it would if it had taken the
        lock first. Counters may miss an increment when threads race (they are metrics).
        """
        entries = self._entries
        entry = entries.get(digest)
        if entry is not None and now < entry.fresh_until:
            try:  # noqa: SIM105 - contextlib.suppress costs more than the rest of a hit
                entries.move_to_end(digest)
            except KeyError:  # evicted meanwhile: the entry is still the answer of the get
                pass
            self.stats.hits += 1
            return entry
        with self._lock:
            entry = entries.get(digest)
            if entry is not None and now >= entry.fresh_until:
                self._remove(digest, entry)
            self.stats.misses += 1
        return None

    @property
    def epoch(self) -> int:
        """Note this before reading the table; hand it to ``put``."""
        with self._lock:
            return self._epoch

    def entry(self, credential_id: UUID, row: AuthRow | None, now: int) -> CacheEntry:
        """The answer for ``row`` (``None``: no such credential) read at ``now``
        (nanoseconds), with the lifetime it may be cached for (``fresh_until <= now``: not at
        all)."""
        if row is None:
            return CacheEntry(credential_id, None, now, now + self._unknown_ttl_ns)
        at = from_nanos(now)
        if not usable_at(
            at,
            minted_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            consumed_at=row.consumed_at,
        ):
            # Revoked or consumed: refused for good (an expired row gets no lifetime left).
            # Minted after ``now`` (another process's clock): it will become usable, no entry.
            keep = self.enabled and row.created_at <= at
            return CacheEntry(
                credential_id, None, now, self._until(now, row.expires_at) if keep else 0
            )
        principal = Principal(
            credential_id=credential_id,
            kind=_KINDS[row.kind],
            user_id=row.user_id,
            workspace_id=row.workspace_id,
            daemon_id=row.daemon_id,
            expires_at=row.expires_at,
        )
        if not self.enabled:  # answered once, never kept: nothing more to work out
            return CacheEntry(credential_id, principal, now, 0)
        # Revocation and consumption are later than ``now`` here (another process's clock).
        fresh_until = self._until(now, row.expires_at, row.revoked_at, row.consumed_at)
        return CacheEntry(credential_id, principal, to_nanos(row.created_at), fresh_until)

    def _until(self, now: int, *ends: datetime | None) -> int:
        """``now`` plus the maximum lifetime, or the earliest of ``ends`` if sooner."""
        until = now + self._max_ttl_ns
        for end in ends:
            if end is not None:
                until = min(until, to_nanos(end))
        return until

    def put(self, digest: bytes, entry: CacheEntry, now: int, epoch: int) -> None:
        """Remember ``entry`` until its ``fresh_until``, unless something was evicted since
        ``epoch`` was read (the row may predate that change)."""
        if not self.enabled or entry.fresh_until <= now:
            return
        with self._lock:
            if self._epoch != epoch:
                return
            old = self._entries.get(digest)
            if old is not None:
                self._remove(digest, old)
            self._entries[digest] = entry
            self._digests[entry.credential_id] = digest
            while len(self._entries) > self._max_entries:
                self._remove(*self._entries.popitem(last=False))

    def _remove(self, digest: bytes, entry: CacheEntry) -> None:
        self._entries.pop(digest, None)
        if self._digests.get(entry.credential_id) == digest:
            del self._digests[entry.credential_id]

    def evict(self, credential_ids: Iterable[UUID]) -> None:
        """Forget what is cached for these credentials (they changed)."""
        with self._lock:
            self._epoch += 1
            for credential_id in credential_ids:
                digest = self._digests.pop(credential_id, None)
                if digest is not None:
                    del self._entries[digest]
                    self.stats.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._epoch += 1
            self.stats.evictions += len(self._entries)
            self._entries.clear()
            self._digests.clear()


def _no_entry(digest: bytes, now: int) -> CacheEntry | None:
    return None


def _no_note(credential_id: UUID, at: int) -> None:
    return None


class Verifier:
    """``verify(raw, kinds)`` → ``Principal``, through the cache."""

    def __init__(
        self,
        credentials: AuthRows,
        cache: VerifierCache,
        clock: Clock,
        usage: UsageNotes | None = None,
        *,
        before_read: Callable[[], None] | None = None,
        store_errors: StoreErrors = contextlib.nullcontext,
    ) -> None:
        """``before_read`` runs before every table read (the composition root starts the
        cache invalidator there: before the first row that may be cached is read);
        ``store_errors`` wraps the read."""
        self._credentials = credentials
        self._store_errors = store_errors
        self.cache = cache
        self._before_read = before_read
        # Bound once: each attribute hop is a few percent of a hit.
        self._now = nanos_of(clock)
        self._cached = cache.get if cache.enabled else _no_entry
        self._note = usage.note if usage is not None else _no_note

    def verify(self, raw: str, allowed_kinds: Collection[TokenKind] = ALL_KINDS) -> Principal:
        """The principal behind a usable token of one of ``allowed_kinds``, or
        ``InvalidToken``; ``ServiceUnavailable`` when a miss cannot read the store."""
        if not isinstance(raw, str) or len(raw) != TOKEN_LENGTH:
            raise InvalidToken
        try:
            digest = sha256(raw.encode("utf-8")).digest()  # token_digest, without the call
        except UnicodeEncodeError:  # a lone surrogate: no token
            raise InvalidToken from None
        now = self._now()
        entry = self._cached(digest, now)
        if entry is None:
            entry = self._read(raw, digest, allowed_kinds, now)
        principal = entry.principal
        if principal is None or principal.kind not in allowed_kinds or now < entry.usable_from:
            raise InvalidToken
        if now >= entry.next_note:  # racing threads may both note: harmless
            entry.next_note = now + NOTE_EVERY_NS
            self._note(principal.credential_id, now)
        return principal

    def _read(
        self, raw: str, digest: bytes, allowed_kinds: Collection[TokenKind], now: int
    ) -> CacheEntry:
        """A miss: format, checksum and kinds without the store, then the table."""
        kind = parse_kind(raw)
        if kind is None or kind not in allowed_kinds:
            raise InvalidToken
        credential_id = Credential.create_id(digest.hex())
        if self._before_read is not None:
            self._before_read()
        cache = self.cache
        epoch = cache.epoch if cache.enabled else 0
        with self._store_errors():
            row = self._credentials.auth_row(credential_id)
        entry = cache.entry(credential_id, row, now)
        cache.put(digest, entry, now, epoch)
        return entry
