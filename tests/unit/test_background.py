"""The periodic-work helper: runs when woken, first or once more at stop when asked."""

from __future__ import annotations

import threading

from ledger.adapters.background import Periodic


def test_work_runs_when_woken_and_once_more_at_stop() -> None:
    runs: list[str] = []
    ran = threading.Event()

    def work() -> None:
        runs.append(threading.current_thread().name)
        ran.set()

    periodic = Periodic("test-periodic", 3600, work, at_stop=True)
    periodic.start()
    periodic.start()  # a second start is ignored
    periodic.wake()
    assert ran.wait(30)
    periodic.stop()
    assert runs == ["test-periodic", threading.current_thread().name]


def test_work_runs_first_when_asked_and_not_at_stop_unless_asked() -> None:
    ran = threading.Event()
    runs: list[int] = []

    def work() -> None:
        runs.append(1)
        ran.set()

    periodic = Periodic("test-periodic", 3600, work, at_start=True)
    periodic.start()
    assert ran.wait(30)
    periodic.stop()
    assert runs == [1]


def test_work_that_returns_a_wait_sets_its_own_schedule() -> None:
    runs: list[int] = []
    third = threading.Event()

    def work() -> float:
        runs.append(len(runs))
        if len(runs) < 3:
            return 0.0  # due again at once
        third.set()
        return 3600.0

    periodic = Periodic("test-schedule", 3600, work, at_start=True)
    periodic.start()
    assert third.wait(30)  # never the 3600 s interval: the work's own waits
    periodic.stop()
    assert runs == [0, 1, 2]
