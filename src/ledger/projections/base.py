"""What every projection shares: a view that writes rows and position together, in batches.

A projection (``eventsourcing.projection.Projection``) turns events into rows; its view (a
``PostgresTrackingRecorder``) owns the tables and the tracking row. The runner hands a
projection a *batch* of events inside one transaction in which it holds the tracking row's lock;
the rows and the new position commit together or not at all, so processing is exactly-once and
resumable, and two runners (two service processes) simply take turns.

A view writes a batch in two halves: ``prepare`` computes its rows (Python work that reads
nothing but the event log, so it can run ahead of the transaction, in another thread) and
``apply`` writes them in the step's transaction.

An event a view cannot project as it is never fails the batch: the view projects it in a safe
form or skips it, and records a ``Problem`` for it, by position, in ``ledger_projection_errors``
with the batch's rows (``ledger.projections.problems``, docs/adr/0016).
"""

from __future__ import annotations

import io
from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection
from eventsourcing.utils import get_topic
from psycopg import Copy, sql
from psycopg.copy import FileWriter
from psycopg.rows import DictRow

from ledger.adapters.log_order import START_MARK, LogPosition, Mark
from ledger.projections.positioned import Curs, Page, Positioned
from ledger.projections.problems import (
    INVALID_VALUE,
    PROBLEMS_TABLE,
    InvalidValue,
    Problem,
    describe,
    problem,
)

if TYPE_CHECKING:
    from ledger.projections.eventlog import EventLog

UPSTREAM = "Ledger"
"""The tracking rows' ``application_name``: the application whose events are projected."""


def event_problem(item: Positioned, code: str, error: BaseException | str) -> Problem:
    """The problem of a decoded event (``error``: what went wrong, or a note)."""
    event = item.event
    if isinstance(error, str):
        detail = error
    else:
        detail = str(error) if isinstance(error, InvalidValue) else describe(error)
    return problem(
        item.position,
        getattr(event, "originator_id", None),
        getattr(event, "originator_version", None),
        get_topic(type(event)),
        code=code,
        detail=detail,
    )


@dataclass(frozen=True, slots=True)
class ViewWrites:
    """What a view prepared for a page: its rows (the view's own form) and its problems."""

    rows: Any
    problems: list[Problem]


def copy_data(curs: Curs, rows: Iterable[Sequence[Any]], types: Iterable[str]) -> bytes:
    """``rows`` as the data of a ``COPY … FROM STDIN (FORMAT binary)`` into columns of these
    SQL ``types`` (psycopg's formatting, with the adapters of the connection of ``curs``;
    nothing is sent). Binary: no text to render here or to parse on the server."""
    buffer = io.BytesIO()
    with Copy(curs.connection.cursor(), binary=True, writer=FileWriter(buffer)) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)
    return buffer.getvalue()


def copy_checked(
    curs: Curs,
    rows: Sequence[Sequence[Any]],
    sources: Callable[[], Sequence[Positioned]],
    types: Iterable[str],
    problems: list[Problem],
) -> bytes:
    """``copy_data`` of the rows (``sources()[i]`` is the event row ``i`` comes from). Rows
    are checked before they get here; should one still not render, each is rendered alone to
    find it, and it is left out, recorded as ``invalid_value``."""
    sql_types = list(types)
    try:
        return copy_data(curs, rows, sql_types)
    except Exception:  # noqa: BLE001 - one row's value: found below
        good = []
        for item, row in zip(sources(), rows, strict=True):
            try:
                copy_data(curs, [row], sql_types)
            except Exception as error:  # noqa: BLE001 - whatever the value: the event's problem
                problems.append(event_problem(item, INVALID_VALUE, error))
                continue
            good.append(row)
        return copy_data(curs, good, sql_types) if good else b""


