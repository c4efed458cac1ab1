"""The auditors' queries: a credential's history, the audit feed, what was valid at an instant.

Every query first waits until the projections reflect every event committed before it started
(``Projections.wait_current``): a query made after a command returned sees that command.

With read replicas (ADR 0023) the query itself runs on a replica when that replica's projections
have reached the newest event of the query's scope (its credential, workspace or user; the whole
log without one), as the primary knows it once current; it checks that in the same snapshot
(repeatable read) as it reads. Otherwise it runs on the primary.

``valid_at`` is computed from the audit trail (the events), never from a snapshot of today's
state: each credential's state as of ``T`` is its ``minted`` event folded with its later events
recorded at or before ``T``, by the same fold as the aggregate's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from eventsourcing.postgres import PostgresDatastore
from psycopg import sql
from psycopg.rows import dict_row

from ledger.adapters.replicas import PRIMARY, ReadRouter
from ledger.application.audit import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    STATE_FIELDS,
    AuditEvent,
    AuditPage,
    CredentialHistory,
    CredentialState,
    current_workspaces,
)
from ledger.domain import Actor, TokenKind
from ledger.domain.credential_row import (
    AT,
    FOLDS,
    INSTANT_SQL,
    SQL_TYPES,
    TEXT_SQL,
    UUID_SQL,
    Change,
    CredentialRow,
    fold,
)
from ledger.domain.errors import CredentialNotFound, InvalidQueryParameter
from ledger.projections import export
from ledger.projections.audit_trail import AUDIT_COLUMNS, AUDIT_TABLE, EVENT_TYPES
from ledger.projections.credentials import CREDENTIALS_VIEW, VIEW_COLUMNS
from ledger.projections.positioned import Curs
from ledger.projections.runner import Projections

T = TypeVar("T")

Scope = list[tuple[str, Any]]
"""Column equalities that delimit what a query reads (``[]``: everything)."""

TRAIL_COLUMNS = frozenset({"kind", "workspace_id", "user_id"})
"""State fields a ``minted`` row holds in its own columns rather than in ``data``."""


def _parsed(value: Any, sql_type: str) -> Any:
    """A value of an audit row's ``data`` (JSON) as the declared field type holds it."""
    if sql_type == TEXT_SQL or value is None:
        return value
    if not value:
        return None
    if sql_type == UUID_SQL:
        return UUID(value)
    if sql_type == INSTANT_SQL:
        return datetime.fromisoformat(value)
    return value


def audit_change(event: AuditEvent) -> Change | None:
    """A credential's audit row as the fold reads it (``None``: not a credential event).

    Values come from ``data`` under the names the event's ``Fold`` reads, typed by the field
    they set; a ``minted`` row's kind, workspace and holder are columns of the trail, and the
    trail never holds the token hash."""
    rule = FOLDS.get(event.type)
    if rule is None or event.credential_id is None:
        return None
    values: dict[str, Any] = {}
    for name, source in rule.sets.items():
        if source == AT:
            continue
        if rule.creates and name in TRAIL_COLUMNS:
            continue
        if rule.creates and name == "token_hash":
            values[source] = ""
            continue
        values[source] = _parsed(event.data.get(source), SQL_TYPES[name])
    if rule.creates:
        kind = event.kind
        values["kind"] = kind
        values["workspace_id"] = event.workspace_id
        # The trail's user is the token's holder: a personal access token's user, else the
        # issuer (who is ``created_by`` already).
        values["user_id"] = event.user_id if kind == TokenKind.PERSONAL_ACCESS_TOKEN else None
    # The position stands in for the stream version: a state as of an instant shows none.
    return Change(event.type, event.credential_id, event.at, event.position, values)


def states_as_of(events: Iterable[AuditEvent], at: datetime | None) -> dict[UUID, CredentialState]:
    """Each credential's state as of ``at`` (``None``: after every event), from its events in
    log order, folded with the credential's one fold (``ledger.domain.credential_row``). Only
    events recorded at or before ``at`` count; a credential minted after ``at`` is absent."""
    states: dict[UUID, CredentialRow] = {}
    for event in events:
        if at is not None and event.at > at:
            continue
        change = audit_change(event)
        if change is None:
            continue
        state = fold(states.get(change.credential_id), change)
        if state is not None:
            states[change.credential_id] = state
    return {cid: CredentialState.of(state) for cid, state in states.items()}


