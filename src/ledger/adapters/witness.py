"""The witnessed leaves of the log (``ledger_log_leaves``) and the log's Merkle roots.

A checkpoint first witnesses every event the log gained since the last one: it appends, in
log order, each new event's key, position and leaf hash, then signs the tree hash of the whole
log. The leaves are append-only like the events; a signed checkpoint authenticates the first
``log_size`` of them (their tree hash must be its root), and an authenticated leaf names the
event that no longer matches it (docs/adr/0019).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from ledger.adapters import log_order
from ledger.adapters.postgres import EVENTS_TABLE
from ledger.domain.merkle import Frontier

LEAVES_TABLE = "ledger_log_leaves"
FETCH = 10_000

_E = sql.Identifier(EVENTS_TABLE)
_W = sql.Identifier(LEAVES_TABLE)


def extend(conn: psycopg.Connection[Any]) -> int:
    """Witness the events after the last witnessed one (in the caller's transaction, under a
    lock that serializes witnesses); return how many leaves are witnessed."""
    conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(_W))
    conn.execute(
        sql.SQL(
            "INSERT INTO {w} (leaf_index, originator_id, originator_version, notification_id, "
            "leaf_hash) "
            "SELECT (SELECT coalesce(max(leaf_index), -1) FROM {w}) "
            "+ row_number() OVER (ORDER BY {order}), "
            "e.originator_id, e.originator_version, e.notification_id, {leaf} "
            "FROM {e} AS e WHERE {final} AND NOT EXISTS ("
            "SELECT 1 FROM {w} AS w WHERE w.originator_id = e.originator_id "
            "AND w.originator_version = e.originator_version"
            ") AND (NOT EXISTS (SELECT 1 FROM {w}) OR {key} > ("
            "SELECT {key2} FROM {w} AS w2 JOIN {e} AS e2 "
            "USING (originator_id, originator_version) ORDER BY {desc} LIMIT 1"
            "))"
        ).format(
            w=_W,
            e=_E,
            order=log_order.order_by("e"),
            leaf=log_order.leaf_hash_sql("e"),
            final=log_order.final("e"),
            key=log_order.order_key("e"),
            key2=log_order.order_columns("e2"),
            desc=log_order.order_by("e2", descending=True),
        )
    )
    return witnessed(conn)


def witnessed(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_W)).fetchone()
    return int(row[0]) if row else 0


def log_size(conn: psycopg.Connection[Any]) -> int:
    query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(_E, log_order.final())
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def _roots(
    conn: psycopg.Connection[Any],
    query: sql.Composed,
    sizes: Iterable[int],
    progress: Callable[[int], None] | None,
) -> tuple[int, dict[int, bytes]]:
    """Stream leaf hashes from ``query``: the number of leaves, and the tree hash after each of
    ``sizes`` that is reached and after the last leaf."""
    wanted = sorted(set(sizes))
    roots: dict[int, bytes] = {}
    frontier = Frontier()
    if 0 in wanted:
        roots[0] = frontier.root()
    append = frontier.append
    with conn.cursor(name="ledger_leaves", binary=True) as cursor:
        cursor.itersize = FETCH
        cursor.execute(query)
        while rows := cursor.fetchmany(FETCH):
            for (leaf,) in rows:
                append(leaf)
                if wanted and frontier.size == wanted[0]:
                    roots[wanted.pop(0)] = frontier.root()
            if progress is not None:
                progress(len(rows))
    roots[frontier.size] = frontier.root()
    return frontier.size, roots


def log_roots(
    conn: psycopg.Connection[Any],
    sizes: Iterable[int] = (),
    progress: Callable[[int], None] | None = None,
    *,
    upto: int | None = None,
) -> tuple[int, bytes, dict[int, bytes]]:
    """The log's length and tree hash, and its tree hash after each of ``sizes`` events (those
    it reaches), from one pass over the log in its order; with ``upto``, over its first
    ``upto`` events only (the length and hash are then theirs)."""
    query = log_order.in_log_order(log_order.leaf_hash_sql())
    size, roots = _roots(conn, _limited(query, upto), sizes, progress)
    return size, roots[size], roots


def witness_roots(
    conn: psycopg.Connection[Any], sizes: Iterable[int], *, upto: int | None = None
) -> dict[int, bytes]:
    """The tree hash of the first ``n`` witnessed leaves, for each ``n`` of ``sizes`` reached
    (with ``upto``, reading no more than that many leaves)."""
    query = sql.SQL("SELECT leaf_hash FROM {} ORDER BY leaf_index").format(_W)
    return _roots(conn, _limited(query, upto), sizes, None)[1]


def _limited(query: sql.Composed, upto: int | None) -> sql.Composed:
    if upto is None:
        return query
    return sql.SQL("{} LIMIT {}").format(query, sql.Literal(max(upto, 0)))


def holds_leaf(conn: psycopg.Connection[Any], leaf_index: int) -> bool:
    """Whether the event witnessed at ``leaf_index`` is still in the log."""
    query = sql.SQL(
        "SELECT EXISTS (SELECT 1 FROM {w} AS w JOIN {e} AS e "
        "USING (originator_id, originator_version) WHERE w.leaf_index = %s)"
    ).format(w=_W, e=_E)
    row = conn.execute(query, (leaf_index,)).fetchone()
    return bool(row and row[0])


WitnessRow = tuple[int | None, UUID, int, int | None]
"""(position, stream id, stream version, witnessed leaf index) of an event a check flags."""


def altered(conn: psycopg.Connection[Any]) -> list[WitnessRow]:
    """Witnessed events whose stored row no longer hashes to their leaf."""
    return _rows(
        conn,
        sql.SQL(
            "SELECT e.{pos}, e.originator_id, e.originator_version, w.leaf_index "
            "FROM {w} AS w JOIN {e} AS e USING (originator_id, originator_version) "
            "WHERE w.leaf_hash <> {leaf} ORDER BY w.leaf_index"
        ).format(
            pos=sql.Identifier(log_order.POSITION), w=_W, e=_E, leaf=log_order.leaf_hash_sql("e")
        ),
    )


def missing(conn: psycopg.Connection[Any]) -> list[WitnessRow]:
    """Witnessed events that are no longer in the log (named by their witnessed position)."""
    return _rows(
        conn,
        sql.SQL(
            "SELECT w.notification_id, w.originator_id, w.originator_version, w.leaf_index "
            "FROM {w} AS w WHERE NOT EXISTS (SELECT 1 FROM {e} AS e "
            "WHERE e.originator_id = w.originator_id "
            "AND e.originator_version = w.originator_version) ORDER BY w.leaf_index"
        ).format(w=_W, e=_E),
    )


def inserted(conn: psycopg.Connection[Any]) -> list[WitnessRow]:
    """Events that were never witnessed but stand before the last witnessed one in the log."""
    return _rows(
        conn,
        sql.SQL(
            "SELECT e.{pos}, e.originator_id, e.originator_version, NULL::bigint "
            "FROM {e} AS e WHERE {final} AND NOT EXISTS (SELECT 1 FROM {w} AS w "
            "WHERE w.originator_id = e.originator_id "
            "AND w.originator_version = e.originator_version) "
            "AND {key} < (SELECT {key2} FROM {w} AS w2 JOIN {e} AS e2 "
            "USING (originator_id, originator_version) ORDER BY {desc} LIMIT 1) "
            "ORDER BY {order}"
        ).format(
            pos=sql.Identifier(log_order.POSITION),
            w=_W,
            e=_E,
            final=log_order.final("e"),
            key=log_order.order_key("e"),
            key2=log_order.order_columns("e2"),
            desc=log_order.order_by("e2", descending=True),
            order=log_order.order_by("e"),
        ),
    )


def reordered(conn: psycopg.Connection[Any]) -> list[WitnessRow]:
    """Witnessed events that now stand right after an event witnessed later than them: walking
    the log in order, the witnessed indexes must rise; each event where they fall is named (a
    swap of two events names the second; a moved event, its new successor)."""
    return _rows(
        conn,
        sql.SQL(
            "SELECT pos, originator_id, originator_version, leaf_index FROM ("
            "SELECT e.{pos} AS pos, e.originator_id, e.originator_version, w.leaf_index, "
            "lag(w.leaf_index) OVER (ORDER BY {order}) AS before "
            "FROM {w} AS w JOIN {e} AS e USING (originator_id, originator_version)"
            ") AS walk WHERE leaf_index < before ORDER BY leaf_index"
        ).format(pos=sql.Identifier(log_order.POSITION), w=_W, e=_E, order=log_order.order_by("e")),
    )


def _rows(conn: psycopg.Connection[Any], query: sql.Composed) -> list[WitnessRow]:
    return [(r[0], r[1], int(r[2]), r[3]) for r in conn.execute(query).fetchall()]
