"""The ledger's application recorder: many commands per transaction, each with its own outcome,
and the credentials table written in the same transaction as the events.

A batch is one statement, its own transaction on an autocommit connection: the database
function ``ledger_write_batch`` (migration 0004, ADR 0018) inserts the events with
``ON CONFLICT DO NOTHING`` on the primary key, refuses (and takes back) every command any of
whose events found its key taken, and upserts the credentials rows of the others. It takes no
table lock and sends no ``NOTIFY``: several batches, from several threads and processes, are
in flight at once, and the log is ordered by transaction (``ledger.adapters.log_order``). One
stale command never fails its neighbours; one round trip, one prepared statement.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import sql
from psycopg.rows import TupleRow, tuple_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from ledger.adapters.credentials_table import row_values
from ledger.adapters.postgres import CREDENTIALS_TABLE, EVENTS_TABLE, connection_is_dead
from ledger.application.ports import Refused, WriteOutcome
from ledger.domain.credential_row import CredentialRow
from ledger.domain.limits import TokenLimit


@dataclass(frozen=True, slots=True)
class BatchCommand:
    """The writes of one command: its events and the credentials-table rows they produce.

    Built on the thread that issues the command, which also encodes it (``events_json``,
    ``rows_json``): the writer thread, that every batch waits for, only joins the texts.
    """

    events: Sequence[StoredEvent]
    credential_rows: Sequence[CredentialRow] = field(default_factory=tuple)
    limit: TokenLimit | None = None
    """Admit the command only while it stays within this limit (``Refused.LIMIT_REACHED``)."""
    events_json: str = field(init=False)
    rows_json: str = field(init=False)
    limit_json: str = field(init=False)

    def __post_init__(self) -> None:
        # States travel as hex: the stored bytes are exactly the mapper's (ADR 0012).
        events = [
            (e.originator_id, e.originator_version, e.topic, e.state.hex()) for e in self.events
        ]
        object.__setattr__(self, "events_json", _dumps(events))
        object.__setattr__(self, "rows_json", _dumps([row_values(r) for r in self.credential_rows]))
        limit = self.limit
        object.__setattr__(
            self,
            "limit_json",
            "null"
            if limit is None
            else _dumps([limit.scope.value, limit.principal, limit.maximum, limit.at]),
        )


class BatchIntegrityError(IntegrityError):
    """Raised when the store refused a batch as a whole (an integrity error the per-command
    check did not absorb)."""


def _json_value(value: object) -> str:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    msg = f"no JSON form for {type(value).__name__} in a write batch"
    raise TypeError(msg)


_dumps = json.JSONEncoder(default=_json_value, separators=(",", ":"), ensure_ascii=False).encode


def _verbatim(text: str) -> str:
    return text


def batch_params(commands: Sequence[BatchCommand]) -> tuple[Jsonb, Jsonb, Jsonb | None]:
    """The batch as three JSON arrays with one entry per command (its events; its rows; its
    limit or null): one string join each, where psycopg's per-element dumping of ~22 column
    arrays cost Python per value (ADR 0012). A command's index is its position in the arrays."""
    events = "[" + ",".join([c.events_json for c in commands]) + "]"
    rows = "[" + ",".join([c.rows_json for c in commands]) + "]"
    limits = [c.limit_json for c in commands]
    return (
        Jsonb(events, dumps=_verbatim),
        Jsonb(rows, dumps=_verbatim),
        # NULL when no command has a limit: the function then skips the limits' statements.
        None
        if all(limit == "null" for limit in limits)
        else Jsonb("[" + ",".join(limits) + "]", dumps=_verbatim),
    )


