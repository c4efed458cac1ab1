"""Running a function in many threads at once, released together by a barrier."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ledger.domain.errors import LedgerError

T = TypeVar("T")


def race(pool: ThreadPoolExecutor, n: int, fn: Callable[[int], T]) -> list[T | LedgerError]:
    """Call ``fn(0..n-1)`` in ``n`` threads released at the same instant; results or errors."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T | LedgerError:
        barrier.wait()
        try:
            return fn(i)
        except LedgerError as error:
            return error

    return list(pool.map(run, range(n)))
