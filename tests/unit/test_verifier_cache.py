"""The verifier's cache: keyed by token digest, evicted by credential id, lifetimes on the
injected clock, a hard size bound, exact expiry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from ledger.application.ports import AuthRow
from ledger.application.verify import Verifier, VerifierCache
from ledger.domain import Actor, Credential, TokenKind
from ledger.domain.clock import ManualClock, from_nanos, to_nanos
from ledger.domain.credential_row import CredentialRow
from ledger.domain.errors import InvalidToken
from ledger.domain.tokens import TOKEN_LENGTH, issue, token_digest

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def row(expires_at: datetime | None = None, *, at: datetime = T0) -> tuple[str, CredentialRow]:
    token = issue(TokenKind.PERSONAL_ACCESS_TOKEN)
    user = uuid4()
    credential = Credential.mint_personal_access_token(
        token_hash=token.token_hash,
        token_prefix=token.display_prefix,
        name="t",
        user_id=user,
        expires_at=expires_at,
        at=at,
        actor=Actor.user(user),
    )
    return token.raw, CredentialRow.of(credential)


def auth_row(r: CredentialRow) -> AuthRow:
    return AuthRow(
        kind=r.kind,
        user_id=r.user_id,
        workspace_id=r.workspace_id,
        daemon_id=r.daemon_id,
        created_at=r.created_at,
        expires_at=r.expires_at,
        revoked_at=r.revoked_at,
        consumed_at=r.consumed_at,
    )


class FakeTable:
    """The credentials table, in memory, counting reads."""

    def __init__(self, *rows: CredentialRow) -> None:
        self.rows = {r.credential_id: r for r in rows}
        self.reads = 0

    def auth_row(self, credential_id: UUID) -> AuthRow | None:
        self.reads += 1
        found = self.rows.get(credential_id)
        return None if found is None else auth_row(found)


class FakeUsage:
    def __init__(self) -> None:
        self.noted: list[tuple[UUID, datetime]] = []

    def note(self, credential_id: UUID, at: int) -> None:
        self.noted.append((credential_id, from_nanos(at)))


def make(
    clock: ManualClock, table: FakeTable, *, ttl_s: float = 60, entries: int = 1000
) -> Verifier:
    cache = VerifierCache(max_ttl=timedelta(seconds=ttl_s), max_entries=entries)
    return Verifier(table, cache, clock)


def test_a_hit_does_not_read_the_table() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    table = FakeTable(r)
    verifier = make(clock, table)
    first = verifier.verify(raw)
    second = verifier.verify(raw)
    assert table.reads == 1
    assert verifier.cache.stats.hits == 1
    assert first == second
    assert second.credential_id == r.credential_id
    assert second.kind is TokenKind.PERSONAL_ACCESS_TOKEN
    assert second.user_id == r.user_id


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
    assert table.reads == 2  # the entry ended at the expiry: the table said no
    with pytest.raises(InvalidToken):
        verifier.verify(raw)


def test_a_revocation_dated_later_ends_the_entry_at_that_instant() -> None:
    """A row can carry a revocation instant after this process's now (another process's clock):
    accepted until then, refused from then on, exactly."""
    clock = ManualClock(T0)
    raw, r = row()
    table = FakeTable(replace(r, revoked_at=T0 + timedelta(seconds=3)))
    verifier = make(clock, table, ttl_s=60)
    verifier.verify(raw)
    clock.advance(timedelta(seconds=3) - timedelta(microseconds=1))
    verifier.verify(raw)
    assert table.reads == 1
    clock.advance(timedelta(microseconds=1))
    with pytest.raises(InvalidToken):
        verifier.verify(raw)


def test_a_revoked_token_is_refused_from_the_cache() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    table = FakeTable(replace(r, revoked_at=T0))
    verifier = make(clock, table)
    for _ in range(3):
        with pytest.raises(InvalidToken):
            verifier.verify(raw)
    assert table.reads == 1


def test_a_token_minted_after_now_is_refused_and_not_cached() -> None:
    """Another process's clock ran ahead: the row exists but is not usable yet."""
    clock = ManualClock(T0)
    raw, r = row(at=T0 + timedelta(seconds=2))
    table = FakeTable(r)
    verifier = make(clock, table)
    with pytest.raises(InvalidToken):
        verifier.verify(raw)
    assert len(verifier.cache) == 0
    clock.advance(timedelta(seconds=2))
    assert verifier.verify(raw).credential_id == r.credential_id


