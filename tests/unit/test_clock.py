"""Clocks: datetimes and integer nanoseconds tell the same instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from ledger.domain.clock import ManualClock, SystemClock, from_nanos, nanos_of, to_nanos


def test_nanoseconds_round_trip_exactly() -> None:
    instant = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert from_nanos(to_nanos(instant)) == instant
    assert to_nanos(instant + timedelta(microseconds=1)) == to_nanos(instant) + 1000
    assert to_nanos(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert from_nanos(to_nanos(instant) + 999) == instant


def test_any_time_zone_gives_the_same_nanoseconds() -> None:
    instant = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert to_nanos(instant.astimezone(timezone(timedelta(hours=-7)))) == to_nanos(instant)


def test_a_manual_clock_tells_the_same_instant_both_ways() -> None:
    clock = ManualClock(datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    clock.advance(timedelta(microseconds=7))
    assert clock.nanos() == to_nanos(clock.now())
    assert nanos_of(clock)() == clock.nanos()


def test_the_system_clock_in_nanoseconds_lies_within_the_microseconds_of_two_readings() -> None:
    clock = SystemClock()
    before = to_nanos(clock.now())
    nanos = clock.nanos()
    after = to_nanos(clock.now())
    assert before <= nanos < after + 1000  # now() drops the nanoseconds
