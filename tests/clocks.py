"""Clocks for tests."""

from __future__ import annotations

import itertools
import threading
from datetime import datetime, timedelta


class TickingClock:
    """Each reading is one microsecond after the previous one: racing commands see
    distinct instants, so 'everyone reports the winner's value' cannot hold by accident."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._ticks = itertools.count()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._start + timedelta(microseconds=next(self._ticks))
