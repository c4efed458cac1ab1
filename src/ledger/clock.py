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

    A clock may also have ``micros() -> int``: the same instant as integer microseconds since
    the Unix epoch, without making a datetime (``micros_of`` uses it when it is there).
    """

    def now(self) -> datetime: ...


def to_micros(instant: datetime) -> int:
    """An aware instant as integer microseconds since the Unix epoch (exact)."""
    return (instant - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """The UTC instant ``micros`` microseconds after the Unix epoch (exact)."""
    return _EPOCH + timedelta(microseconds=micros)


def micros_of(clock: Clock) -> Callable[[], int]:
    """Read ``clock`` as integer microseconds: its ``micros`` if it has one, else ``now()``
    converted. (A verify cache hit compares integers: a datetime costs more than the compare.)"""
    micros = getattr(clock, "micros", None)
    if callable(micros):
        return micros  # type: ignore[no-any-return]
    return lambda: to_micros(clock.now())


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def micros(self) -> int:
        return time.time_ns() // 1000  # floored, as datetime.now is


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

    def micros(self) -> int:
        return to_micros(self.now())

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._now = instant
