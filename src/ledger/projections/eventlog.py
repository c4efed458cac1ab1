"""Reading the event log for the projections: a page at a time, or the next pages prepared ahead.

``EventLog.page`` is what a step reads inside its transaction: the events after a position,
decoded by the ledger's mapper. An event that does not decode (an unknown event type, a
payload that is not JSON...) is returned as a ``Problem`` in its place, never raised: one bad
event must not stop the page, nor the pages after it (docs/adr/0016). Each decoded event is
screened once (``EventScreen``): the views check the rows of those that fail it.

``ReadAhead`` reads the pages that come after in a thread, on a connection of its own, and
lets the projections *prepare* them (compute their rows, render their ``COPY`` data): while a
step writes one batch and waits on the server, the next one is read and prepared. A step only
ever uses a page that starts exactly at the position it finds under the tracking-row locks;
otherwise (another runner took a turn) it reads for itself, and the read-ahead is replaced, so
what commits is what a step without read-ahead would commit.

Pages follow the log's order, ``(transaction_id, notification_id)``, and hold only events
below the horizon (``ledger.adapters.log_order``, ADR 0018): every transaction below it has
ended, so nothing can ever appear before an event read. Why a page read earlier, outside the
step's transaction, is the same page: a later horizon is at least as high, and the events below
the earlier one are the same and come first in log order; so the page after ``p`` read earlier
is a prefix of the one the step would read (a shorter batch is a valid batch: the next step
starts after its last event). Preparing needs nothing but the events and, for the audit trail,
the creation events of the credentials they name, which committed before the events that name
them were written (so their transactions have lower ids) and never change.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    Mapper,
    StoredEvent,
)
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.utils import resolve_topic
from psycopg import sql
from psycopg.rows import tuple_row

from ledger.adapters.log_order import (
    HORIZON_QUERY,
    LogPosition,
    Mark,
    after_horizon_page,
    ordinal_after,
)
from ledger.adapters.reading_mapper import reading_mapper
from ledger.domain.base import LedgerAggregate
from ledger.projections.positioned import Curs, Page, Positioned
from ledger.projections.problems import (
    UNDECODABLE,
    UNKNOWN_EVENT_TYPE,
    EventScreen,
    Problem,
    describe,
    problem,
)

log = logging.getLogger(__name__)


class EventLog:
    """The ledger's event log, read and decoded for the projections.

    Events are decoded by a mapper like the application's (same transcodings, compressor and
    cipher) whose JSON decoding makes a repeated UUID once (``reading_mapper``)."""

    def __init__(self, mapper: Mapper[Any], events_table: str) -> None:
        self._mapper = reading_mapper(mapper)
        columns = sql.SQL("originator_id, originator_version, topic, state")
        table = sql.Identifier(events_table)
        self._after = after_horizon_page(table, columns)
        self._created = (
            sql.SQL("SELECT {} FROM {} WHERE originator_id = ANY(%s) AND originator_version = 1")
            .format(columns, table)
            .as_string()
        )
        self._topics: dict[str, bool] = {}
        self._screen = EventScreen()

    @property
    def mapper(self) -> Mapper[Any]:
        """What decodes the stored events."""
        return self._mapper

    @staticmethod
    def horizon(curs: Curs) -> int:
        """The horizon now (take it before the transaction of ``curs`` writes or locks)."""
        with curs.connection.cursor(row_factory=tuple_row) as tuples:
            row = tuples.execute(HORIZON_QUERY).fetchone()
        assert row is not None
        return int(row[0])

    def page(self, curs: Curs, after: Mark, limit: int, horizon: int) -> Page:
        """Up to ``limit`` events after ``after`` and below ``horizon``, in log order, in the
        transaction of ``curs``."""
        rows = self._rows(curs, self._after, (*after.at, horizon, limit))
        events: list[Positioned] = []
        unreadable: list[Problem] = []
        ordinal = after.ordinal
        last = after
        for originator_id, version, topic, state, transaction_id, notification_id in rows:
            at = LogPosition(transaction_id, notification_id)
            ordinal = ordinal_after(ordinal, at)
            last = Mark(at, ordinal)
            decoded = self._decode(originator_id, version, topic, state, ordinal)
            if isinstance(decoded, Problem):
                unreadable.append(decoded)
            else:
                events.append(Positioned(ordinal, decoded, self._screen(decoded), at))
        return Page(events, unreadable, last)

    def created(self, curs: Curs, stream_ids: Iterable[UUID]) -> dict[UUID, LedgerAggregate.Event]:
        """The first event of each of these streams (a credential's ``Minted``...), of those
        that decode."""
        found: dict[UUID, LedgerAggregate.Event] = {}
        for originator_id, version, topic, state in self._rows(
            curs, self._created, (list(stream_ids),)
        ):
            decoded = self._decode(originator_id, version, topic, state, 0)
            if not isinstance(decoded, Problem):
                found[decoded.originator_id] = decoded
        return found

    def _decode(
        self, originator_id: UUID, version: int, topic: str, state: bytes, position: int
    ) -> LedgerAggregate.Event | Problem:
        """The event, or the problem that stands in its place."""
        code, detail = UNKNOWN_EVENT_TYPE, "not an event type of this version of the ledger"
        if self._known_topic(topic):
            try:
                event = self._mapper.to_domain_event(
                    StoredEvent(originator_id, version, topic, state)
                )
            except Exception as error:  # noqa: BLE001 - whatever the payload holds: its own
                code, detail = UNDECODABLE, describe(error)
            else:
                if isinstance(event, LedgerAggregate.Event):
                    return event
        return problem(position, originator_id, version, topic, code=code, detail=detail)

    @staticmethod
    def _rows(curs: Curs, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        # Binary tuples: bytea arrives as bytes (no hex to parse), no dict per row.
        with curs.connection.cursor(row_factory=tuple_row) as tuples:
            tuples.execute(query, params, prepare=True, binary=True)
            return tuples.fetchall()

    def _known_topic(self, topic: str) -> bool:
        """Whether ``topic`` names an event class of the ledger. Only the ledger's own modules
        are imported to find out: a stored topic never makes this process import anything
        else."""
        known = self._topics.get(topic)
        if known is None:
            known = False
            if topic.partition(":")[0].startswith("ledger."):
                try:
                    found = resolve_topic(topic)
                except Exception:  # noqa: BLE001 - a missing module or class: not known
                    found = None
                known = isinstance(found, type) and issubclass(found, LedgerAggregate.Event)
            if len(self._topics) >= _MAX_TOPICS:
                self._topics.clear()
            self._topics[topic] = known
        return known


_MAX_TOPICS = 1024
"""How many topics ``EventLog`` remembers the verdict on (the ledger has a dozen)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the projections prepared (by name) for the events after ``after`` up to ``last``."""

    after: Mark
    last: Mark
    writes: dict[str, Any]


BULK_GC_THRESHOLDS = (50_000, 20, 100)
"""The cyclic collector's thresholds while a read-ahead runs (the default is (700, 10, 10)).

A prepared page is ~10 container objects per event, all alive until the step that takes it
commits, and none in a reference cycle: with the default thresholds the collector runs every ~70
events and, as pages pile up in the older generations, full collections follow; that was a
quarter of a rebuild's Python time (docs/adr/0014)."""

_gc_lock = threading.Lock()
_gc_users = 0
_gc_saved = gc.get_threshold()


def _raise_gc_thresholds() -> None:
    global _gc_users, _gc_saved  # noqa: PLW0603 - process-wide, like the collector itself
    with _gc_lock:
        if _gc_users == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(*BULK_GC_THRESHOLDS)
        _gc_users += 1


def _restore_gc_thresholds() -> None:
    global _gc_users  # noqa: PLW0603
    with _gc_lock:
        _gc_users -= 1
        if _gc_users == 0:
            gc.set_threshold(*_gc_saved)


Prepare = Callable[[Curs, Page], dict[str, Any]]
"""Each projection's prepared rows for a page, by projection name (may read the log)."""


class ReadAhead:
    """Reads and prepares the pages after ``start`` (up to ``until``) in a thread, ``depth``
    pages ahead of the caller. Close it (or use it as a context manager) to stop the thread.

    While any read-ahead of the process is open, the garbage collector runs with
    ``BULK_GC_THRESHOLDS``."""

    def __init__(
        self,
        log: EventLog,
        datastore: PostgresDatastore,
        prepare: Prepare,
        *,
        start: Mark,
        until: LogPosition,
        limit: int,
        depth: int = 2,
    ) -> None:
        self._log = log
        self._datastore = datastore
        self._prepare = prepare
        self._until = until
        self._limit = limit
        self._pages: queue.Queue[Prepared | None] = queue.Queue(depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=self._run, args=(start,), name="ledger-projections-read-ahead", daemon=True
        )
        _raise_gc_thresholds()
        self._thread.start()

    def next(self) -> Prepared | None:
        """The next prepared page (waiting for it), or ``None`` when there is none: the log's
        end or ``until`` was reached, or reading failed (the step then reads for itself and
        meets the error)."""
        if self._done:
            return None
        item = self._pages.get()
        if item is None:
            self.close()
        return item

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._done = True
        self._stop.set()
        with contextlib.suppress(queue.Empty):  # room for a put in progress
            self._pages.get_nowait()
        self._thread.join()
        _restore_gc_thresholds()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, mark: Mark) -> None:
        try:
            while not self._stop.is_set() and mark.at < self._until:
                with self._datastore.transaction(commit=False) as curs:
                    # a read-only transaction: it has no id that could hold the horizon back
                    horizon = self._log.horizon(curs)
                    page = self._log.page(curs, mark, self._limit, horizon)
                    if not page.size:
                        break
                    writes = self._prepare(curs, page)
                self._put(Prepared(mark, page.last, writes))
                mark = page.last
        except Exception:  # the step reads for itself; it reports what is really wrong
            log.debug("projection read-ahead stopped", exc_info=True)
        finally:
            self._put(None)  # the end: of the log, at ``until``, or after an error

    def _put(self, item: Prepared | None) -> None:
        while not self._stop.is_set():
            try:
                self._pages.put(item, timeout=0.05)
            except queue.Full:
                continue
            return
