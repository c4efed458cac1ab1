"""The NOTIFY follower: capped backoff, reconnection, what its owner is told (fake connections)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from itertools import islice
from types import SimpleNamespace
from typing import Any, Self, cast

import psycopg

from ledger.adapters.follower import MAX_BACKOFF_S, Conn, Follower, backoff_delays


class FakeConnection:
    """Enough of a psycopg connection for the follower: LISTEN, queued notifications, close."""

    def __init__(self, payloads: Sequence[str] = ()) -> None:
        self.executed: list[str] = []
        self._payloads = list(payloads)
        self._closed = threading.Event()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def execute(self, statement: str) -> None:
        self.executed.append(statement)

    def close(self) -> None:
        self._closed.set()

    def notifies(self, *, timeout: float, stop_after: int | None = None) -> Iterator[Any]:
        if self._payloads:
            count = len(self._payloads) if stop_after is None else stop_after
            taken, self._payloads = self._payloads[:count], self._payloads[count:]
            yield from (SimpleNamespace(payload=p) for p in taken)
            return
        if self._closed.wait(timeout):
            msg = "the connection is closed"
            raise psycopg.OperationalError(msg)


def test_backoff_doubles_up_to_its_cap() -> None:
    delays = list(islice(backoff_delays(0.1, 1.0), 7))
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert max(islice(backoff_delays(), 50)) == MAX_BACKOFF_S


def test_the_follower_reconnects_then_reports_every_payload_once() -> None:
    failures = 2
    connection = FakeConnection(["a", "b", "c"])
    lost: list[str] = []
    connected: list[Conn] = []
    heard: list[tuple[list[str], bool]] = []
    all_heard = threading.Event()

    def opener(url: str, name: str) -> Conn:
        nonlocal failures
        assert (url, name) == ("postgresql://fake", "test-follower")
        if failures:
            failures -= 1
            msg = "refused"
            raise psycopg.OperationalError(msg)
        return cast(Conn, connection)

    def on_heard(_conn: Conn, payloads: Sequence[str], poll_due: bool) -> None:
        heard.append((list(payloads), poll_due))
        all_heard.set()

    follower = Follower(
        "postgresql://fake",
        channel="events",
        name="test-follower",
        what="test follower",
        poll_s=3600,  # no poll within the test: only notifications wake the owner
        connected=connected.append,
        heard=on_heard,
        lost=lambda error: lost.append(type(error).__name__),
        opener=opener,
    )
    try:
        follower.start()
        assert all_heard.wait(10)
    finally:
        follower.stop()
    assert lost == ["OperationalError", "OperationalError"]
    assert follower.reconnects == 2
    assert connected == [cast(Conn, connection)]
    assert connection.executed == ['LISTEN "events"']
    # The first notification wakes the follower; what queued behind it comes in the same call.
    assert heard == [(["a", "b", "c"], False)]
