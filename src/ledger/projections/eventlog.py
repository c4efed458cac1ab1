"""Reading the event log for the projections: a page at a time, or the next pages prepared ahead.

``EventLog.page`` is what a step reads inside its transaction: the events after a position,
decoded by the ledger's mapper. ``ReadAhead`` reads the pages that come after in a thread, on a
connection of its own, and lets the projections *prepare* them (compute their rows, render
their ``COPY`` data): while a step writes one batch and waits on the server, the next one is
read and prepared. A step only ever uses a page that starts exactly at the position it finds
under the tracking-row locks; otherwise (another runner took a turn) it reads for itself, and
the read-ahead is replaced, so what commits is what a step without read-ahead would commit.

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
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    JSONTranscoder,
    Mapper,
    StoredEvent,
    Transcoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from eventsourcing.postgres import PostgresDatastore
from psycopg import sql
from psycopg.rows import tuple_row

from ledger.adapters.log_order import (
    HORIZON_QUERY,
    LogPosition,
    Mark,
    after_horizon_page,
    ordinal_after,
)
from ledger.domain.base import LedgerAggregate
from ledger.projections.base import Curs, Positioned

log = logging.getLogger(__name__)


class _ReadingTranscoder(Transcoder):
    """The application's JSON transcoder, decoding the same values, except that a UUID it has
    decoded before is not made again (a user's id is in every event of each of their tokens).
    UUIDs are immutable: sharing one object is safe. At most ``max_entries`` are kept."""

    def __init__(self, transcoder: JSONTranscoder, max_entries: int = 65_536) -> None:
        self._transcoder = transcoder
        self._names = transcoder.names
        self._uuids: dict[str, UUID] = {}
        self._max_entries = max_entries
        self._decoder = json.JSONDecoder(object_hook=self._decode_obj)

    def encode(self, obj: Any) -> bytes:
        return self._transcoder.encode(obj)

    def decode(self, data: bytes) -> Any:
        return self._decoder.decode(data.decode("utf8"))

    def _decode_obj(self, d: dict[str, Any]) -> Any:
        # The library's format: a transcoded value is {"_type_": name, "_data_": data}.
        if len(d) != 2 or "_type_" not in d or "_data_" not in d:
            return d
        name, data = d["_type_"], d["_data_"]
        if name == UUIDAsHex.name:
            uuid = self._uuids.get(data)
            if uuid is None:
                if len(self._uuids) >= self._max_entries:
                    self._uuids.clear()
                uuid = self._uuids[data] = UUID(data)
            return uuid
        transcoding = self._names.get(name)
        if transcoding is None:
            msg = f"Data serialized with name {name!r} is not deserializable."
            raise TranscodingNotRegisteredError(msg)
        return transcoding.decode(data)


class EventLog:
    """The ledger's event log, read and decoded for the projections.

    Events are decoded by a mapper like the application's (same transcodings, compressor and
    cipher) whose JSON decoding makes a repeated UUID once (``_ReadingTranscoder``)."""

    def __init__(self, mapper: Mapper[Any], events_table: str) -> None:
        transcoder = mapper.transcoder
        self._mapper = (
            Mapper(_ReadingTranscoder(transcoder), mapper.compressor, mapper.cipher)
            if type(transcoder) is JSONTranscoder  # not a subclass: it may decode otherwise
            else mapper
        )
        columns = sql.SQL("originator_id, originator_version, topic, state")
        table = sql.Identifier(events_table)
        self._after = after_horizon_page(table, columns)
        self._created = (
            sql.SQL("SELECT {} FROM {} WHERE originator_id = ANY(%s) AND originator_version = 1")
            .format(columns, table)
            .as_string()
        )

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

    def page(self, curs: Curs, after: Mark, limit: int, horizon: int) -> list[Positioned]:
        """Up to ``limit`` events after ``after`` and below ``horizon``, in log order, in the
        transaction of ``curs``."""
        rows = self._rows(curs, self._after, (*after.at, horizon, limit))
        decode = self._mapper.to_domain_event
        batch = []
        ordinal = after.ordinal
        for originator_id, version, topic, state, transaction_id, notification_id in rows:
            event = decode(StoredEvent(originator_id, version, topic, state))
            assert isinstance(event, LedgerAggregate.Event)
            at = LogPosition(transaction_id, notification_id)
            ordinal = ordinal_after(ordinal, at)
            batch.append(Positioned(ordinal, event, at))
        return batch

    def created(self, curs: Curs, stream_ids: Iterable[UUID]) -> dict[UUID, LedgerAggregate.Event]:
        """The first event of each of these streams (a credential's ``Minted``...)."""
        decode = self._mapper.to_domain_event
        found: dict[UUID, LedgerAggregate.Event] = {}
        for originator_id, version, topic, state in self._rows(
            curs, self._created, (list(stream_ids),)
        ):
            event = decode(StoredEvent(originator_id, version, topic, state))
            assert isinstance(event, LedgerAggregate.Event)
            found[event.originator_id] = event
        return found

    @staticmethod
    def _rows(curs: Curs, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        # Binary tuples: bytea arrives as bytes (no hex to parse), no dict per row.
        with curs.connection.cursor(row_factory=tuple_row) as tuples:
            tuples.execute(query, params, prepare=True, binary=True)
            return tuples.fetchall()


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


Prepare = Callable[[Curs, list[Positioned]], dict[str, Any]]
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
                    if not page:
                        break
                    writes = self._prepare(curs, page)
                last = Mark(page[-1].at, page[-1].position)
                self._put(Prepared(mark, last, writes))
                mark = last
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
