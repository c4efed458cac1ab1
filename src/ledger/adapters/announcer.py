"""Announcing committed changes to other processes, outside the write transactions.

A write transaction sends no ``NOTIFY``: PostgreSQL serializes the commits of notifying
transactions with one cluster-wide lock, held until each commit record is flushed, so a
``NOTIFY`` per write would put every writer back in one line (ADR 0018). Instead, after a batch
commits, the writer hands the ids of the credentials it changed to a ``ChangeAnnouncer``; its
thread sends what it was handed at once, as one short transaction of ``pg_notify`` calls, and
everything handed over while that transaction is in flight goes in the next one: one notify
commit per round trip under load (about one per millisecond here), not one per command
(``min_interval_s`` can space them further).

The payload is ``<origin>:<id>,<id>,...@<lsn>`` (ids as 32 hex digits, chunked below
PostgreSQL's 8,000-byte limit); an announcement without ids still wakes the listeners (the
projections' runner). ``<lsn>`` is the primary's WAL position read by the server in the
notifying statement, so after every commit the ids come from: a listener that reads from a
replica reads these credentials only from one that has replayed that far (ADR 0023).

An announcement can be lost (the process dies between commit and send, a connection drops):
listeners keep a backstop that follows the log (``ledger.adapters.invalidation``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

import psycopg

log = logging.getLogger(__name__)

MAX_PAYLOAD = 7_900
"""Bytes per notification payload before its LSN (PostgreSQL's limit is 8,000)."""

ANNOUNCER_NAME = "ledger-announcer"
"""``application_name`` of the announcer's connection."""

_SEND = (
    "SELECT pg_notify(%s, p || '@' || pg_current_wal_insert_lsn()::text) "
    "FROM unnest(%s::text[]) AS p"
)


def payloads(origin: str, credential_ids: Iterable[UUID]) -> list[str]:
    """The notification payloads that announce ``credential_ids`` from ``origin``."""
    head = origin + ":"
    result: list[str] = []
    current: list[str] = []
    size = len(head)
    for credential_id in credential_ids:
        text = credential_id.hex
        if current and size + len(text) + 1 > MAX_PAYLOAD:
            result.append(head + ",".join(current))
            current, size = [], len(head)
        current.append(text)
        size += len(text) + 1
    result.append(head + ",".join(current))
    return result


@dataclass(frozen=True, slots=True)
class Announcement:
    """What one notification says: who sent it, which credentials changed, and the primary's
    WAL position after their commits (``None`` from a sender that does not say)."""

    origin: str
    credential_ids: list[UUID]
    lsn: str | None


def parse_payload(payload: str) -> Announcement:
    """The announcement in a notification's payload (``ValueError`` if malformed)."""
    body, at, lsn = payload.partition("@")
    origin, sep, ids = body.partition(":")
    if not sep or (at and "/" not in lsn):
        msg = "not an announcement"
        raise ValueError(msg)
    return Announcement(origin, [UUID(hex=text) for text in ids.split(",") if text], lsn or None)


class ChangeAnnouncer:
    """Sends what ``announce`` was given, coalesced, from a thread on a connection of its own."""

    def __init__(
        self,
        database_url: str,
        *,
        channel: str,
        origin: str,
        min_interval_s: float = 0.0,
    ) -> None:
        self._url = database_url
        self._channel = channel
        self._origin = origin
        self._min_interval_s = min_interval_s
        self._pending: set[UUID] = set()
        self._wanted = False  # something (maybe no ids) awaits sending
        self._wakeup = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self.sent = 0
        """Notify transactions sent (for tests and metrics)."""

    def announce(self, credential_ids: Iterable[UUID]) -> None:
        """Queue an announcement of these credentials (an empty one wakes listeners only)."""
        with self._wakeup:
            if self._closed:
                return
            self._pending.update(credential_ids)
            if not self._wanted:
                self._wanted = True
                self._wakeup.notify()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ledger-announcer", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Send what is queued, then stop the thread."""
        with self._wakeup:
            self._closed = True
            self._wakeup.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        if self._conn is not None:
            self._conn.close()

    def _run(self) -> None:
        last = 0.0
        backoff = 0.05
        while True:
            with self._wakeup:
                while not self._wanted and not self._closed:
                    self._wakeup.wait()
                if not self._wanted:
                    return
            # Coalesce: whatever arrives within the interval goes in the same transaction.
            pause = last + self._min_interval_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            with self._wakeup:
                ids, self._pending = self._pending, set()
                self._wanted = False
                closing = self._closed
            try:
                self._send(ids)
                backoff = 0.05
            except psycopg.Error as error:
                # Lost: the listeners' log backstop will evict these credentials.
                log.warning("change announcement failed: %s", type(error).__name__)
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                if closing:
                    return
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            last = time.monotonic()

    def _send(self, ids: set[UUID]) -> None:
        conn = self._conn
        if conn is None or conn.closed:
            conn = self._conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=5, application_name=ANNOUNCER_NAME
            )
            # A notification is not durable anyway: its commit need not wait for the WAL
            # flush (nor hold the notify queue's lock that long).
            conn.execute("SET synchronous_commit = off")
        conn.execute(_SEND, (self._channel, payloads(self._origin, ids)), prepare=True)
        self.sent += 1
