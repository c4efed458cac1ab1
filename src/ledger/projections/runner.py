"""Running the projections: batched catch-up, live following, rebuild, status.

Every step is one transaction: lock the projections' tracking rows (in name order), read the
events after the lowest position, let each projection at that position write its rows, move
its tracking row to the batch's last event (ignored events are tracked too), commit. Rows and
position commit together, so a runner killed at any moment resumes where the last commit left
it, with nothing lost or doubled; several runners (several service processes, a CLI) take
turns on the row locks instead of duplicating work.

Events are read in the log's order and only below the horizon (``ledger.adapters.log_order``,
ADR 0018); a position is a ``Mark``: the last event's place in that order and its ordinal.

The live runner follows the event store's channel (``ledger.adapters.follower``: writers
announce every committed batch there, after the commit, ``ledger.adapters.announcer``), catches
up on each announcement (and every ``poll_s`` without one), and reconnects by itself when its
connection drops.

Read after write: ``wait_current`` finds the newest committed event, waits (at most
``wait_timeout_s``, then ``ServiceUnavailable``) until the horizon has passed it, and catches up
to it in the calling thread. A command that returned before has committed at or before that
event, so the query that follows sees it; if the live runner is mid-batch the caller waits on
its row lock.

No stored value stops a projection (docs/adr/0016): a view projects an event it cannot take as
it is in a safe form, or skips it, and records it in ``ledger_projection_errors``. Should the
database still refuse a batch's rows (a data error), the step finds the event by bisecting the
batch under savepoints, records it as ``rejected_by_store`` and writes the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import PersistenceError
from eventsourcing.postgres import PostgresDatastore
from psycopg import sql

from ledger.adapters.follower import Conn, Follower
from ledger.adapters.log_order import (
    START,
    LogPosition,
    Mark,
    newest_below_query,
    newest_committed_query,
)
from ledger.domain.clock import Clock
from ledger.domain.errors import ServiceUnavailable, UnknownProjection
from ledger.projections.audit_trail import AuditTrail
from ledger.projections.base import (
    Curs,
    LedgerProjection,
    LedgerView,
    Page,
    Positioned,
    ViewWrites,
    event_problem,
)
from ledger.projections.credentials import Credentials
from ledger.projections.eventlog import EventLog, Prepare, Prepared, ReadAhead
from ledger.projections.problems import PROBLEMS_TABLE, REJECTED_BY_STORE, UNSAFE_TEXT, describe

log = logging.getLogger(__name__)

PROJECTION_CLASSES: tuple[type[LedgerProjection[Any]], ...] = (AuditTrail, Credentials)
NAMES = tuple(sorted(cls.name for cls in PROJECTION_CLASSES))

LISTENER_NAME = "ledger-projections"
"""``application_name`` of the live runner's LISTEN connection (visible in pg_stat_activity)."""

HOLDER_QUERY = (
    "SELECT pid, datname, application_name, state, "
    "extract(epoch FROM clock_timestamp() - xact_start)::float8 AS age "
    "FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() "
    "ORDER BY age(backend_xid) DESC LIMIT 1"
)
"""The backend whose transaction id is the oldest of the cluster: the one holding the horizon."""

ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"
"""Run at the start of each step's transaction (docs/adr/0014)."""

Progress = Callable[[int, int], None]
"""Called after each batch with (lowest ordinal reached, target ordinal)."""


REFUSED_DATA_CLASSES = frozenset({"22", "23", "54"})
"""SQLSTATE classes of a database refusing the data itself (data exception, integrity
constraint, program limit exceeded), as opposed to the connection or the server failing."""


def refused_data(error: psycopg.Error) -> bool:
    """Whether the database (or psycopg, before sending) refused the values written, so that
    the same rows would be refused again: the batch holds an event to isolate."""
    if error.sqlstate is None:
        return isinstance(error, psycopg.DataError)
    return error.sqlstate[:2] in REFUSED_DATA_CLASSES


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """Where a projection stands against the head of the event log (ordinals; ``lag_events``
    counts the committed events after its position), and how many events it projected in a
    safe form (``sanitized``) or could not project (``skipped``)."""

    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    skipped: int = 0
    sanitized: int = 0


