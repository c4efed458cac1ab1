"""Time is injected: the application asks a clock, tests hand it one they control."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class Clock(Protocol):
    """Something that tells the current time as an aware UTC datetime.

    A clock may also have ``nanos() -> int``: the same instant as integer nanoseconds since
    the Unix epoch, without making a datetime (``nanos_of`` uses it when it is there).
    """

    def now(self) -> datetime: ...


def to_nanos(instant: datetime) -> int:
    """An aware instant as integer nanoseconds since the Unix epoch (exact)."""
    return (instant - _EPOCH) // _MICROSECOND * 1000


def from_nanos(nanos: int) -> datetime:
    """The UTC instant ``nanos`` nanoseconds after the Unix epoch (to the microsecond below,
    as datetimes go)."""
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def nanos_of(clock: Clock) -> Callable[[], int]:
    """Read ``clock`` as integer nanoseconds: its ``nanos`` if it has one, else ``now()``
    converted. (A verify cache hit compares integers: a datetime costs more than the compare.)"""
    nanos = getattr(clock, "nanos", None)
    if callable(nanos):
        return nanos  # type: ignore[no-any-return]
    return lambda: to_nanos(clock.now())


class SystemClock:
    """The wall clock."""

    def nanos(self) -> int:
        # Looked up per call, not bound at import: freezegun replaces ``time.time_ns`` too.
        return time.time_ns()

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to (for tests and the demo)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            msg = "ManualClock needs an aware datetime"
            raise ValueError(msg)
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def nanos(self) -> int:
        return to_nanos(self.now())

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._now = instant
