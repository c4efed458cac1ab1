"""Running the projections: batched catch-up, live following, rebuild, status.

Every step is one transaction: lock the projections' tracking rows (in name order), read the
events after the lowest position, let each projection at that position write its rows, move
its tracking row to the batch's last event (ignored events are tracked too), commit. Rows and
position commit together, so a runner killed at any moment resumes where the last commit left
it, with nothing lost or doubled; several runners (several service processes, a CLI) take
turns on the row locks instead of duplicating work.

The live runner is a thread that LISTENs on the event store's channel (the recorder NOTIFYs
every committed write batch), catches up on each notification (and every ``poll_s`` without
one), and reconnects by itself when its connection drops.

Read after write: ``wait_current`` reads the head of the event log and catches up to it in the
calling thread. A command that returned before has committed below that head, so the query that
follows sees it; if the live runner is mid-batch the caller waits on its row lock (no polling).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import PersistenceError
from eventsourcing.postgres import PostgresDatastore
from psycopg import sql

from ledger.domain.clock import Clock
from ledger.domain.errors import UnknownProjection
from ledger.projections.audit_trail import AuditTrail
from ledger.projections.base import UPSTREAM, Curs, LedgerProjection, Positioned
from ledger.projections.credentials import Credentials
from ledger.projections.eventlog import EventLog, Prepare, Prepared, ReadAhead

log = logging.getLogger(__name__)

PROJECTION_CLASSES: tuple[type[LedgerProjection[Any]], ...] = (AuditTrail, Credentials)
NAMES = tuple(sorted(cls.name for cls in PROJECTION_CLASSES))

LISTENER_NAME = "ledger-projections"
"""``application_name`` of the live runner's LISTEN connection (visible in pg_stat_activity)."""

ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"
"""Run at the start of each step's transaction (docs/adr/0014)."""