def test_malformed_tokens_touch_neither_table_nor_cache() -> None:
    clock = ManualClock(T0)
    table = FakeTable()
    verifier = make(clock, table)
    bad_checksum = issue(TokenKind.DAEMON_TOKEN).raw[:-1] + "!"
    surrogate = "mul_" + "\ud800" * (TOKEN_LENGTH - 4)
    for bad in ["", "mul_", "x" * 40, bad_checksum, surrogate, "mul_" + "a" * 1000]:
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


def test_the_least_recently_used_entry_goes_first() -> None:
    clock = ManualClock(T0)
    (raw_a, a), (raw_b, b), (raw_c, c) = row(), row(), row()
    table = FakeTable(a, b, c)
    verifier = make(clock, table, entries=2)
    verifier.verify(raw_a)
    verifier.verify(raw_b)
    verifier.verify(raw_a)  # a is now more recent than b
    verifier.verify(raw_c)  # b goes
    assert table.reads == 3
    verifier.verify(raw_a)
    assert table.reads == 3
    verifier.verify(raw_b)
    assert table.reads == 4
    # The bound dropped c's entry and its id with it: evicting c finds nothing, breaks nothing.
    verifier.cache.evict([c.credential_id])
    assert verifier.cache.stats.evictions == 0
    verifier.verify(raw_a)
    verifier.verify(raw_b)
    assert table.reads == 4


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


def test_an_unknown_token_minted_meanwhile_is_evicted_by_its_credential_id() -> None:
    """Another process mints the token the cache just called unknown: its event evicts it."""
    clock = ManualClock(T0)
    raw, r = row()
    table = FakeTable()
    verifier = make(clock, table)
    with pytest.raises(InvalidToken):
        verifier.verify(raw)
    table.rows[r.credential_id] = r
    verifier.cache.evict([r.credential_id])
    assert verifier.verify(raw).credential_id == r.credential_id


def test_eviction_by_credential_id_finds_the_entry_keyed_by_digest() -> None:
    clock = ManualClock(T0)
    (raw, r), (other_raw, other) = row(), row()
    table = FakeTable(r, other)
    verifier = make(clock, table)
    verifier.verify(raw)
    verifier.verify(other_raw)
    verifier.cache.evict([r.credential_id, uuid4()])
    assert len(verifier.cache) == 1
    assert verifier.cache.stats.evictions == 1
    verifier.verify(other_raw)
    assert table.reads == 2
    verifier.verify(raw)
    assert table.reads == 3


def test_a_revocation_evicted_by_credential_id_is_refused_at_once() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    table = FakeTable(r)
    verifier = make(clock, table)
    verifier.verify(raw)
    table.rows[r.credential_id] = replace(r, revoked_at=T0)
    verifier.cache.evict([r.credential_id])
    with pytest.raises(InvalidToken):
        verifier.verify(raw)


def test_a_zero_lifetime_disables_the_cache() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    table = FakeTable(r)
    verifier = make(clock, table, ttl_s=0)
    for _ in range(3):
        verifier.verify(raw)
    assert table.reads == 3
    assert len(verifier.cache) == 0


def test_kinds_are_checked_before_the_table() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    table = FakeTable(r)
    verifier = make(clock, table)
    with pytest.raises(InvalidToken):
        verifier.verify(raw, {TokenKind.DAEMON_TOKEN})
    assert table.reads == 0
    principal = verifier.verify(raw, {TokenKind.PERSONAL_ACCESS_TOKEN})
    assert principal.credential_id == r.credential_id


def test_kinds_are_checked_on_a_hit() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    table = FakeTable(r)
    verifier = make(clock, table)
    verifier.verify(raw, frozenset({TokenKind.PERSONAL_ACCESS_TOKEN}))
    with pytest.raises(InvalidToken):
        verifier.verify(raw, frozenset({TokenKind.DAEMON_TOKEN}))
    with pytest.raises(InvalidToken):
        verifier.verify(raw, [TokenKind.INSTALL_TOKEN, TokenKind.DAEMON_TOKEN])
    assert verifier.verify(raw, (TokenKind.PERSONAL_ACCESS_TOKEN,)).credential_id == (
        r.credential_id
    )
    assert table.reads == 1


def test_uses_are_noted_at_most_once_a_second_and_never_for_refusals() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    table = FakeTable(r)
    usage = FakeUsage()
    cache = VerifierCache(max_ttl=timedelta(seconds=60), max_entries=10)
    verifier = Verifier(table, cache, clock, usage)
    verifier.verify(raw)  # the miss notes
    clock.advance(timedelta(milliseconds=999))
    verifier.verify(raw)  # a hit within the second does not
    clock.advance(timedelta(milliseconds=1))
    verifier.verify(raw)  # a hit a second later does
    clock.advance(timedelta(seconds=5))
    with pytest.raises(InvalidToken):
        verifier.verify(raw, {TokenKind.DAEMON_TOKEN})
    assert usage.noted == [(r.credential_id, T0), (r.credential_id, T0 + timedelta(seconds=1))]