@dataclass(frozen=True, slots=True)
class ProjectionError:
    """An event a projection projected in a safe form or skipped (``ledger_projection_errors``)."""

    projection: str
    position: int
    stream_id: str | None
    stream_version: int | None
    topic: str
    problem: str
    detail: str
    projected: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "position": self.position,
            "stream_id": self.stream_id,
            "stream_version": self.stream_version,
            "topic": self.topic,
            "problem": self.problem,
            "detail": self.detail,
            "projected": self.projected,
        }


@dataclass(frozen=True, slots=True)
class HorizonStatus:
    """How far the horizon trails the newest write, and the oldest transaction holding it.

    ``behind_events``: committed events at or above the horizon (readers cannot read them yet);
    ``behind_transactions``: transaction ids between the horizon and the newest event's;
    ``holder_*``: the backend whose transaction is the oldest of the cluster (any database), if
    any transaction is open."""

    horizon: int
    newest_transaction: int | None
    behind_events: int
    behind_transactions: int
    holder_pid: int | None = None
    holder_database: str | None = None
    holder_application: str | None = None
    holder_state: str | None = None
    holder_age_seconds: float | None = None


class Projections:
    """The ledger's projections over one event store, and the runner that feeds them."""

    def __init__(
        self,
        app: Application[Any],
        datastore: PostgresDatastore,
        *,
        database_url: str,
        events_table: str,
        channel: str,
        clock: Clock,
        batch_size: int = 5000,
        poll_s: float = 1.0,
        wait_timeout_s: float = 5.0,
    ) -> None:
        self._datastore = datastore
        self._wait_timeout_s = wait_timeout_s
        self._clock = clock
        self.batch_size = batch_size
        self.log = EventLog(app.mapper, events_table)
        """The event log the projections follow."""
        self.projections: dict[str, LedgerProjection[Any]] = {
            cls.name: cls(view=cls.view_class(datastore, self.log)) for cls in PROJECTION_CLASSES
        }
        table = sql.Identifier(events_table)
        self._newest_below = newest_below_query(table)
        self._newest_committed = newest_committed_query(table)
        self._count_after = (
            sql.SQL(
                "SELECT count(*) AS n FROM {} "
                "WHERE (transaction_id, notification_id) > (%s::text::xid8, %s)"
            )
            .format(table)
            .as_string()
        )
        self._ordinal_of = (
            sql.SQL(
                "SELECT (SELECT coalesce(max(notification_id), 0) FROM {t} "
                "WHERE transaction_id = '0') + (SELECT count(*) FROM {t} "
                "WHERE transaction_id > '0' "
                "AND (transaction_id, notification_id) <= (%s::text::xid8, %s)) AS n"
            )
            .format(t=table)
            .as_string()
        )
        self._behind = (
            sql.SQL(
                "SELECT count(*) AS n, max(transaction_id)::text::bigint AS newest "
                "FROM {} WHERE transaction_id >= %s::text::xid8"
            )
            .format(table)
            .as_string()
        )
        problems = sql.Identifier(PROBLEMS_TABLE)
        self._problem_counts = (
            sql.SQL(
                "SELECT projection, problem, count(*) AS n FROM {} GROUP BY projection, problem"
            )
            .format(problems)
            .as_string()
        )
        self._problems = (
            sql.SQL(
                "SELECT projection, position, stream_id, stream_version, topic, problem, detail, "
                "projected FROM {} WHERE (%(name)s::text IS NULL OR projection = %(name)s) "
                "AND position > %(after)s ORDER BY position, projection LIMIT %(limit)s"
            )
            .format(problems)
            .as_string()
        )
        self._tracking_ready = False
        self._follower = Follower(
            database_url,
            channel=channel,
            name=LISTENER_NAME,
            what="projection runner",
            poll_s=poll_s,
            connected=lambda _conn: self.catch_up(),
            heard=self._heard,
            connection_errors=(psycopg.Error, PersistenceError),
        )
        self.batches = 0
        """Batches this process committed (for metrics and tests)."""

    # ------------------------------------------------------------------------------- names

    def names(self, names: Iterable[str] | None = None) -> list[str]:
        """The given projection names, checked and sorted (all of them by default)."""
        if names is None:
            return list(NAMES)
        chosen = sorted(set(names))
        for name in chosen:
            if name not in self.projections:
                msg = f"unknown projection {name!r}: choose from {', '.join(NAMES)}"
                raise UnknownProjection(msg)
        return chosen

    # ------------------------------------------------------------------------------ batches

    def head(self) -> LogPosition:
        """The place of the newest event below the horizon (``START`` for an empty store)."""
        with self._datastore.transaction(commit=False) as curs:
            return self._head(curs, self.log.horizon(curs))

    def _head(self, curs: Curs, horizon: int) -> LogPosition:
        curs.execute(self._newest_below, (horizon,))
        row = curs.fetchone()
        return START if row is None else LogPosition(*(int(v) for v in row.values()))

    def _newest(self, curs: Curs) -> LogPosition:
        curs.execute(self._newest_committed)
        row = curs.fetchone()
        return START if row is None else LogPosition(*(int(v) for v in row.values()))

    def _lock_positions(self, curs: Curs, names: Sequence[str]) -> dict[str, Mark]:
        if not self._tracking_ready:
            for name in NAMES:
                self.projections[name].view.ensure_tracking(curs)
        return {name: self.projections[name].view.lock_position(curs) for name in names}

    def _prepare(self, names: Sequence[str]) -> Prepare:
        """What prepares a page for the named projections (see ``LedgerView.prepare``)."""

        def prepare(curs: Curs, page: Page) -> dict[str, Any]:
            return {name: self.projections[name].view.prepare_page(curs, page) for name in names}

        return prepare

    def read_ahead(self, names: Sequence[str], *, start: Mark, until: LogPosition) -> ReadAhead:
        """Read and prepare, in a thread, the batches after ``start`` up to ``until`` for the
        named projections (``step(names, prepared=...)`` takes them); close it when done."""
        return ReadAhead(
            self.log,
            self._datastore,
            self._prepare(names),
            start=start,
            until=until,
            limit=self.batch_size,
        )

    def step(
        self,
        names: Iterable[str] | None = None,
        until: LogPosition | None = None,
        prepared: Prepared | None = None,
    ) -> Mark | None:
        """Process one batch in one transaction; the lowest position reached, or ``None`` when
        every named projection is at ``until`` (or at the horizon's head) already. The batch
        is ``prepared`` (by a read-ahead) when that starts at the position found under the
        locks and has rows for every projection there; otherwise it is read and prepared here."""
        chosen = self.names(names)
        with self._datastore.transaction(commit=True) as curs:
            # Derived rows: the commit need not wait for the WAL to reach the disk. A server
            # crash can only undo whole batches (rows and position), which run again.
            curs.execute(ASYNC_COMMIT)
            # Before the row locks give this transaction an id that would hold it back.
            horizon = self.log.horizon(curs)
            positions = self._lock_positions(curs, chosen)
            low = min(positions.values())
            if until is not None and low.at >= until:
                return None
            behind = [name for name in chosen if positions[name] == low]
            if prepared is None or prepared.after != low or not prepared.writes.keys() >= {*behind}:
                if prepared is not None:
                    log.debug("prepared batch after %s not used: at %s", prepared.after, low)
                page = self.log.page(curs, low, self.batch_size, horizon)
                if not page.size:
                    return None
                writes = self._prepare(behind)(curs, page)
                prepared = Prepared(low, page.last, writes)
            for name in behind:
                view = self.projections[name].view
                self._apply(
                    curs,
                    view,
                    prepared.writes[name],
                    after=low,
                    last=prepared.last,
                    horizon=horizon,
                )
                view.advance(curs, prepared.last)
                positions[name] = prepared.last
        self._tracking_ready = True
        self.batches += 1
        return min(positions.values())

    def _apply(
        self,
        curs: Curs,
        view: LedgerView,
        writes: ViewWrites,
        *,
        after: Mark,
        last: Mark,
        horizon: int,
    ) -> None:
        """Write a view's prepared batch under a savepoint; if the database refuses its data,
        write the batch's events again, isolating those it refuses (``_isolate``)."""
        try:
            with curs.connection.transaction():
                view.apply_writes(curs, writes)
        except psycopg.Error as error:
            if not refused_data(error):
                raise
            log.warning(
                "projection %s: the store refused a batch after %d (%s); isolating its events",
                view.projection,
                after.ordinal,
                describe(error),
            )
            # the step's horizon: the same events as the batch (and perhaps more, left out)
            page = self.log.page(curs, after, self.batch_size, horizon)
            self._isolate(curs, view, [e for e in page.events if e.at <= last.at])
            view.record(curs, [p for p in page.unreadable if p.position <= last.ordinal])

    def _isolate(self, curs: Curs, view: LedgerView, events: Sequence[Positioned]) -> None:
        """Write the events' rows, each half of a refused set again on its own, down to the
        single events the database refuses: those are recorded as ``rejected_by_store``."""
        if not events:
            return
        try:
            with curs.connection.transaction():
                view.apply_writes(curs, view.prepare_page(curs, Page.of(events)))
        except psycopg.Error as error:
            if not refused_data(error):
                raise
            if len(events) == 1:
                view.record(curs, [event_problem(events[0], REJECTED_BY_STORE, error)])
                return
            half = len(events) // 2
            self._isolate(curs, view, events[:half])
            self._isolate(curs, view, events[half:])

    def catch_up(
        self,
        names: Iterable[str] | None = None,
        *,
        until: LogPosition | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Process batches until the named projections reach ``until`` (default: the newest
        event below the horizon).

        After a first full batch, the next ones are read and prepared ahead in a thread
        (``read_ahead``) while each is written; the wait for one happens before the step's
        transaction, so the tracking rows stay locked only while rows are written. A read-ahead
        that another runner's turn made useless is replaced."""
        chosen = self.names(names)
        target = self.head() if until is None else until
        target_ordinal = self._ordinal_target(target) if progress is not None else 0
        ahead: ReadAhead | None = None
        prepared: Prepared | None = None
        try:
            while (reached := self.step(chosen, until=target, prepared=prepared)) is not None:
                if progress is not None:
                    progress(reached.ordinal, max(target_ordinal, reached.ordinal))
                if reached.at >= target:
                    break
                if ahead is not None and (prepared is None or prepared.last != reached):
                    ahead.close()  # finished, or out of step with the tracking rows
                    ahead = None
                if ahead is None:
                    ahead = self.read_ahead(chosen, start=reached, until=target)
                prepared = ahead.next()
        finally:
            if ahead is not None:
                ahead.close()

    def _ordinal_target(self, target: LogPosition) -> int:
        """The ordinal of the event at ``target`` (counted: for progress reports only)."""
        if target.transaction_id == 0:  # in the old log, an ordinal is the notification id
            return target.notification_id
        with self._datastore.transaction(commit=False) as curs:
            curs.execute(self._ordinal_of, target)
            row = curs.fetchone()
        return int(row["n"]) if row else 0

    def wait_current(self, names: Iterable[str] | None = None) -> None:
        """Return once the named projections reflect every event committed before the call.

        One query when they are current already (the usual case with a live runner);
        otherwise wait until the horizon passes the newest committed event (at most
        ``wait_timeout_s``: a transaction held open elsewhere in the cluster holds it back,
        and then this raises ``ServiceUnavailable``), and catch up to that event."""
        chosen = self.names(names)
        with self._datastore.transaction(commit=False) as curs:
            newest = self._newest(curs)
            if all(self.projections[n].view.position(curs).at >= newest for n in chosen):
                return
        deadline = time.monotonic() + self._wait_timeout_s
        pause = 0.001
        while True:
            with self._datastore.transaction(commit=False) as curs:
                horizon = self.log.horizon(curs)
            if horizon > newest.transaction_id:
                break
            if time.monotonic() >= deadline:
                status = self.horizon()
                msg = (
                    "the event log's horizon is held back by an open transaction"
                    + (f" (backend {status.holder_pid})" if status.holder_pid else "")
                    + "; try again shortly"
                )
                raise ServiceUnavailable(msg)
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        self.catch_up(chosen, until=newest)

    def rebuild(self, names: Iterable[str] | None = None, progress: Progress | None = None) -> int:
        """Empty the named projections and build them again from the first event; returns the
        ordinal reached (the number of events, for a log written after migration 0004).
        Readers meanwhile wait in ``wait_current``, never see half a view."""
        chosen = self.names(names)
        with self._datastore.transaction(commit=True) as curs:
            self._lock_positions(curs, chosen)
            for name in chosen:
                self.projections[name].view.reset(curs)
        self._tracking_ready = True
        target = self.head()
        self.catch_up(chosen, until=target, progress=progress)
        with self._datastore.transaction(commit=False) as curs:
            return min(int(self.projections[name].view.position(curs).ordinal) for name in chosen)

    # ------------------------------------------------------------------------------ status

    def status(self) -> list[ProjectionStatus]:
        """Each projection's position and lag (events behind, and age of the oldest of them
        by its recorded time)."""
        now = self._clock.now()
        counts = self.problem_counts()
        result = []
        with self._datastore.transaction(commit=False) as curs:
            horizon = self.log.horizon(curs)
            for name in NAMES:
                mark = self.projections[name].view.position(curs)
                curs.execute(self._count_after, mark.at)
                counted = curs.fetchone()
                lag_events = int(counted["n"]) if counted else 0
                lag_seconds = 0.0
                if lag_events:
                    oldest = self.log.page(curs, mark, 1, horizon).events
                    recorded = getattr(oldest[0].event, "timestamp", None) if oldest else None
                    if isinstance(recorded, datetime) and recorded.utcoffset() is not None:
                        lag_seconds = max(0.0, (now - recorded).total_seconds())
                mine = {
                    problem: n for (projection, problem), n in counts.items() if projection == name
                }
                sanitized = mine.get(UNSAFE_TEXT, 0)
                skipped = sum(mine.values()) - sanitized
                result.append(
                    ProjectionStatus(
                        name,
                        mark.ordinal,
                        mark.ordinal + lag_events,
                        lag_events,
                        lag_seconds,
                        skipped,
                        sanitized,
                    )
                )
        return result

    def problem_counts(self) -> dict[tuple[str, str], int]:
        """How many events each projection recorded, by (projection, problem code)."""
        with self._datastore.transaction(commit=False) as curs:
            curs.execute(self._problem_counts)
            return {(row["projection"], row["problem"]): int(row["n"]) for row in curs.fetchall()}

    def errors(
        self, name: str | None = None, *, after: int = 0, limit: int = 100
    ) -> list[ProjectionError]:
        """The events the projections (or the one named) projected in a safe form or skipped,
        by position, after ``after``, at most ``limit``."""
        if name is not None:
            self.names([name])
        with self._datastore.transaction(commit=False) as curs:
            curs.execute(self._problems, {"name": name, "after": after, "limit": limit})
            return [
                ProjectionError(
                    projection=row["projection"],
                    position=int(row["position"]),
                    stream_id=str(row["stream_id"]) if row["stream_id"] else None,
                    stream_version=row["stream_version"],
                    topic=row["topic"],
                    problem=row["problem"],
                    detail=row["detail"],
                    projected=row["projected"],
                )
                for row in curs.fetchall()
            ]

    def lag(self) -> dict[str, int]:
        """How many committed events each projection is behind."""
        lags = {}
        with self._datastore.transaction(commit=False) as curs:
            for name in NAMES:
                mark = self.projections[name].view.position(curs)
                curs.execute(self._count_after, mark.at)
                row = curs.fetchone()
                lags[name] = int(row["n"]) if row else 0
        return lags

    def horizon(self) -> HorizonStatus:
        """How far the horizon trails the newest write, and which backend holds it back."""
        with self._datastore.transaction(commit=False) as curs:
            horizon = self.log.horizon(curs)
            curs.execute(self._behind, (horizon,))
            behind = curs.fetchone()
            curs.execute(HOLDER_QUERY)
            holder = curs.fetchone()
        count = int(behind["n"]) if behind else 0
        newest = behind["newest"] if behind else None
        status = HorizonStatus(
            horizon=horizon,
            newest_transaction=None if newest is None else int(newest),
            behind_events=count,
            behind_transactions=0 if newest is None else max(0, int(newest) - horizon + 1),
        )
        if holder is None:
            return status
        age: float | None = holder["age"]
        return HorizonStatus(
            horizon=status.horizon,
            newest_transaction=status.newest_transaction,
            behind_events=status.behind_events,
            behind_transactions=status.behind_transactions,
            holder_pid=int(holder["pid"]),
            holder_database=holder["datname"],
            holder_application=holder["application_name"],
            holder_state=holder["state"],
            holder_age_seconds=age,
        )

    # ------------------------------------------------------------------------- live runner

    def start(self, timeout: float = 10.0) -> None:
        """Follow the event store in a background thread until ``stop``."""
        self._follower.start(timeout)

    def stop(self) -> None:
        self._follower.stop()

    def run_forever(self) -> None:
        """Follow the event store in the calling thread until ``stop`` (``ledger projections
        run``)."""
        self._follower.run()

    def _heard(self, _conn: Conn, _payloads: Sequence[str], _poll_due: bool) -> None:
        self.catch_up()
