"""When the client tries a call again: network errors and 5xx answers, with a capped backoff.

A 4xx answer is never retried: it says the request itself is refused, and repeating it
changes nothing (or, for an exchange, records a replay).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


def _half_jitter(delay: float) -> float:
    """Somewhere in ``[delay / 2, delay]``: clients that failed together do not retry
    together."""
    return random.uniform(delay / 2, delay)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a call is tried.

    ``attempts`` tries in all; between them the client waits ``first_delay_s``, then twice as
    long each time, never more than ``max_delay_s`` (``jitter`` picks the actual wait).
    """

    attempts: int = 5
    first_delay_s: float = 0.25
    max_delay_s: float = 4.0
    jitter: Callable[[float], float] = field(default=_half_jitter, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            msg = "attempts must be at least 1"
            raise ValueError(msg)

    def delays(self) -> Iterator[float]:
        """The waits before the 2nd, 3rd, ... attempt (``attempts - 1`` of them)."""
        delay = self.first_delay_s
        for _ in range(self.attempts - 1):
            yield self.jitter(min(delay, self.max_delay_s))
            delay *= 2

    def longest_s(self, timeout_s: float) -> float:
        """The longest a call can take, every attempt timing out: the time within which a
        retried exchange must reach the service (its ``LEDGER_EXCHANGE_RETRY_WINDOW_S``)."""
        waits = 0.0
        delay = self.first_delay_s
        for _ in range(self.attempts - 1):
            waits += min(delay, self.max_delay_s)
            delay *= 2
        return self.attempts * timeout_s + waits


NO_RETRY = RetryPolicy(attempts=1)
"""Try once."""