class LedgerView(PostgresTrackingRecorder):
    """A projection's tables and its single tracking row (eventsourcing's layout).

    Tables are created by the migrations, never here. ``tables`` lists what ``reset`` empties
    (and the view's rows of ``ledger_projection_errors`` go with them). ``log`` is the event log
    the projection follows (for the events a batch refers to). ``projection`` is the name of the
    projection the view belongs to.
    """

    tables: ClassVar[tuple[str, ...]]
    tracking_table: ClassVar[str]
    projection: ClassVar[str]

    def __init__(self, datastore: PostgresDatastore, log: EventLog) -> None:
        super().__init__(datastore, tracking_table_name=self.tracking_table)
        self.log = log
        tracking = sql.Identifier(self.tracking_table)
        self._ensure = (
            sql.SQL(
                "INSERT INTO {} (application_name, notification_id) VALUES (%s, 0) "
                "ON CONFLICT (application_name) DO NOTHING"
            )
            .format(tracking)
            .as_string()
        )
        self._select = sql.SQL(
            "SELECT transaction_id::text::bigint AS transaction_id, "
            "coalesce(notification_id, 0) AS notification_id, position "
            "FROM {} WHERE application_name = %s"
        ).format(tracking)
        self._lock = (self._select + sql.SQL(" FOR UPDATE")).as_string()
        self._read = self._select.as_string()
        self._advance = (
            sql.SQL(
                "UPDATE {} SET transaction_id = %s::text::xid8, notification_id = %s, "
                "position = %s WHERE application_name = %s"
            )
            .format(tracking)
            .as_string()
        )
        self._truncate = (
            sql.SQL("TRUNCATE {}")
            .format(sql.SQL(", ").join(sql.Identifier(t) for t in self.tables))
            .as_string()
        )
        problems = sql.Identifier(PROBLEMS_TABLE)
        self._forget = sql.SQL("DELETE FROM {} WHERE projection = %s").format(problems).as_string()
        self._record = (
            sql.SQL(
                "INSERT INTO {} (projection, position, stream_id, stream_version, topic, problem, "
                "detail, projected) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (projection, position) DO NOTHING"
            )
            .format(problems)
            .as_string()
        )

    def ensure_tracking(self, curs: Curs) -> None:
        """Create the tracking row at position 0 if this projection never ran."""
        curs.execute(self._ensure, (UPSTREAM,))

    def lock_position(self, curs: Curs) -> Mark:
        """The position, with the tracking row locked until the transaction ends."""
        curs.execute(self._lock, (UPSTREAM,))
        return _mark(curs.fetchone())

    def position(self, curs: Curs) -> Mark:
        """The position (no lock)."""
        curs.execute(self._read, (UPSTREAM,))
        return _mark(curs.fetchone())

    def advance(self, curs: Curs, mark: Mark) -> None:
        """Move the tracking row to ``mark`` (in the transaction that wrote the rows up to it)."""
        at, ordinal = mark
        curs.execute(self._advance, (at.transaction_id, at.notification_id, ordinal, UPSTREAM))

    def reset(self, curs: Curs) -> None:
        """Empty the tables, forget the recorded problems and go back to position 0 (the
        caller holds the tracking lock)."""
        curs.execute(self._truncate)
        curs.execute(self._forget, (self.projection,))
        self.advance(curs, START_MARK)

    def record(self, curs: Curs, problems: Iterable[Problem]) -> None:
        """Record problems in ``ledger_projection_errors`` (in the transaction of ``curs``)."""
        rows = [(self.projection, *p) for p in problems]
        if rows:
            curs.executemany(self._record, rows)

    @abstractmethod
    def prepare(self, curs: Curs, events: Sequence[Positioned], problems: list[Problem]) -> Any:
        """The rows for ``events``, ready for ``apply`` (ignored event types have none).

        An event that cannot be projected as it is gets its row in a safe form, or none, and
        a ``Problem`` appended to ``problems``; it never raises. May read the event log
        through ``curs``, and nothing else: it runs ahead of the step that applies it, on
        another connection, while the tracking row is not locked."""

    @abstractmethod
    def apply(self, curs: Curs, prepared: Any) -> None:
        """Write what ``prepare`` returned, in the step's transaction."""

    def prepare_page(self, curs: Curs, page: Page) -> ViewWrites:
        """``prepare`` for a page: its rows, and a problem for each event not projected as it
        is (the page's undecodable ones included)."""
        problems = list(page.unreadable)
        return ViewWrites(self.prepare(curs, page.events, problems), problems)

    def apply_writes(self, curs: Curs, writes: ViewWrites) -> None:
        """Write the rows and record the problems that ``prepare_page`` returned."""
        self.apply(curs, writes.rows)
        self.record(curs, writes.problems)

    def write(self, curs: Curs, events: Sequence[Positioned]) -> None:
        """Write the rows for ``events`` (both halves in the transaction of ``curs``)."""
        self.apply_writes(curs, self.prepare_page(curs, Page.of(events)))


def _mark(row: DictRow | None) -> Mark:
    if row is None:
        return START_MARK
    at = LogPosition(int(row["transaction_id"]), int(row["notification_id"]))
    return Mark(at, int(row["position"]))


TView = TypeVar("TView", bound=LedgerView)


class LedgerProjection(Projection[TView], Generic[TView]):
    """A projection of the ledger's events into a ``LedgerView``.

    ``ledger.projections.runner`` has the view prepare and apply many events per transaction,
    in the log's order. The library's one-event entry point (``process_event``, which
    ``eventsourcing.projection.ProjectionRunner`` calls with notification ids) is refused.
    """

    view_class: ClassVar[type[LedgerView]]

    def process_batch(self, curs: Curs, events: Sequence[Positioned]) -> None:
        self.view.write(curs, events)

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Refused: the library's runner follows notification ids, which no longer commit in
        order (docs/adr/0018); ``ledger.projections.runner`` follows the log's order."""
        msg = "ledger projections are run by ledger.projections.Projections, not one by one"
        raise NotImplementedError(msg)


__all__ = [
    "UPSTREAM",
    "Curs",
    "LedgerProjection",
    "LedgerView",
    "Page",
    "Positioned",
    "ViewWrites",
    "copy_checked",
    "copy_data",
    "event_problem",
]
