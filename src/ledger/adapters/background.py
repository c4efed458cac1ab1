"""Periodic background work, written once.

``Periodic`` calls a function every ``interval_s`` on a daemon thread (at once when woken), and
optionally first thing and once more when stopped: the ``last_used_at`` flusher, the metric
syncs of ``ledger serve`` and the service's tamper watch run on it. A function that returns a
number of seconds is next called after that many instead (a schedule of its own).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    """``work()`` every ``interval_s`` seconds on a daemon thread named ``name``."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        work: Callable[[], float | None],
        *,
        at_start: bool = False,
        at_stop: bool = False,
    ) -> None:
        self._name = name
        self._interval_s = interval_s
        self._work = work
        self._at_start = at_start
        self._at_stop = at_stop
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def wake(self) -> None:
        """Run the work now rather than at the end of the interval."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread (waiting for a run in progress), then run once more if asked."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join()
        if self._at_stop:
            self._work()

    def _run(self) -> None:
        wait = self._call() if self._at_start else self._interval_s
        while not self._stop.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            wait = self._call()

    def _call(self) -> float:
        """Run the work; the seconds until the next run."""
        wait = self._work()
        return self._interval_s if wait is None else max(0.0, wait)
