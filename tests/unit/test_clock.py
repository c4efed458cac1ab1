"""Clocks: datetimes and integer microseconds tell the same instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from ledger.clock import ManualClock, SystemClock, from_micros, micros_of, to_micros


def test_microseconds_round_trip_exactly() -> None:
    instant = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert from_micros(to_micros(instant)) == instant
    assert to_micros(instant + timedelta(microseconds=1)) == to_micros(instant) + 1
    assert to_micros(datetime(1970, 1, 1, tzinfo=UTC)) == 0


def test_any_time_zone_gives_the_same_microseconds() -> None:
    instant = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert to_micros(instant.astimezone(timezone(timedelta(hours=-7)))) == to_micros(instant)


def test_a_manual_clock_tells_the_same_instant_both_ways() -> None:
    clock = ManualClock(datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    clock.advance(timedelta(microseconds=7))
    assert clock.micros() == to_micros(clock.now())
    assert micros_of(clock)() == clock.micros()


def test_the_system_clock_in_microseconds_lies_between_two_readings_of_now() -> None:
    clock = SystemClock()
    before = to_micros(clock.now())
    micros = clock.micros()
    after = to_micros(clock.now())
    assert before <= micros <= after
