"""The order of the event log, and the horizon below which it is final (docs/adr/0018).

Writers take no lock: several write transactions are in flight at once, and notification ids
(drawn from a sequence when a row is inserted) can commit out of order. So the log is ordered
by *transaction*: every event row stores ``pg_current_xact_id()`` (``transaction_id``, ``xid8``,
64-bit, never wraps), and the log's order is ``(transaction_id, notification_id)``.

A reader reads only events whose transaction id is below the **horizon**,
``pg_snapshot_xmin(pg_current_snapshot())``: every transaction below it has ended, so no event
can ever appear before an event already read. Positions are ``(transaction_id,
notification_id)`` pairs; a reader keeps the last one it read and asks for what follows.

Events written before this order existed (migration 0004) all carry transaction id 0 and keep
their notification-id order, ahead of every later event.

Each event also has an *ordinal* (``ordinal_after``): its number in the log, counted by every
reader in the same way, so a plain increasing integer (the audit trail's ``position``, the feed's
cursor) follows the log order. An event of the old log keeps its notification id as its ordinal
(so cursors handed out before stay valid); every later event counts on from the one before it.

What is *final* is what lies below the horizon: its place in the order can no longer change.
The tamper evidence (docs/adr/0019) commits only to final events: the Merkle leaves
(``ledger.domain.merkle``), the witnessed leaves and ``ledger audit verify`` read the log in
this order and through ``final``.

Everything that needs the log's order uses this module: ``ORDER``, ``after_horizon_page``,
``HORIZON_QUERY``, ``LogPosition``, ``Mark`` and ``ordinal_after`` for the readers that follow
the log; ``ORDER_COLUMNS``, ``final``, ``order_by``, ``order_key``, ``leaf_hash_sql`` and
``in_log_order`` for the statements of the tamper evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from psycopg import sql

from ledger.adapters.postgres import EVENTS_TABLE

ORDER_COLUMNS = ("transaction_id", "notification_id")
"""The columns of ``ledger_events`` whose values, compared in order, are the log's order."""

ORDER = ", ".join(ORDER_COLUMNS)
"""The log's order, as an ``ORDER BY`` list of the events table's columns. A statement that
uses it must not name an output column ``transaction_id`` (say ``transaction_id::text::bigint
AS log_xid``): ``ORDER BY`` would sort by that output column, not by the index."""

HORIZON = "pg_snapshot_xmin(pg_current_snapshot())"
"""The horizon: every transaction with a lower id has ended (committed or rolled back)."""

HORIZON_QUERY = f"SELECT {HORIZON}::text::bigint"
"""The horizon as a ``bigint``. Take it before the reading transaction has an id of its own
(before it writes or locks a row): a reader's own open transaction would hold it back."""

LEGACY_TRANSACTION_ID = 0
"""The transaction id of every event written before the log was ordered by transaction."""


class LogPosition(NamedTuple):
    """A place in the log: the event at ``(transaction_id, notification_id)``, or before the
    first event (``START``). Tuples compare in the log's order."""

    transaction_id: int
    notification_id: int


START = LogPosition(0, 0)


class Mark(NamedTuple):
    """A reader's place: after the event at ``at``, whose ordinal is ``ordinal``."""

    at: LogPosition
    ordinal: int


START_MARK = Mark(START, 0)


def after_horizon_page(table: sql.Composable, columns: sql.Composable) -> str:
    """The statement that reads a page of the log: ``columns`` of the events after a position
    and below a horizon, in log order, each row ending with its ``transaction_id`` (as a
    ``bigint``) and ``notification_id``.

    Parameters: ``transaction_id``, ``notification_id`` (the position), the horizon, the limit.
    The row comparison and the order are served by the ``(transaction_id, notification_id)``
    index.
    """
    return (
        sql.SQL(
            "SELECT {columns}, transaction_id::text::bigint AS log_xid, notification_id "
            "FROM {table} "
            "WHERE (transaction_id, notification_id) > (%s::text::xid8, %s) "
            "AND transaction_id < %s::text::xid8 "
            "ORDER BY {order} LIMIT %s"
        )
        .format(columns=columns, table=table, order=sql.SQL(ORDER))
        .as_string()
    )


