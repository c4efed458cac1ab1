"""Failed attempts per client address, counted in one-minute windows, in memory.

``FailureLimiter`` is pure bookkeeping: the caller hands it the time (``at``, seconds on any
monotonic scale), so tests move the window with a clock and never sleep. A window opens at an
address's first failure and lasts ``window_s``; once it holds ``limit`` failures the address is
refused until the window has passed. Memory is bounded: past ``max_addresses`` the addresses
whose windows have passed are dropped, then, if that is not enough, the oldest windows.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

WINDOW_S = 60.0
MAX_ADDRESSES = 100_000


@dataclass(slots=True)
class _Window:
    opened_at: float
    failures: int


class FailureLimiter:
    """At most ``limit`` failures per address per window (``limit`` 0: no limit)."""

    def __init__(
        self, limit: int, *, window_s: float = WINDOW_S, max_addresses: int = MAX_ADDRESSES
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def retry_after(self, address: str, at: float) -> int | None:
        """``None`` when ``address`` may try now; otherwise the whole seconds (at least 1)
        until its window has passed."""
        if not self.enabled:
            return None
        with self._lock:
            window = self._windows.get(address)
            if window is None or window.failures < self.limit:
                return None
            remaining = window.opened_at + self.window_s - at
            if remaining <= 0:
                del self._windows[address]
                return None
            return max(1, math.ceil(remaining))

    def failed(self, address: str, at: float) -> None:
        """Count one failure of ``address`` at ``at``."""
        if not self.enabled:
            return
        with self._lock:
            window = self._windows.get(address)
            if window is None or at >= window.opened_at + self.window_s:
                if window is None and len(self._windows) >= self.max_addresses:
                    self._make_room(at)
                self._windows.pop(address, None)  # a new window goes to the end (the newest)
                self._windows[address] = _Window(opened_at=at, failures=1)
            else:
                window.failures += 1

    def __len__(self) -> int:
        return len(self._windows)

    def _make_room(self, at: float) -> None:
        passed = [a for a, w in self._windows.items() if at >= w.opened_at + self.window_s]
        for address in passed:
            del self._windows[address]
        while len(self._windows) >= self.max_addresses:
            # dicts keep insertion order: the first entry is the oldest window
            del self._windows[next(iter(self._windows))]
