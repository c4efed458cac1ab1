"""The ledger's application recorder: many commands per transaction, each with its own outcome,
and the credentials table written in the same transaction as the events.

Every insert into the events table takes ``LOCK TABLE … IN EXCLUSIVE MODE`` (as the library does,
so that notification ids commit in order). While that lock is held no other writer can add an
event, so a single ``SELECT`` under the lock tells exactly which commands of the batch would
violate the ``(originator_id, originator_version)`` key: those are refused as conflicts and the
rest are inserted together. One stale command never fails its neighbours, and no savepoints are
needed. The primary key still backs the check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import sql

from ledger.adapters.credentials_table import CredentialRow, upsert_params, upsert_statement


@dataclass(frozen=True, slots=True)
class BatchCommand:
    """The writes of one command: its events and the credentials-table rows they produce."""

    events: Sequence[StoredEvent]
    credential_rows: Sequence[CredentialRow] = field(default_factory=tuple)


class BatchIntegrityError(IntegrityError):
    """Raised when the store refused a batch that the under-lock check had accepted."""


class LedgerRecorder(PostgresApplicationRecorder):
    """``PostgresApplicationRecorder`` with batched, conflict-isolated inserts."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        events = sql.Identifier(datastore.schema, events_table_name)
        self._existing_keys = sql.SQL(
            "SELECT k.i AS originator_id, k.v AS originator_version "
            "FROM unnest(%s::uuid[], %s::bigint[]) AS k(i, v) "
            "JOIN {events} e ON e.originator_id = k.i AND e.originator_version = k.v"
        ).format(events=events)
        # Column arrays rather than the library's composite type: cheaper to adapt.
        self._insert = sql.SQL(
            "INSERT INTO {events} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::bytea[]) "
            "RETURNING notification_id"
        ).format(events=events)
        self._upsert = upsert_statement(datastore.schema)
        self._notify = sql.SQL("NOTIFY {}").format(sql.Identifier(self.channel_name))

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
        """Write every command that does not conflict, in one transaction.

        Returns, per command, its events' notification ids, or ``None`` when it conflicted
        (an event of it, or of an earlier command of the batch, already holds its key).
        """
        keys = [(e.originator_id, e.originator_version) for c in commands for e in c.events]
        ids = [k[0] for k in keys]
        versions = [k[1] for k in keys]
        outcomes: list[list[int] | None] = []
        with self.datastore.get_connection() as conn, conn.transaction():
            with conn.pipeline(), conn.cursor() as cursor:
                self._lock_table(cursor)
                cursor.execute(self._existing_keys, (ids, versions), prepare=True)
                taken = {(r["originator_id"], r["originator_version"]) for r in cursor.fetchall()}

            accepted: list[BatchCommand] = []
            for command in commands:
                command_keys = [(e.originator_id, e.originator_version) for e in command.events]
                if any(k in taken for k in command_keys) or len(set(command_keys)) != len(
                    command_keys
                ):
                    outcomes.append(None)
                    continue
                taken.update(command_keys)
                accepted.append(command)
                outcomes.append([])
            if not accepted:
                return outcomes

            notification_ids = self._insert_accepted(conn, accepted)

        position = 0
        for outcome, command in zip((o for o in outcomes if o is not None), accepted, strict=True):
            outcome.extend(notification_ids[position : position + len(command.events)])
            position += len(command.events)
        return outcomes

    def _insert_accepted(self, conn: Any, accepted: Sequence[BatchCommand]) -> list[int]:
        events = [e for c in accepted for e in c.events]
        rows = [r for c in accepted for r in c.credential_rows]
        columns: tuple[list[UUID], list[int], list[str], list[bytes]] = ([], [], [], [])
        for e in events:
            columns[0].append(e.originator_id)  # type: ignore[arg-type]
            columns[1].append(e.originator_version)
            columns[2].append(e.topic)
            columns[3].append(e.state)
        try:
            with conn.pipeline(), conn.cursor() as insert, conn.cursor() as other:
                insert.execute(self._insert, columns, prepare=True)
                if rows:
                    other.execute(self._upsert, upsert_params(rows), prepare=True)
                other.execute(self._notify)
                return [r["notification_id"] for r in insert.fetchall()]
        except psycopg.IntegrityError as error:
            raise BatchIntegrityError(str(error)) from error
