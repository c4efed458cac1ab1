"""The verifier's cache: lifetimes on the injected clock, a hard size bound, exact expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID, uuid4

import pytest

from ledger.adapters.credentials_table import CredentialRow, CredentialsTable
from ledger.clock import ManualClock
from ledger.domain import Actor, Credential, TokenKind
from ledger.errors import InvalidToken
from ledger.tokens import issue
from ledger.verifier import Verifier, VerifierCache

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def row(expires_at: datetime | None = None) -> tuple[str, CredentialRow]:
    token = issue(TokenKind.PERSONAL_ACCESS_TOKEN)
    user = uuid4()
    credential = Credential.mint_personal_access_token(
        token_hash=token.token_hash,
        token_prefix=token.display_prefix,
        name="t",
        user_id=user,
        expires_at=expires_at,
        at=T0,
        actor=Actor.user(user),
    )
    return token.raw, CredentialRow.of(credential)


class FakeTable:
    """The credentials table, in memory, counting reads."""

    def __init__(self, *rows: CredentialRow) -> None:
        self.rows = {r.credential_id: r for r in rows}
        self.reads = 0

    def get(self, credential_id: UUID) -> CredentialRow | None:
        self.reads += 1
        return self.rows.get(credential_id)


def make(
    clock: ManualClock, table: FakeTable, *, ttl_s: float = 60, entries: int = 1000
) -> Verifier:
    cache = VerifierCache(clock=clock, max_ttl=timedelta(seconds=ttl_s), max_entries=entries)
    return Verifier(cast(CredentialsTable, table), cache, clock)


def test_a_hit_does_not_read_the_table() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    table = FakeTable(r)
    verifier = make(clock, table)
    verifier.verify(raw)
    verifier.verify(raw)
    assert table.reads == 1
    assert verifier.cache.stats.hits == 1


def test_entries_live_at_most_the_maximum_lifetime() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    table = FakeTable(r)
    verifier = make(clock, table, ttl_s=60)
    verifier.verify(raw)
    clock.advance(timedelta(seconds=59))
    verifier.verify(raw)
    assert table.reads == 1
    clock.advance(timedelta(seconds=1))
    verifier.verify(raw)
    assert table.reads == 2


def test_entries_never_outlive_the_token_and_expiry_is_exact() -> None:
    clock = ManualClock(T0)
    raw, r = row(expires_at=T0 + timedelta(seconds=10))
    table = FakeTable(r)
    verifier = make(clock, table, ttl_s=60)
    verifier.verify(raw)
    clock.advance(timedelta(seconds=10) - timedelta(microseconds=1))
    verifier.verify(raw)  # still usable, from the cache
    assert table.reads == 1
    clock.advance(timedelta(microseconds=1))
    with pytest.raises(InvalidToken):
        verifier.verify(raw)


def test_malformed_tokens_touch_neither_table_nor_cache() -> None:
    clock = ManualClock(T0)
    table = FakeTable()
    verifier = make(clock, table)
    for bad in ["", "mul_", "x" * 40, issue(TokenKind.DAEMON_TOKEN).raw[:-1] + "!"]:
        with pytest.raises(InvalidToken):
            verifier.verify(bad)
    assert table.reads == 0
    assert len(verifier.cache) == 0


def test_a_flood_of_unknown_tokens_cannot_grow_the_cache_past_its_bound() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    table = FakeTable(r)
    verifier = make(clock, table, entries=100)
    for _ in range(5000):
        with pytest.raises(InvalidToken):
            verifier.verify(issue(TokenKind.PERSONAL_ACCESS_TOKEN).raw)
        assert len(verifier.cache) <= 100
    verifier.verify(raw)
    assert len(verifier.cache) == 100


def test_unknown_tokens_are_remembered_briefly() -> None:
    clock = ManualClock(T0)
    table = FakeTable()
    verifier = make(clock, table)
    unknown = issue(TokenKind.PERSONAL_ACCESS_TOKEN).raw
    for _ in range(3):
        with pytest.raises(InvalidToken):
            verifier.verify(unknown)
    assert table.reads == 1
    clock.advance(timedelta(seconds=5))
    with pytest.raises(InvalidToken):
        verifier.verify(unknown)
    assert table.reads == 2


def test_eviction_forces_a_fresh_read() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    table = FakeTable(r)
    verifier = make(clock, table)
    verifier.verify(raw)
    verifier.cache.evict([r.credential_id])
    verifier.verify(raw)
    assert table.reads == 2


def test_a_zero_lifetime_disables_the_cache() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    table = FakeTable(r)
    verifier = make(clock, table, ttl_s=0)
    for _ in range(3):
        verifier.verify(raw)
    assert table.reads == 3
    assert len(verifier.cache) == 0


def test_kinds_are_checked_before_the_cache() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    table = FakeTable(r)
    verifier = make(clock, table)
    with pytest.raises(InvalidToken):
        verifier.verify(raw, {TokenKind.DAEMON_TOKEN})
    assert table.reads == 0
    principal: Any = verifier.verify(raw, {TokenKind.PERSONAL_ACCESS_TOKEN})
    assert principal.credential_id == r.credential_id


def test_a_row_read_before_an_eviction_is_not_cached_after_it() -> None:
    """The race that would let a revoked token back in: read, revoke + evict, then fill."""
    clock = ManualClock(T0)
    _, r = row()
    cache = VerifierCache(clock=clock, max_ttl=timedelta(seconds=60), max_entries=10)
    epoch = cache.epoch  # a reader notes the epoch, then reads the (not yet revoked) row ...
    cache.evict([r.credential_id])  # ... the revocation commits and evicts ...
    cache.put(r.credential_id, r, T0, epoch)  # ... and the reader's stale fill arrives
    assert cache.get(r.credential_id, T0) is None
    cache.put(r.credential_id, r, T0, cache.epoch)  # a read that began after it is cached
    assert cache.get(r.credential_id, T0) is not None