class LedgerRecorder(PostgresApplicationRecorder):
    """``PostgresApplicationRecorder`` with batched, conflict-isolated inserts."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        if events_table_name != EVENTS_TABLE:  # pragma: no cover - configuration error
            msg = f"the write-batch function writes {EVENTS_TABLE}, not {events_table_name}"
            raise ValueError(msg)
        events = sql.Identifier(datastore.schema, events_table_name)
        credentials = sql.Identifier(datastore.schema, CREDENTIALS_TABLE)
        # Rendered once: psycopg would re-render a Composed statement on every execute.
        self._credential_and_workspace = (
            sql.SQL(
                "SELECT originator_id, originator_version, topic, state FROM {events} "
                "WHERE originator_id = %s OR originator_id = "
                "(SELECT workspace_id FROM {credentials} WHERE credential_id = %s) "
                "ORDER BY originator_id, originator_version"
            )
            .format(events=events, credentials=credentials)
            .as_string()
        )
        self._stream = (
            sql.SQL(
                "SELECT originator_id, originator_version, topic, state FROM {events} "
                "WHERE originator_id = %s ORDER BY originator_version"
            )
            .format(events=events)
            .as_string()
        )
        self._reads: ConnectionPool[psycopg.Connection[TupleRow]] | None = None
        self.origin = uuid4().hex
        """This process's name in change announcements: its own cache is exact already."""
        self._write_batch = (
            sql.SQL("SELECT * FROM {}.ledger_write_batch(%s, %s, %s, %s)")
            .format(sql.Identifier(datastore.schema))
            .as_string()
        )
        self._lock_timeout = f"{datastore.lock_timeout}s"
        self._held = threading.local()

    @contextlib.contextmanager
    def holding_connection(self) -> Iterator[None]:
        """Keep one pooled connection for the calling thread's ``insert_batch`` calls until
        exit (a writer thread's: a pool checkout and return per batch cost ~0.3 ms of Python
        under the GIL). A connection that fails is given back and replaced on the next call, and
        one whose server went away since the last batch is replaced before the batch is sent
        (``connection_is_dead``: no round trip while it is alive), so a database restart between
        two batches costs no write."""
        self._held.stack = contextlib.ExitStack()
        try:
            yield
        finally:
            stack: contextlib.ExitStack = self._held.stack
            del self._held.stack
            stack.close()

    @contextlib.contextmanager
    def _batch_connection(self) -> Iterator[psycopg.Connection[Any]]:
        stack: contextlib.ExitStack | None = getattr(self._held, "stack", None)
        if stack is None:
            with self.datastore.get_connection() as pooled:
                yield pooled
            return
        held: psycopg.Connection[Any] | None = getattr(self._held, "conn", None)
        if held is not None and connection_is_dead(held):
            # Nothing was sent on it: give it back (closed, so the pool discards it) and take
            # a checked one.
            held = self._held.conn = None
            with contextlib.suppress(Exception):
                stack.close()
            self._held.stack = stack = contextlib.ExitStack()
        if held is None:
            held = stack.enter_context(self.datastore.get_connection())
            self._held.conn = held
        try:
            yield held
        except BaseException:
            # Give a failed connection back (the pool discards a broken one); take another
            # next time. A failed statement was rolled back by the server.
            self._held.conn = None
            with contextlib.suppress(Exception):
                stack.close()
            self._held.stack = contextlib.ExitStack()
            raise

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The library's single-save path, as a batch of one."""
        rows: Sequence[CredentialRow] = kwargs.get("credential_rows", ())
        [outcome] = self.insert_batch([BatchCommand(stored_events, rows)])
        if not isinstance(outcome, list):
            msg = "version conflict"
            raise IntegrityError(msg)
        return outcome

    def insert_batch(self, commands: Sequence[BatchCommand]) -> list[WriteOutcome]:
        """Write every command that does not conflict and stays within its limit, in one
        transaction and one round trip.

        Returns, per command, its events' notification ids; ``None`` when it conflicted (an
        event of it, or of an earlier command of the batch, already holds its key);
        ``Refused.LIMIT_REACHED`` when its limit was reached (counting the commands of the batch
        admitted before it).
        """
        events, rows, limits = batch_params(commands)
        with self._batch_connection() as conn:
            # Autocommit: the statement is its own transaction, rolled back whole on any error.
            assert conn.autocommit
            try:
                with conn.cursor(row_factory=tuple_row) as cursor:
                    cursor.execute(
                        self._write_batch,
                        (events, rows, limits, self._lock_timeout),
                        prepare=True,
                        binary=True,
                    )
                    results = cursor.fetchall()
            except psycopg.IntegrityError as error:
                raise BatchIntegrityError(str(error)) from error
        # One row per command: its notification ids in event order, or NULL if refused (and
        # whether a limit refused it).
        outcomes: list[WriteOutcome] = [[] for _ in commands]
        for index, notification_ids, limited in results:
            outcomes[index] = Refused.LIMIT_REACHED if limited else notification_ids
        return outcomes

    def select_credential_and_workspace(self, credential_id: UUID) -> list[StoredEvent]:
        """The events of a credential and of its workspace (if it has one), in one query."""
        return self._read_stream(self._credential_and_workspace, (credential_id, credential_id))

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """A stream's events. The whole stream in order (what loading an aggregate asks for)
        is read through the ledger's read pool; a slice goes the library's way."""
        if gt is not None or lte is not None or desc or limit is not None:
            events: Sequence[StoredEvent] = super().select_events(
                originator_id, gt=gt, lte=lte, desc=desc, limit=limit
            )
            return events
        return self._read_stream(self._stream, (originator_id,))

    def use_read_pool(self, pool: ConnectionPool[psycopg.Connection[TupleRow]]) -> None:
        """Read streams through ``pool`` (the ledger's own: autocommit, tuple rows); a pool
        checkout there costs a fraction of the library's ``get_connection``."""
        self._reads = pool

    def _read_stream(self, statement: str, params: tuple[Any, ...]) -> list[StoredEvent]:
        pool = self._reads
        if pool is None:
            with self.datastore.get_connection() as conn:
                rows = conn.cursor(row_factory=tuple_row).execute(statement, params).fetchall()
        else:
            with pool.connection() as conn:
                rows = conn.execute(statement, params, prepare=True).fetchall()
        return [
            StoredEvent(
                originator_id=originator_id,
                originator_version=version,
                topic=topic,
                state=bytes(state),
            )
            for originator_id, version, topic, state in rows
        ]