def check_instant(value: datetime, field: str) -> datetime:
    """An aware datetime (RFC 3339 with an offset), or ``InvalidQueryParameter``."""
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{field} needs a time zone (RFC 3339, e.g. 2026-11-22T12:00:00Z)"
        raise InvalidQueryParameter(msg)
    return value


def parse_instant(value: str, field: str) -> datetime:
    """An RFC 3339 instant from text, or ``InvalidQueryParameter`` naming ``field``."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        msg = f"{field} is not an RFC 3339 timestamp"
        raise InvalidQueryParameter(msg) from None
    return check_instant(parsed, field)


def parse_cursor(value: str | None) -> int:
    """The position a cursor stands for (an event's ``position`` is a cursor too)."""
    if value is None or value == "":
        return 0
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        msg = "invalid cursor"
        raise InvalidQueryParameter(msg)
    return int(value)


class AuditQueries:
    """Reads of the audit trail and the Credentials projection."""

    def __init__(
        self,
        projections: Projections,
        datastore: PostgresDatastore,
        *,
        credentials_table: str,
        router: ReadRouter | None = None,
    ) -> None:
        """``credentials_table``: the auth lookup table (``last_used_at`` comes from there);
        ``router``: where reads may go besides the primary."""
        self._projections = projections
        self._datastore = datastore
        self._router = router if router is not None and router.enabled else None
        audit = sql.Identifier(AUDIT_TABLE)
        self._select_events = sql.SQL("SELECT {} FROM {} ").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in AUDIT_COLUMNS), audit
        )
        self._credential = (
            sql.SQL(
                "SELECT {columns}, c.last_used_at FROM {view} AS v "
                "LEFT JOIN {inline} AS c ON c.credential_id = v.credential_id "
                "WHERE v.credential_id = %s"
            )
            .format(
                columns=sql.SQL(", ").join(sql.Identifier("v", c) for c in VIEW_COLUMNS),
                view=sql.Identifier(CREDENTIALS_VIEW),
                inline=sql.Identifier(credentials_table),
            )
            .as_string()
        )

    @contextlib.contextmanager
    def snapshot(self, scope: Scope) -> Iterator[Curs]:
        """A read-only transaction that holds every event of ``scope`` (column equalities;
        ``[]``: the whole log) committed before the call: on a replica whose projections have
        the scope's newest event (repeatable read: the check and the reads see one snapshot),
        else on the primary. For every audit query, and for long reads such as an export."""
        self._projections.wait_current()
        router = self._router
        if router is not None:
            needed = self._scope_position(scope)
            views = [p.view for p in self._projections.projections.values()]
            with router.connection() as (conn, source):
                if source != PRIMARY:
                    with conn.transaction():
                        curs = conn.cursor(row_factory=dict_row)
                        try:
                            curs.execute(
                                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                            )
                            current = all(view.position(curs).ordinal >= needed for view in views)
                        except psycopg.Error:  # e.g. a migration not replayed there yet
                            current = False
                        if current:
                            yield curs
                            return
                    router.skip_behind(source)
                    router.count_primary()
        with self._datastore.transaction(commit=False) as curs:
            yield curs

    def _serve(self, scope: Scope, work: Callable[[Curs], T]) -> T:
        with self.snapshot(scope) as curs:
            return work(curs)

    def _scope_position(self, scope: Scope) -> int:
        """The position of the scope's newest event, on the (current) primary."""
        where: sql.Composable = sql.SQL("")
        if scope:
            where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(
                sql.SQL("{} = %s").format(sql.Identifier(column)) for column, _ in scope
            )
        statement = (
            sql.SQL("SELECT coalesce(max(position), 0) AS n FROM {}").format(
                sql.Identifier(AUDIT_TABLE)
            )
            + where
        )
        with self._datastore.transaction(commit=False) as curs:
            curs.execute(statement, [value for _, value in scope])
            row = curs.fetchone()
        return int(row["n"]) if row else 0

    @staticmethod
    def _fetch(curs: Curs, statement: sql.Composed, params: list[Any]) -> list[AuditEvent]:
        curs.execute(statement, params)
        return [
            AuditEvent(
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
            for row in curs.fetchall()
        ]

    def history(self, credential_id: UUID) -> CredentialHistory:
        """The credential's current state and all its events, oldest first."""

        def read(curs: Curs) -> tuple[list[AuditEvent], Any]:
            events = self._fetch(
                curs,
                self._select_events + sql.SQL("WHERE credential_id = %s ORDER BY position"),
                [credential_id],
            )
            curs.execute(self._credential, (credential_id,))
            return events, curs.fetchone()

        events, row = self._serve([("credential_id", credential_id)], read)
        if row is None or not events:
            raise CredentialNotFound
        state = CredentialState(**{k: row[k] for k in STATE_FIELDS})
        return CredentialHistory(credential=state, events=events)

    def events(
        self,
        *,
        workspace: UUID | None = None,
        user: UUID | None = None,
        type: str | None = None,  # noqa: A002 - the contract's parameter name
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> AuditPage:
        """The audit feed, oldest first: events at or after ``since`` and before ``until``,
        after ``cursor``; at most ``limit`` (1..1000)."""
        if not 1 <= limit <= MAX_LIMIT:
            msg = f"limit must be 1..{MAX_LIMIT}"
            raise InvalidQueryParameter(msg)
        if type is not None and type not in EVENT_TYPES:
            msg = f"type must be one of {', '.join(EVENT_TYPES)}"
            raise InvalidQueryParameter(msg)
        after = parse_cursor(cursor)
        conditions: list[sql.Composable] = [sql.SQL("position > %s")]
        params: list[Any] = [after]
        for column, value in (("workspace_id", workspace), ("user_id", user), ("type", type)):
            if value is not None:
                conditions.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                params.append(value)
        if since is not None:
            conditions.append(sql.SQL("at >= %s"))
            params.append(check_instant(since, "since"))
        if until is not None:
            conditions.append(sql.SQL("at < %s"))
            params.append(check_instant(until, "until"))
        params.append(limit + 1)
        statement = (
            self._select_events
            + sql.SQL("WHERE ")
            + sql.SQL(" AND ").join(conditions)
            + sql.SQL(" ORDER BY position LIMIT %s")
        )
        scope = [(c, v) for c, v in (("workspace_id", workspace), ("user_id", user)) if v]
        rows = self._serve(scope, lambda curs: self._fetch(curs, statement, params))
        page = rows[:limit]
        more = len(rows) > limit
        return AuditPage(events=page, next_cursor=str(page[-1].position) if more else None)

    def export(
        self,
        *,
        workspace: UUID | None = None,
        since: datetime | None = None,
        fetch: int = export.FETCH,
    ) -> tuple[int, Iterator[export.ExportedEvent]]:
        """Every audit event (of ``workspace``, at or after ``since``) in log order, with its
        stored event's hash, streamed (``ledger.projections.export``); and how many there
        were when the export began (a progress bar's total: more may follow)."""
        if since is not None:
            check_instant(since, "since")
        scope: Scope = [("workspace_id", workspace)] if workspace is not None else []

        def snapshot() -> contextlib.AbstractContextManager[Curs]:
            return self.snapshot(scope)

        total = export.count(snapshot, workspace=workspace, since=since)
        events = export.stream(snapshot, workspace=workspace, since=since, fetch=fetch)
        return total, events

    def valid_at(
        self, at: datetime, *, workspace: UUID | None = None, user: UUID | None = None
    ) -> list[CredentialState]:
        """The credentials usable at ``at``, each as of ``at``, oldest first: those of a
        workspace and/or a user, or (neither given) every credential."""
        check_instant(at, "valid_at")
        conditions: list[sql.Composable] = [sql.SQL("credential_id IS NOT NULL AND at <= %s")]
        params: list[Any] = [at]
        for column, value in (("workspace_id", workspace), ("user_id", user)):
            if value is not None:
                conditions.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                params.append(value)
        statement = (
            self._select_events
            + sql.SQL("WHERE ")
            + sql.SQL(" AND ").join(conditions)
            + sql.SQL(" ORDER BY position")
        )
        scope = [(c, v) for c, v in (("workspace_id", workspace), ("user_id", user)) if v]
        events = self._serve(scope, lambda curs: self._fetch(curs, statement, params))
        usable = [s for s in states_as_of(events, at).values() if s.is_usable(at)]
        return sorted(usable, key=lambda s: (s.created_at, str(s.credential_id)))

    def workspaces_of(self, user_id: UUID) -> list[UUID]:
        """The workspaces the user is a member of, from their membership events (every command
        that returned before the call included)."""
        self._projections.wait_current(["audit_trail"])
        with self._datastore.transaction(commit=False) as curs:
            events = self._fetch(
                curs,
                self._select_events
                + sql.SQL(
                    "WHERE user_id = %s AND credential_id IS NULL AND workspace_id IS NOT NULL "
                    "AND type IN ('member_added', 'member_removed') ORDER BY position"
                ),
                [user_id],
            )
        return current_workspaces(events)
