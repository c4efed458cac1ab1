"""Following a NOTIFY channel, written once: one LISTEN connection, reconnected with backoff.

A ``Follower`` holds a connection of its own (``autocommit``, named ``name`` in
``pg_stat_activity``) that LISTENs on one channel, on a daemon thread (or the calling thread:
``run``). Its owner gives three callbacks:

- ``connected(conn)`` after each (re)connection, once LISTEN is in place: read what may have
  been missed before it (so that nothing committed meanwhile is lost);
- ``heard(conn, payloads, poll_due)`` after notifications arrived (``payloads``: every one
  queued, in order) or ``poll_s`` passed without one (``poll_due`` is true at most once per
  ``poll_s``: the owner's backstop read);
- ``lost(error)`` when the connection failed or a callback raised; the follower then waits
  (capped exponential backoff, reset by a successful connection) and connects again.

The cache invalidator and the projection runner follow the events channel this way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[Any, ...]]

FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


def backoff_delays(first: float = FIRST_BACKOFF_S, cap: float = MAX_BACKOFF_S) -> Iterator[float]:
    """Waits between reconnection attempts: doubling from ``first``, never above ``cap``."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


def connect(url: str, name: str) -> Conn:
    """A connection for LISTEN: autocommit, bounded connect time, named for pg_stat_activity."""
    return psycopg.connect(url, autocommit=True, connect_timeout=5, application_name=name)


class Follower:
    """LISTENs on ``channel`` and calls its owner back; reconnects by itself until ``stop``."""

    def __init__(
        self,
        database_url: str,
        *,
        channel: str,
        name: str,
        what: str,
        poll_s: float,
        connected: Callable[[Conn], None],
        heard: Callable[[Conn, Sequence[str], bool], None],
        lost: Callable[[BaseException], None] = lambda _error: None,
        connection_errors: tuple[type[BaseException], ...] = (psycopg.Error,),
        opener: Callable[[str, str], Conn] = connect,
    ) -> None:
        self._url = database_url
        self._name = name
        self._what = what
        self._poll_s = poll_s
        self._connected = connected
        self._heard = heard
        self._lost = lost
        self._connection_errors = connection_errors
        self._open = opener
        self._listen = sql.SQL("LISTEN {}").format(sql.Identifier(channel)).as_string()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._conn: Conn | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.reconnects = 0
        """Connections lost and attempted again (for tests and metrics)."""

    def start(self, timeout: float = 10.0) -> None:
        """Follow on a daemon thread (once; later calls do nothing), and wait (at most
        ``timeout``) until the first ``connected`` has returned, so that no later change can be
        missed."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self.run, name=self._name, daemon=True)
            self._thread.start()
        self._ready.wait(timeout)

    def stop(self) -> None:
        """Stop following: closing the connection interrupts a wait for notifications."""
        self._stop.set()
        conn = self._conn
        if conn is not None:
            conn.close()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join()

    def run(self) -> None:
        """Follow on the calling thread until ``stop``."""
        delays = backoff_delays()
        while not self._stop.is_set():
            try:
                with self._open(self._url, self._name) as conn:
                    self._conn = conn
                    if self._stop.is_set():
                        return
                    conn.execute(self._listen)
                    self._connected(conn)
                    self._ready.set()
                    delays = backoff_delays()
                    self._follow(conn)
            except self._connection_errors as error:
                if self._stop.is_set():
                    return
                log.warning("%s lost its connection: %s", self._what, type(error).__name__)
                self._retry(error, next(delays))
            except Exception as error:  # a defect, not the connection: keep following anyway
                if self._stop.is_set():
                    return
                log.exception("%s failed; retrying", self._what)
                self._retry(error, next(delays))
            finally:
                self._conn = None

    def _retry(self, error: BaseException, delay: float) -> None:
        self.reconnects += 1
        self._lost(error)
        self._stop.wait(delay)

    def _follow(self, conn: Conn) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            timeout = max(0.0, last + self._poll_s - time.monotonic())
            payloads = [n.payload for n in conn.notifies(timeout=timeout, stop_after=1)]
            if payloads:  # and whatever queued behind it
                payloads.extend(n.payload for n in conn.notifies(timeout=0))
            now = time.monotonic()
            due = now - last >= self._poll_s
            if due:
                last = now
            if self._stop.is_set():
                return
            if payloads or due:
                self._heard(conn, payloads, due)
