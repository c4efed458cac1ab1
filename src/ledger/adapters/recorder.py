"""The ledger's application recorder: many commands per transaction, each with its own outcome,
and the credentials table written in the same transaction as the events.

Every insert into the events table takes ``LOCK TABLE … IN EXCLUSIVE MODE`` (as the library does,
so that notification ids commit in order). While that lock is held no other writer can add an
event, so the batch statement can tell, against the primary key, exactly which commands would
conflict: those are refused and the rest are inserted. One stale command never fails its
neighbours, and no savepoints are needed. The primary key still backs the check.

A batch is one round trip: ``BEGIN``, the lock, one statement (conflict check, event insert and
credentials upsert as data-modifying CTEs), ``NOTIFY`` and ``COMMIT`` travel in one pipeline.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from ledger.adapters.credentials_table import (
    MUTABLE_COLUMNS,
    SQL_TYPES,
    WRITE_COLUMNS,
    CredentialRow,
    row_values,
)
from ledger.adapters.postgres import CREDENTIALS_TABLE


@dataclass(frozen=True, slots=True)
class BatchCommand:
    """The writes of one command: its events and the credentials-table rows they produce."""

    events: Sequence[StoredEvent]
    credential_rows: Sequence[CredentialRow] = field(default_factory=tuple)


class BatchIntegrityError(IntegrityError):
    """Raised when the store refused a batch that the under-lock check had accepted."""


def _batch_statement(schema: str, events_table: str) -> str:
    events = sql.Identifier(schema, events_table)
    credentials = sql.Identifier(schema, CREDENTIALS_TABLE)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in WRITE_COLUMNS)
    return (
        sql.SQL(
            "WITH ev AS ("
            "  SELECT (e->>0)::uuid AS originator_id, (e->>1)::bigint AS originator_version,"
            "         e->>2 AS topic, decode(e->>3, 'hex') AS state, (e->>4)::int AS cmd, pos"
            "  FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS t(e, pos)"
            "), refused AS ("
            # a command is refused if any of its events' keys is taken in the table ...
            # (a LATERAL probe with LIMIT 1, not a join: a generic plan made while the table
            # was small would otherwise scan the whole table on every batch, ADR 0012)
            "  SELECT ev.cmd FROM ev CROSS JOIN LATERAL (SELECT 1 FROM {events} t"
            "    WHERE t.originator_id = ev.originator_id"
            "      AND t.originator_version = ev.originator_version LIMIT 1) AS taken"
            "  UNION"
            # ... or by an earlier command of the same batch
            "  SELECT cmd FROM (SELECT cmd, min(cmd) OVER ("
            "    PARTITION BY originator_id, originator_version) AS first FROM ev) AS keys"
            "  WHERE cmd > first"
            "), inserted AS ("
            "  INSERT INTO {events} (originator_id, originator_version, topic, state)"
            "  SELECT originator_id, originator_version, topic, state FROM ev"
            "  WHERE cmd NOT IN (SELECT cmd FROM refused) ORDER BY pos"
            "  RETURNING notification_id, originator_id, originator_version"
            "), upserted AS ("
            "  INSERT INTO {credentials} ({columns})"
            "  SELECT DISTINCT ON (r.credential_id) {r_columns}"
            "  FROM (SELECT {casts}, (r->>{cmd})::int AS cmd"
            "        FROM jsonb_array_elements(%s::jsonb) AS t(r)) AS r"
            "  WHERE r.cmd NOT IN (SELECT cmd FROM refused)"
            "  ORDER BY r.credential_id, r.version DESC"
            "  ON CONFLICT (credential_id) DO UPDATE SET {updates}"
            "  WHERE {credentials}.version < EXCLUDED.version"
            "  RETURNING 1"
            ") "
            "SELECT cmd, NULL::bigint AS notification_id, NULL::uuid AS originator_id,"
            "       NULL::bigint AS originator_version FROM refused "
            "UNION ALL "
            "SELECT NULL, notification_id, originator_id, originator_version FROM inserted"
        )
        .format(
            events=events,
            credentials=credentials,
            columns=columns,
            r_columns=sql.SQL(", ").join(sql.Identifier("r", c) for c in WRITE_COLUMNS),
            casts=sql.SQL(", ").join(
                sql.SQL("(r->>{i})::{type} AS {c}").format(
                    i=sql.Literal(i), type=sql.SQL(SQL_TYPES[c]), c=sql.Identifier(c)
                )
                for i, c in enumerate(WRITE_COLUMNS)
            ),
            cmd=sql.Literal(len(WRITE_COLUMNS)),
            updates=sql.SQL(", ").join(
                sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in MUTABLE_COLUMNS
            ),
        )
        .as_string()
    )


def _json_value(value: object) -> str:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    msg = f"no JSON form for {type(value).__name__} in a write batch"
    raise TypeError(msg)


_dumps = json.JSONEncoder(default=_json_value, separators=(",", ":"), ensure_ascii=False).encode


def _batch_params(commands: Sequence[BatchCommand]) -> tuple[Jsonb, Jsonb]:
    """The batch as two JSON arrays (events, credentials rows), each entry tagged with its
    command's index. One C-encoded JSON text per side costs far less Python than psycopg's
    per-element dumping of ~22 column arrays (ADR 0012); states travel as hex."""
    events: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    for index, command in enumerate(commands):
        for event in command.events:
            events.append(
                (
                    event.originator_id,
                    event.originator_version,
                    event.topic,
                    event.state.hex(),
                    index,
                )
            )
        for row in command.credential_rows:
            rows.append((*row_values(row), index))
    return Jsonb(events, dumps=_dumps), Jsonb(rows, dumps=_dumps)


class LedgerRecorder(PostgresApplicationRecorder):
    """``PostgresApplicationRecorder`` with batched, conflict-isolated inserts."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        # Rendered once: psycopg would re-render a Composed statement on every execute.
        self._batch = _batch_statement(datastore.schema, events_table_name)
        events = sql.Identifier(datastore.schema, events_table_name)
        credentials = sql.Identifier(datastore.schema, CREDENTIALS_TABLE)
        self._credential_and_workspace = (
            sql.SQL(
                "SELECT originator_id, originator_version, topic, state FROM {events} "
                "WHERE originator_id = %(id)s OR originator_id = "
                "(SELECT workspace_id FROM {credentials} WHERE credential_id = %(id)s) "
                "ORDER BY originator_id, originator_version"
            )
            .format(events=events, credentials=credentials)
            .as_string()
        )
        self._notify = sql.SQL("NOTIFY {}").format(sql.Identifier(self.channel_name)).as_string()
        self._lock = [
            statement.as_string() if isinstance(statement, sql.Composable) else statement
            for statement in self.lock_table_statements
        ]
        self._held = threading.local()

    @contextlib.contextmanager
    def holding_connection(self) -> Iterator[None]:
        """Keep one pooled connection for the calling thread's ``insert_batch`` calls until
        exit (a writer thread's: a pool checkout and return per batch cost ~0.3 ms of Python
        under the GIL). A connection that fails is given back and replaced on the next call."""
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
        if held is None:
            held = stack.enter_context(self.datastore.get_connection())
            self._held.conn = held
        try:
            yield held
        except BaseException:
            # Give a failed connection back (the pool discards a broken one); take another
            # next time. The transaction was already ended by ``insert_batch``.
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
        if outcome is None:
            msg = "version conflict"
            raise IntegrityError(msg)
        return outcome

    def insert_batch(self, commands: Sequence[BatchCommand]) -> list[list[int] | None]:
        """Write every command that does not conflict, in one transaction and one round trip.

        Returns, per command, its events' notification ids, or ``None`` when it conflicted
        (an event of it, or of an earlier command of the batch, already holds its key).
        """
        params = _batch_params(commands)
        with self._batch_connection() as conn:
            try:
                with conn.cursor() as control, conn.cursor() as batch:
                    with conn.pipeline():
                        control.execute("BEGIN")
                        for statement in self._lock:
                            control.execute(statement, prepare=True)
                        batch.execute(self._batch, params, prepare=True, binary=True)
                        control.execute(self._notify)
                        control.execute("COMMIT")
                    rows = batch.fetchall()
            except psycopg.IntegrityError as error:
                self._end_failed_transaction(conn)
                raise BatchIntegrityError(str(error)) from error
            except BaseException:
                self._end_failed_transaction(conn)
                raise

        refused = {row["cmd"] for row in rows if row["cmd"] is not None}
        notification_ids = {
            (row["originator_id"], row["originator_version"]): row["notification_id"]
            for row in rows
            if row["cmd"] is None
        }
        return [
            None
            if index in refused
            else [notification_ids[(e.originator_id, e.originator_version)] for e in c.events]
            for index, c in enumerate(commands)
        ]

    def select_credential_and_workspace(self, credential_id: UUID) -> list[StoredEvent]:
        """The events of a credential and of its workspace (if it has one), in one query."""
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(self._credential_and_workspace, {"id": credential_id}, prepare=True)
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in cursor.fetchall()
            ]

    @staticmethod
    def _end_failed_transaction(conn: psycopg.Connection[Any]) -> None:
        # BEGIN was sent by hand: an error leaves the transaction open (and aborted).
        if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