def test_without_a_cache_every_use_is_noted() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    usage = FakeUsage()
    cache = VerifierCache(max_ttl=timedelta(0), max_entries=10)
    verifier = Verifier(FakeTable(r), cache, clock, usage)
    verifier.verify(raw)
    verifier.verify(raw)
    assert usage.noted == [(r.credential_id, T0), (r.credential_id, T0)]


def test_a_row_read_before_an_eviction_is_not_cached_after_it() -> None:
    """The race that would let a revoked token back in: read, revoke + evict, then fill."""
    raw, r = row()
    digest = token_digest(raw)
    cache = VerifierCache(max_ttl=timedelta(seconds=60), max_entries=10)
    epoch = cache.epoch  # a reader notes the epoch, then reads the (not yet revoked) row ...
    now = to_nanos(T0)
    entry = cache.entry(r.credential_id, auth_row(r), now)
    cache.evict([r.credential_id])  # ... the revocation commits and evicts ...
    cache.put(digest, entry, now, epoch)  # ... and the reader's stale fill arrives
    assert cache.get(digest, now) is None
    cache.put(digest, entry, now, cache.epoch)  # a read that began after it is cached
    assert cache.get(digest, now) is entry


def test_an_eviction_during_a_verify_read_drops_that_fill() -> None:
    """The same race through the verifier: the table is read, then a revocation evicts."""
    clock = ManualClock(T0)
    raw, r = row()

    class RevokedWhileReading(FakeTable):
        def auth_row(self, credential_id: UUID) -> AuthRow | None:
            found = super().auth_row(credential_id)
            verifier.cache.evict([credential_id])  # the revocation commits meanwhile
            return found

    table = RevokedWhileReading(r)
    verifier = make(clock, table)
    verifier.verify(raw)  # answered from the row it read ...
    assert len(verifier.cache) == 0  # ... but not remembered


class ClockWithoutMicros:
    """A clock that only tells ``now()`` (``Clock`` requires no more)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def test_a_clock_without_nanos_serves_the_verifier_through_now() -> None:
    raw, r = row(expires_at=T0 + timedelta(seconds=1))
    clock = ClockWithoutMicros(T0)
    cache = VerifierCache(max_ttl=timedelta(seconds=60), max_entries=10)
    verifier = Verifier(FakeTable(r), cache, clock)
    verifier.verify(raw)
    clock.at = T0 + timedelta(seconds=1)
    with pytest.raises(InvalidToken):
        verifier.verify(raw)


def test_a_cache_only_lookup_never_reads_the_table_and_agrees_with_verify() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    revoked_raw, revoked = row()
    table = FakeTable(r, replace(revoked, revoked_at=T0))
    verifier = make(clock, table)
    assert verifier.verify_cached(raw) is None  # a miss: the caller must read
    assert table.reads == 0
    assert verifier.verify_cached(raw) is None
    principal = verifier.verify(raw)
    assert verifier.verify_cached(raw) == principal
    assert table.reads == 1
    with pytest.raises(InvalidToken):
        verifier.verify_cached(raw, {TokenKind.DAEMON_TOKEN})
    with pytest.raises(InvalidToken):
        verifier.verify_cached("mul_short")  # refused without the cache, as verify does
    assert verifier.verify_cached("mul_" + "x" * (TOKEN_LENGTH - 4)) is None  # verify decides
    with pytest.raises(InvalidToken):
        verifier.verify(revoked_raw)
    with pytest.raises(InvalidToken):  # the cached refusal, from the cache alone
        verifier.verify_cached(revoked_raw)
    assert table.reads == 2
    verifier.cache.evict([r.credential_id])
    assert verifier.verify_cached(raw) is None
    assert table.reads == 2


def test_a_cache_only_hit_notes_the_use() -> None:
    clock = ManualClock(T0)
    raw, r = row()
    usage = FakeUsage()
    cache = VerifierCache(max_ttl=timedelta(seconds=60), max_entries=10)
    verifier = Verifier(FakeTable(r), cache, clock, usage)
    verifier.verify(raw)
    clock.advance(timedelta(seconds=2))
    verifier.verify_cached(raw)
    assert usage.noted == [(r.credential_id, T0), (r.credential_id, T0 + timedelta(seconds=2))]
