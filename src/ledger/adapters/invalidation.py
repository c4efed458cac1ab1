"""The cache invalidator: evicts from one process's verify cache what other processes changed."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg
from psycopg import sql

from ledger.application.verify import VerifierCache

log = logging.getLogger(__name__)


class CacheInvalidator:
    """Evicts, from one process's cache, what other processes changed.

    A thread LISTENs on the events table's channel (the recorder NOTIFYs once per committed
    batch, with its process's ``origin`` as payload) and reads the ids of the events after its
    last position; it also looks every ``poll_s``. Batches of its own process (``own_origin``)
    were evicted by the writing thread already, so they alone do not start a read: under write
    load that saves a query per batch, and ``poll_s`` still moves the position along.

    On any connection error it clears the cache, waits, reconnects and catches up from the
    position it had reached, so a change committed while it was disconnected is still evicted
    (entries cached meanwhile included).
    """

    BATCH = 10_000

    def __init__(
        self,
        database_url: str,
        cache: VerifierCache,
        *,
        events_table: str,
        channel: str,
        own_origin: str | None = None,
        poll_s: float = 1.0,
    ) -> None:
        self._url = database_url
        self._own_origin = own_origin
        self._cache = cache
        self._poll_s = poll_s
        self._listen = sql.SQL("LISTEN {}").format(sql.Identifier(channel)).as_string()
        table = sql.Identifier(events_table)
        self._head = sql.SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(table)
        self._since = (
            sql.SQL(
                "SELECT notification_id, originator_id FROM {} WHERE notification_id > %s "
                "ORDER BY notification_id LIMIT %s"
            )
            .format(table)
            .as_string()
        )
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._thread = threading.Thread(
            target=self._run, name="ledger-cache-invalidator", daemon=True
        )
        self.position: int | None = None  # None until the first connection finds the log's end

    def start(self, timeout: float = 10.0) -> None:
        """Start the thread and wait until it listens (so no later change can be missed)."""
        self._thread.start()
        self._ready.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            conn.close()  # interrupts a wait for notifications at once
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    self._conn = conn
                    if self._stop.is_set():
                        return
                    conn.execute(self._listen)
                    if self.position is None:
                        row = conn.execute(self._head).fetchone()
                        self.position = int(row[0]) if row else 0
                    self._catch_up(conn)
                    self._ready.set()
                    backoff = 0.1
                    self._follow(conn)
            except psycopg.Error as error:
                if self._stop.is_set():
                    return
                log.warning("cache invalidator lost its connection: %s", type(error).__name__)
                # Changes may have been missed while disconnected: forget everything.
                self._cache.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _follow(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            foreign = heard = False
            for notify in conn.notifies(timeout=self._poll_s, stop_after=1):
                heard = True
                foreign = notify.payload != self._own_origin
            if heard and not foreign:
                # Only our own batch so far: is another process's already queued behind it?
                foreign = any(n.payload != self._own_origin for n in conn.notifies(timeout=0))
            now = time.monotonic()
            if foreign or now - last >= self._poll_s:
                self._catch_up(conn)
                last = now

    def _catch_up(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        assert self.position is not None
        while True:
            rows = conn.execute(self._since, (self.position, self.BATCH)).fetchall()
            if not rows:
                return
            self._cache.evict(originator_id for _, originator_id in rows)
            self.position = rows[-1][0]
            if len(rows) < self.BATCH:
                return
