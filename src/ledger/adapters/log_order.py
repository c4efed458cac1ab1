"""The log's total order, in one place: what every reader of "the events in log order" uses.

The commitment (``ledger.domain.merkle``), the witnessed leaves and ``ledger audit verify``
read the log only through these definitions, so a change of the order (a different sort key, or
a horizon below which the order is final) is a change here alone.

Today every writer takes the events-table lock, so notification ids commit in order: any read
sees a prefix of the log ordered by ``notification_id``, and every committed event is final.
"""

from __future__ import annotations

from psycopg import sql

from ledger.adapters.postgres import EVENTS_TABLE

ORDER_COLUMNS = ("notification_id",)
"""The columns of ``ledger_events`` whose values, compared in order, are the log's order."""


def final(alias: str = "") -> sql.Composable:
    """True of the rows whose place in the order can no longer change (every committed row)."""
    del alias
    return sql.SQL("TRUE")


POSITION = "notification_id"
"""The number by which an event is shown to operators (``ledger audit events``' ``#``)."""


def order_by(alias: str = "", *, descending: bool = False) -> sql.Composable:
    """``ORDER BY`` the log's order (for the rows of ``alias``, if given), or its reverse."""
    direction = sql.SQL(" DESC" if descending else "")
    return sql.SQL(", ").join(_column(alias, c) + direction for c in ORDER_COLUMNS)


def order_key(alias: str = "") -> sql.Composable:
    """The order as one comparable row value: ``(a.k1, a.k2, …)``."""
    return sql.SQL("({})").format(order_by(alias))


def _column(alias: str, column: str) -> sql.Composable:
    return sql.Identifier(alias, column) if alias else sql.Identifier(column)


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
