"""``ledger audit export``: every audit event in log order, streamed from the server.

The rows come from the audit trail (``ledger_audit``) in ``position`` order, which is the log's
total order (docs/adr/0018), each joined to its stored event for the event's **hash**: the
RFC 6962 leaf hash of the stored row (``ledger.adapters.log_order.leaf_hash_sql``), the very
value that signed checkpoints commit to (docs/adr/0019), so an exported event can be checked
against a checkpoint's tree.

A server-side cursor hands the rows over ``fetch`` at a time: memory stays flat in the number
of events. The export reads one snapshot, on a read replica that has replayed every event of
its scope when one is configured (docs/adr/0023), else on the primary; a transaction that
only reads has no transaction id, so it does not hold back the log's horizon, and the pool's
idle and total transaction timeouts (which guard that horizon) are lifted for it alone: an
export may take long, or wait on a slow reader of its output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor, sql
from psycopg.rows import DictRow, dict_row

from ledger.adapters.log_order import leaf_hash_sql
from ledger.adapters.postgres import EVENTS_TABLE
from ledger.application.audit import AuditEvent
from ledger.domain import Actor
from ledger.projections.audit_trail import AUDIT_COLUMNS, AUDIT_TABLE

FETCH = 1000
"""Rows per round trip of the server-side cursor."""

CURSOR_NAME = "ledger_audit_export"

Snapshot = Callable[[], AbstractContextManager[Cursor[DictRow]]]
"""Opens the read transaction of an export (``AuditQueries.snapshot`` for its scope)."""


@dataclass(frozen=True, slots=True)
class ExportedEvent:
    """An audit event and the hash of its stored event (hex)."""

    event: AuditEvent
    hash: str

    def to_json(self) -> dict[str, Any]:
        """The audit event's JSON (``position`` included) with ``hash`` after ``position``."""
        body = self.event.to_json()
        return {"position": body.pop("position"), "hash": self.hash, **body}


def _statement(workspace: UUID | None, since: datetime | None) -> tuple[sql.Composed, list[Any]]:
    conditions: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[Any] = []
    if workspace is not None:
        conditions.append(sql.SQL("a.workspace_id = %s"))
        params.append(workspace)
    if since is not None:
        conditions.append(sql.SQL("a.at >= %s"))
        params.append(since)
    statement = sql.SQL(
        "SELECT {columns}, encode({leaf}, 'hex') AS hash FROM {audit} AS a "
        "JOIN {events} AS e "
        "ON e.originator_id = a.stream_id AND e.originator_version = a.stream_version "
        "WHERE {where} ORDER BY a.position"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier("a", c) for c in AUDIT_COLUMNS),
        leaf=leaf_hash_sql("e"),
        audit=sql.Identifier(AUDIT_TABLE),
        events=sql.Identifier(EVENTS_TABLE),
        where=sql.SQL(" AND ").join(conditions),
    )
    return statement, params


def count(snapshot: Snapshot, *, workspace: UUID | None, since: datetime | None) -> int:
    """How many events ``stream`` would give now (for a progress bar's total)."""
    statement, params = _statement(workspace, since)
    counted = sql.SQL("SELECT count(*) AS n FROM ({}) AS export").format(statement)
    with snapshot() as curs:
        curs.execute(counted, params)
        row = curs.fetchone()
    return int(row["n"]) if row else 0


def stream(
    snapshot: Snapshot,
    *,
    workspace: UUID | None,
    since: datetime | None,
    fetch: int = FETCH,
) -> Iterator[ExportedEvent]:
    """Every audit event of ``workspace`` (or all) at or after ``since`` (or all), in log
    order, read through a server-side cursor ``fetch`` rows at a time, in the transaction
    ``snapshot`` opens (a replica's that holds every event of the scope, else the primary's;
    it is rolled back at the end)."""
    statement, params = _statement(workspace, since)
    with snapshot() as opened:
        conn = opened.connection
        conn.execute("SELECT set_config('idle_in_transaction_session_timeout', '0', true)")
        if int(conn.info.server_version) >= 170000:
            conn.execute("SELECT set_config('transaction_timeout', '0', true)")
        with conn.cursor(name=CURSOR_NAME, row_factory=dict_row) as curs:
            curs.itersize = fetch
            curs.execute(statement, params)
            for row in curs:
                event = AuditEvent(
                    position=row["position"],
                    type=row["type"],
                    at=row["at"],
                    actor=Actor(type=row["actor_type"], id=row["actor_id"]),
                    credential_id=row["credential_id"],
                    kind=row["kind"],
                    workspace_id=row["workspace_id"],
                    user_id=row["user_id"],
                    data=row["data"],
                )
                yield ExportedEvent(event, row["hash"])