Progress = Callable[[int, int], None]
"""Called after each batch with (lowest position reached, target position)."""


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """Where a projection stands against the head of the event log."""

    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float


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
    ) -> None:
        self._datastore = datastore
        self._url = database_url
        self._clock = clock
        self.batch_size = batch_size
        self._poll_s = poll_s
        self.log = EventLog(app.mapper, events_table)
        """The event log the projections follow."""
        self.projections: dict[str, LedgerProjection[Any]] = {
            cls.name: cls(view=cls.view_class(datastore, self.log)) for cls in PROJECTION_CLASSES
        }
        table = sql.Identifier(events_table)
        self._head = (
            sql.SQL("SELECT coalesce(max(notification_id), 0) AS head FROM {}")
            .format(table)
            .as_string()
        )
        positions = sql.SQL(", ").join(
            sql.SQL("(SELECT notification_id FROM {} WHERE application_name = {}) AS {}").format(
                sql.Identifier(self.projections[name].view.tracking_table),
                sql.Literal(UPSTREAM),
                sql.Identifier(name),
            )
            for name in NAMES
        )
        self._head_and_positions = (
            sql.SQL("SELECT coalesce(max(notification_id), 0) AS head, {} FROM {}")
            .format(positions, table)
            .as_string()
        )
        self._count_after = (
            sql.SQL("SELECT count(*) AS n FROM {} WHERE notification_id > %s")
            .format(table)
            .as_string()
        )
        self._listen = sql.SQL("LISTEN {}").format(sql.Identifier(channel)).as_string()
        self._tracking_ready = False
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._thread: threading.Thread | None = None
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

    def head(self) -> int:
        """The notification id of the newest committed event (0 for an empty store)."""
        with self._datastore.transaction(commit=False) as curs:
            curs.execute(self._head)
            row = curs.fetchone()
            return int(row["head"]) if row else 0

    def _lock_positions(self, curs: Curs, names: Sequence[str]) -> dict[str, int]:
        if not self._tracking_ready:
            for name in NAMES:
                self.projections[name].view.ensure_tracking(curs)
        return {name: self.projections[name].view.lock_position(curs) for name in names}

    def _prepare(self, names: Sequence[str]) -> Prepare:
        """What prepares a page for the named projections (see ``LedgerView.prepare``)."""

        def prepare(curs: Curs, events: list[Positioned]) -> dict[str, Any]:
            return {name: self.projections[name].view.prepare(curs, events) for name in names}

        return prepare

    def read_ahead(self, names: Sequence[str], *, start: int, until: int) -> ReadAhead:
        """Read and prepare, in a thread, the batches after ``start`` up to ``until`` for the
        named projections (``step(names, ahead=...)`` takes them); close it when done."""
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
        until: int | None = None,
        prepared: Prepared | None = None,
    ) -> int | None:
        """Process one batch in one transaction; the lowest position reached, or ``None`` when
        every named projection is at ``until`` (or at the head of the log) already. The batch
        is ``prepared`` (by a read-ahead) when that starts at the position found under the
        locks and has rows for every projection there; otherwise it is read and prepared here."""
        chosen = self.names(names)
        with self._datastore.transaction(commit=True) as curs:
            # Derived rows: the commit need not wait for the WAL to reach the disk. A server
            # crash can only undo whole batches (rows and position), which run again.
            curs.execute(ASYNC_COMMIT)
            positions = self._lock_positions(curs, chosen)
            low = min(positions.values())
            if until is not None and low >= until:
                return None
            behind = [name for name in chosen if positions[name] == low]
            if prepared is None or prepared.after != low or not prepared.writes.keys() >= {*behind}:
                if prepared is not None:
                    log.debug("prepared batch after %d not used: at %d", prepared.after, low)
                events = self.log.page(curs, low, self.batch_size)
                if not events:
                    return None
                writes = self._prepare(behind)(curs, events)
                prepared = Prepared(low, events[-1].position, writes)
            for name in behind:
                view = self.projections[name].view
                view.apply(curs, prepared.writes[name])
                view.advance(curs, prepared.last)
                positions[name] = prepared.last
        self._tracking_ready = True
        self.batches += 1
        return min(positions.values())

    def catch_up(
        self,
        names: Iterable[str] | None = None,
        *,
        until: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Process batches until the named projections reach ``until`` (default: the head).

        After a first full batch, the next ones are read and prepared ahead in a thread
        (``read_ahead``) while each is written; the wait for one happens before the step's
        transaction, so the tracking rows stay locked only while rows are written. A read-ahead
        that another runner's turn made useless is replaced."""
        chosen = self.names(names)
        target = self.head() if until is None else until
        ahead: ReadAhead | None = None
        prepared: Prepared | None = None
        try:
            while (reached := self.step(chosen, until=target, prepared=prepared)) is not None:
                if progress is not None:
                    progress(reached, target)
                if reached >= target:
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

    def wait_current(self, names: Iterable[str] | None = None) -> None:
        """Return once the named projections reflect every event committed before the call.

        One query when they are current already (the usual case with a live runner); otherwise
        catch up to the head read by that query."""
        chosen = self.names(names)
        with self._datastore.transaction(commit=False) as curs:
            curs.execute(self._head_and_positions, prepare=True)
            row = curs.fetchone()
        assert row is not None
        head = int(row["head"])
        if all((row[name] or 0) >= head for name in chosen):
            return
        self.catch_up(chosen, until=head)

    def rebuild(self, names: Iterable[str] | None = None, progress: Progress | None = None) -> int:
        """Empty the named projections and build them again from the first event; returns the
        position reached. Readers meanwhile wait in ``wait_current``, never see half a view."""
        chosen = self.names(names)
        with self._datastore.transaction(commit=True) as curs:
            self._lock_positions(curs, chosen)
            for name in chosen:
                self.projections[name].view.reset(curs)
        self._tracking_ready = True
        target = self.head()
        self.catch_up(chosen, until=target, progress=progress)
        return target

    # ------------------------------------------------------------------------------ status

    def status(self) -> list[ProjectionStatus]:
        """Each projection's position and lag (events behind, and age of the oldest of them
        by its recorded time)."""
        head = self.head()
        now = self._clock.now()
        result = []
        with self._datastore.transaction(commit=False) as curs:
            for name in NAMES:
                position = self.projections[name].view.max_tracking_id(UPSTREAM) or 0
                lag_events, lag_seconds = 0, 0.0
                if position < head:
                    curs.execute(self._count_after, (position,))
                    counted = curs.fetchone()
                    lag_events = int(counted["n"]) if counted else 0
                    oldest = self._first_after(curs, position)
                    if oldest is not None:
                        lag_seconds = max(0.0, (now - oldest.event.timestamp).total_seconds())
                result.append(ProjectionStatus(name, position, head, lag_events, lag_seconds))
        return result

    def lag(self) -> dict[str, int]:
        """How many notification ids each projection is behind the head (cheap: no count)."""
        head = self.head()
        return {
            name: max(0, head - (self.projections[name].view.max_tracking_id(UPSTREAM) or 0))
            for name in NAMES
        }

    def _first_after(self, curs: Curs, position: int) -> Positioned | None:
        events = self.log.page(curs, position, 1)
        return events[0] if events else None

    # ------------------------------------------------------------------------- live runner

    def start(self, timeout: float = 10.0) -> None:
        """Follow the event store in a background thread until ``stop``."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="ledger-projections", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            conn.close()  # interrupts a wait for notifications at once
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()

    def run_forever(self) -> None:
        """Follow the event store in the calling thread until ``stop`` (``ledger projections
        run``)."""
        self._run()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._url, autocommit=True, connect_timeout=5, application_name=LISTENER_NAME
                ) as conn:
                    self._conn = conn
                    if self._stop.is_set():
                        return
                    conn.execute(self._listen)
                    self.catch_up()
                    self._ready.set()
                    backoff = 0.1
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=self._poll_s, stop_after=1):
                            break
                        self.catch_up()
            except (psycopg.Error, PersistenceError) as error:
                if self._stop.is_set():
                    return
                log.warning("projection runner lost its connection: %s", type(error).__name__)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