def newest_below_query(table: sql.Composable) -> str:
    """The position of the newest event below a horizon (parameter), if any."""
    return (
        sql.SQL(
            "SELECT transaction_id::text::bigint AS log_xid, notification_id FROM {} "
            "WHERE transaction_id < %s::text::xid8 "
            "ORDER BY transaction_id DESC, notification_id DESC LIMIT 1"
        )
        .format(table)
        .as_string()
    )


def newest_committed_query(table: sql.Composable) -> str:
    """The position of the newest committed event (whatever the horizon), if any."""
    return (
        sql.SQL(
            "SELECT transaction_id::text::bigint AS log_xid, notification_id FROM {} "
            "ORDER BY transaction_id DESC, notification_id DESC LIMIT 1"
        )
        .format(table)
        .as_string()
    )


def ordinal_after(previous: int, position: LogPosition) -> int:
    """The ordinal of the event at ``position``, the event before it having ``previous``."""
    if position.transaction_id == LEGACY_TRANSACTION_ID:
        return position.notification_id
    return previous + 1


def ordinals(previous: int, positions: Iterable[LogPosition]) -> Iterator[int]:
    """The ordinals of consecutive events of the log, the one before them having ``previous``."""
    for position in positions:
        previous = ordinal_after(previous, position)
        yield previous


# ----------------------------------------------------------------- composable statement parts


def final(alias: str = "") -> sql.Composable:
    """True of the rows whose place in the order can no longer change: those below the
    horizon. Evaluated with the statement's snapshot, before the statement writes a row."""
    return sql.SQL("{} < {}").format(_column(alias, "transaction_id"), sql.SQL(HORIZON))


POSITION = "notification_id"
"""The number by which ``ledger audit`` names an event to operators (its ``#``)."""


def order_by(alias: str = "", *, descending: bool = False) -> sql.Composable:
    """``ORDER BY`` the log's order (for the rows of ``alias``, if given), or its reverse.
    The columns are named by table (or alias), so no output column can shadow them."""
    direction = sql.SQL(" DESC" if descending else "")
    return sql.SQL(", ").join(_column(alias, c) + direction for c in ORDER_COLUMNS)


def order_key(alias: str = "") -> sql.Composable:
    """The order as one comparable row value: ``(a.k1, a.k2, …)``."""
    return sql.SQL("({})").format(order_columns(alias))


def order_columns(alias: str = "") -> sql.Composable:
    """The order's columns as a select list, ``a.k1, a.k2, …``: a subquery selecting them
    compares with ``order_key`` (``key > (SELECT columns …)``)."""
    return sql.SQL(", ").join(_column(alias, c) for c in ORDER_COLUMNS)


def _column(alias: str, column: str) -> sql.Composable:
    return sql.Identifier(alias, column) if alias else sql.Identifier(EVENTS_TABLE, column)


def leaf_hash_sql(alias: str = "") -> sql.Composable:
    """The RFC 6962 leaf hash of a stored row, computed by the server: SHA-256 of ``0x00`` and
    the bytes of ``ledger.domain.merkle.leaf_data`` (a test holds the two to each other)."""
    c = {name: _column(alias, name) for name in ("originator_id", "originator_version")}
    topic = sql.SQL("convert_to(coalesce({}, ''), 'UTF8')").format(_column(alias, "topic"))
    state = sql.SQL("coalesce({}, ''::bytea)").format(_column(alias, "state"))
    return sql.SQL(
        "sha256('\\x00'::bytea || uuid_send({id}) || int8send({version}) "
        "|| int4send(octet_length({topic})::int) || int4send(octet_length({state})::int) "
        "|| {topic} || {state})"
    ).format(id=c["originator_id"], version=c["originator_version"], topic=topic, state=state)


def in_log_order(columns: sql.Composable) -> sql.Composed:
    """``SELECT columns`` of every final event, in the log's order."""
    return sql.SQL("SELECT {columns} FROM {table} WHERE {final} ORDER BY {order}").format(
        columns=columns, table=sql.Identifier(EVENTS_TABLE), final=final(), order=order_by()
    )
