"""Evicting, from one process's verify cache, what other processes changed (ADR 0018).

Two paths, so that revocation never waits for the log's horizon:

- **Announcements.** A thread LISTENs on the events channel. Every writing process announces
  the credential ids of each committed batch there, after the commit and coalesced
  (``ledger.adapters.announcer``); the ids of another process's announcement are evicted the
  moment it arrives. The writing process itself evicted them when its commit returned, so its
  own announcements are skipped.
- **The backstop.** Every ``poll_s`` the thread also reads the log after its position, below
  the horizon (``ledger.adapters.log_order``), and evicts the stream id of every event it finds:
  an announcement that was lost (its process died between commit and send, a connection
  dropped) is caught there, once every older transaction of the cluster has ended. The cache's
  maximum entry lifetime bounds even that.

The thread is a ``ledger.adapters.follower.Follower``: on any connection error it clears the
cache, waits, reconnects and resumes the backstop from the position it had reached, so nothing
committed meanwhile is missed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Protocol
from uuid import UUID

from psycopg import sql

from ledger.adapters.announcer import parse_payload
from ledger.adapters.follower import Conn, Follower
from ledger.adapters.log_order import (
    HORIZON_QUERY,
    START,
    LogPosition,
    after_horizon_page,
    newest_below_query,
)

log = logging.getLogger(__name__)

INVALIDATOR_NAME = "ledger-cache-invalidator"
"""``application_name`` of the invalidator's connection."""


class EvictingCache(Protocol):
    def evict(self, credential_ids: Iterable[UUID]) -> None: ...

    def clear(self) -> None: ...


class CacheInvalidator:
    """Follows other processes' changes for one cache: announcements, and the log as backstop."""

    BATCH = 10_000

    def __init__(
        self,
        database_url: str,
        cache: EvictingCache,
        *,
        events_table: str,
        channel: str,
        own_origin: str | None = None,
        poll_s: float = 1.0,
    ) -> None:
        self._own_origin = own_origin
        self._cache = cache
        table = sql.Identifier(events_table)
        self._newest = newest_below_query(table)
        self._page = after_horizon_page(table, sql.SQL("originator_id"))
        self._follower = Follower(
            database_url,
            channel=channel,
            name=INVALIDATOR_NAME,
            what="cache invalidator",
            poll_s=poll_s,
            connected=self._connected,
            heard=self._heard_all,
            lost=self._lost,
        )
        self.position: LogPosition | None = None
        """How far the backstop has read (``None`` until the first connection)."""
        self.announced = 0
        """Announcements of other processes acted on (for tests and metrics)."""
        self.backstop_reads = 0
        """Times the backstop read the log (for tests and metrics)."""

    def start(self, timeout: float = 10.0) -> None:
        """Start following and wait until it listens (so no later change can be missed)."""
        self._follower.start(timeout)

    def stop(self) -> None:
        self._follower.stop()

    def _connected(self, conn: Conn) -> None:
        if self.position is None:
            # Everything below the horizon is in the table the cache reads; what is above
            # it, the backstop reads when it is final.
            self.position = self._newest_below(conn)
        self.catch_up(conn)

    def _heard_all(self, conn: Conn, payloads: Sequence[str], poll_due: bool) -> None:
        for payload in payloads:
            self._heard(payload)
        if poll_due:
            self.catch_up(conn)

    def _lost(self, _error: BaseException) -> None:
        # Announcements may have been missed while disconnected: forget everything.
        self._cache.clear()

    def _heard(self, payload: str) -> None:
        try:
            origin, ids = parse_payload(payload)
        except ValueError:
            log.warning("ignored a malformed change announcement")
            return
        if origin != self._own_origin and ids:
            self._cache.evict(ids)
            self.announced += 1

    def _newest_below(self, conn: Conn) -> LogPosition:
        horizon = conn.execute(HORIZON_QUERY).fetchone()
        assert horizon is not None
        row = conn.execute(self._newest, (horizon[0],)).fetchone()
        return START if row is None else LogPosition(int(row[0]), int(row[1]))

    def catch_up(self, conn: Conn) -> None:
        """The backstop: evict every stream written after the position, below the horizon."""
        assert self.position is not None
        self.backstop_reads += 1
        horizon_row = conn.execute(HORIZON_QUERY).fetchone()
        assert horizon_row is not None
        horizon = horizon_row[0]
        while True:
            position = self.position
            rows = conn.execute(
                self._page, (*position, horizon, self.BATCH), prepare=True
            ).fetchall()
            if not rows:
                return
            self._cache.evict(originator_id for originator_id, _, _ in rows)
            _, transaction_id, notification_id = rows[-1]
            self.position = LogPosition(int(transaction_id), int(notification_id))
            if len(rows) < self.BATCH:
                return
