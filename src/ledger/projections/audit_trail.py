"""The Audit trail: one row per credential, membership or user-creation event, for the
auditors' queries.

Each row has the contract's audit fields: the credential id (or the membership's workspace and
user), ``kind``, ``type``, ``at``, ``actor`` and the type-specific fields in ``data`` (``reason``
and, when one was given, ``note`` on ``revoked``, ``expires_at_before``/``expires_at_after`` on
``renewed``, ``daemon_token_id`` on ``consumed``, ``role`` on membership events, ``name`` and
``email`` on ``user_created``, ...). ``position`` is the event's ordinal in the log
(``ledger.adapters.log_order``): rows only ever arrive at the end, which is what makes cursor
pagination stable.

``user_id`` is the user the event concerns: the holder of a personal access token, the issuer
of an install or daemon token, the member of a membership event, the new user of
``user_created`` (a row with neither credential nor workspace).

Every row is checked against the table's column types before it is written (``AUDIT_CHECK``):
text is stored in a safe form, an event whose ids or instants are not what they should be has
no row; either way the event is recorded in ``ledger_projection_errors`` (docs/adr/0016).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar, NamedTuple
from uuid import UUID

from psycopg import sql

from ledger.application.timestamps import utc_text
from ledger.domain import Credential, TokenKind, User, Workspace
from ledger.projections.base import (
    Curs,
    LedgerProjection,
    LedgerView,
    Positioned,
    copy_checked,
    event_problem,
)
from ledger.projections.eventlog import EventLog
from ledger.projections.problems import (
    INVALID_VALUE,
    UNSAFE_TEXT,
    InvalidValue,
    Problem,
    RowCheck,
    check_id,
    check_instant,
    safe_text,
    text_problem,
)

AUDIT_TABLE = "ledger_audit"
AUDIT_TYPES = {
    "position": "bigint",
    "stream_id": "uuid",
    "stream_version": "bigint",
    "credential_id": "uuid",
    "kind": "text",
    "type": "text",
    "at": "timestamp with time zone",
    "actor_type": "text",
    "actor_id": "text",
    "workspace_id": "uuid",
    "user_id": "uuid",
    "data": "jsonb",
}
"""The columns of ``ledger_audit`` and their types (binary ``COPY`` sends exactly these)."""
AUDIT_COLUMNS = tuple(AUDIT_TYPES)
AUDIT_CHECK = RowCheck(
    AUDIT_TYPES,
    required=("position", "stream_id", "stream_version", "type", "at", "actor_type", "actor_id"),
)
"""What a row must hold before it is written (``data`` must be an object; see ``RowCheck``)."""

EVENT_TYPES = (
    "minted",
    "consumed",
    "renewed",
    "revoked",
    "replay_detected",
    "member_added",
    "member_role_changed",
    "member_removed",
    "user_created",
)
"""The audit trail's ``type`` values (the contract's list)."""


class CredentialContext(NamedTuple):
    """What a credential's later events do not repeat: its kind, workspace and user."""

    kind: str
    workspace_id: UUID | None
    user_id: UUID | None


class AuditRow(NamedTuple):
    """One row of the audit trail, its values in ``AUDIT_COLUMNS`` order."""

    position: int
    stream_id: UUID
    stream_version: int
    credential_id: UUID | None
    kind: str | None
    type: str
    at: datetime
    actor_type: str
    actor_id: str
    workspace_id: UUID | None
    user_id: UUID | None
    data: dict[str, Any]


def _id(value: Any, name: str) -> str | None:
    """An id as text (``InvalidValue`` if it is not one)."""
    checked = check_id(value, name)
    return None if checked is None else str(checked)


def _at(value: Any, name: str) -> str | None:
    """An instant in UTC RFC 3339 with ``Z``, as the HTTP answers write it (``InvalidValue`` if
    it is not one)."""
    if value is None:
        return None
    return utc_text(check_instant(value, name))


def minted_context(event: Credential.Minted) -> CredentialContext:
    holder = event.user_id if event.kind == TokenKind.PERSONAL_ACCESS_TOKEN else event.created_by
    return CredentialContext(event.kind, event.workspace_id, holder)


Build = Callable[[int, Any, CredentialContext | None], AuditRow]


def _credential_row(
    position: int, event: Any, context: CredentialContext | None, type_: str, data: dict[str, Any]
) -> AuditRow:
    kind, workspace_id, user_id = context if context is not None else (None, None, None)
    return AuditRow(
        position,
        event.originator_id,
        event.originator_version,
        event.originator_id,
        kind,
        type_,
        event.timestamp,
        event.actor.type,
        event.actor.id,
        workspace_id,
        user_id,
        data,
    )


def _minted(position: int, event: Credential.Minted, context: CredentialContext | None) -> AuditRow:
    # A credential's state (history, ``valid_at``) starts from its kind and token prefix.
    if event.kind is None or event.token_prefix is None:
        msg = "kind or token_prefix is missing"
        raise InvalidValue(msg)
    data = {
        "token_prefix": event.token_prefix,
        "name": event.name,
        "expires_at": _at(event.expires_at, "expires_at"),
        "daemon_id": event.daemon_id,
        "install_token_id": _id(event.install_token_id, "install_token_id"),
        "created_by": _id(event.created_by, "created_by"),
    }
    # The writer passes the context it already took from this very event.
    own = context if context is not None else minted_context(event)
    return _credential_row(position, event, own, "minted", data)


def _consumed(
    position: int, event: Credential.Consumed, context: CredentialContext | None
) -> AuditRow:
    data = {"daemon_token_id": _id(event.daemon_token_id, "daemon_token_id")}
    return _credential_row(position, event, context, "consumed", data)


def _renewed(
    position: int, event: Credential.Renewed, context: CredentialContext | None
) -> AuditRow:
    # A renewal always sets an expiry: none would read as "never expires" in ``valid_at``.
    check_instant(event.expires_at_after, "expires_at_after")
    data = {
        "expires_at_before": _at(event.expires_at_before, "expires_at_before"),
        "expires_at_after": _at(event.expires_at_after, "expires_at_after"),
    }
    return _credential_row(position, event, context, "renewed", data)


def _revoked(
    position: int, event: Credential.Revoked, context: CredentialContext | None
) -> AuditRow:
    data = {"reason": event.reason}
    if event.note is not None:
        data["note"] = event.note
    return _credential_row(position, event, context, "revoked", data)


def _replay_detected(
    position: int, event: Credential.ReplayDetected, context: CredentialContext | None
) -> AuditRow:
    data = {"daemon_id": event.daemon_id, "replays": event.replays}
    return _credential_row(position, event, context, "replay_detected", data)


def _membership_row(
    position: int, event: Any, type_: str, user_id: UUID, data: dict[str, Any]
) -> AuditRow:
    return AuditRow(
        position,
        event.originator_id,
        event.originator_version,
        None,
        None,
        type_,
        event.timestamp,
        event.actor.type,
        event.actor.id,
        event.originator_id,
        user_id,
        data,
    )


def _created(position: int, event: Workspace.Created, _: CredentialContext | None) -> AuditRow:
    data = {"role": "owner", "workspace_created": True, "name": event.name}
    return _membership_row(position, event, "member_added", event.owner_id, data)


def _added(position: int, event: Workspace.MemberAdded, _: CredentialContext | None) -> AuditRow:
    return _membership_row(position, event, "member_added", event.user_id, {"role": event.role})


def _role_changed(
    position: int, event: Workspace.MemberRoleChanged, _: CredentialContext | None
) -> AuditRow:
    data = {"role_before": event.role_before, "role_after": event.role_after}
    return _membership_row(position, event, "member_role_changed", event.user_id, data)


def _removed(
    position: int, event: Workspace.MemberRemoved, _: CredentialContext | None
) -> AuditRow:
    data = {"role": event.role, "left": event.left}
    return _membership_row(position, event, "member_removed", event.user_id, data)


def _user_created(position: int, event: User.Created, _: CredentialContext | None) -> AuditRow:
    data = {"name": event.name, "email": event.email}
    return AuditRow(
        position,
        event.originator_id,
        event.originator_version,
        None,
        None,
        "user_created",
        event.timestamp,
        event.actor.type,
        event.actor.id,
        None,
        event.originator_id,
        data,
    )


_BUILDERS: dict[type[Any], Build | None] = {
    Credential.Minted: _minted,
    Credential.Consumed: _consumed,
    Credential.Renewed: _renewed,
    Credential.Revoked: _revoked,
    Credential.ReplayDetected: _replay_detected,
    Workspace.Created: _created,
    Workspace.MemberAdded: _added,
    Workspace.MemberRoleChanged: _role_changed,
    Workspace.MemberRemoved: _removed,
    User.Created: _user_created,
}


def _builder(event_type: type[Any]) -> Build | None:
    """The row builder of an event class (found once by ``isinstance``, then by type)."""
    try:
        return _BUILDERS[event_type]
    except KeyError:
        found = next((b for c, b in list(_BUILDERS.items()) if issubclass(event_type, c)), None)
        _BUILDERS[event_type] = found
        return found


def audit_row(item: Positioned, context: CredentialContext | None) -> AuditRow | None:
    """The row for one event, or ``None`` for an event the trail ignores.

    ``context`` is the credential's, needed for its events after ``Minted``; ``None`` for a
    credential event means the credential is unknown (then the row has no kind/workspace/user).
    """
    build = _builder(type(item.event))
    return None if build is None else build(item.position, item.event, context)


def _add_context(contexts: dict[UUID, CredentialContext], event: Credential.Minted) -> None:
    try:
        context = minted_context(event)
    except AttributeError:  # a field missing: the Minted itself is recorded as invalid
        return
    if all(v is None or type(v) is UUID for v in (context.workspace_id, context.user_id)):
        if context.kind is not None and text_problem(context.kind) is not None:
            context = context._replace(kind=safe_text(context.kind))  # rows of later events
        contexts[event.originator_id] = context


LATER_CREDENTIAL_EVENTS = (
    Credential.Consumed,
    Credential.Renewed,
    Credential.Revoked,
    Credential.ReplayDetected,
)


class AuditTrailView(LedgerView):
    """The ``ledger_audit`` table and its tracking row."""

    tables = (AUDIT_TABLE,)
    tracking_table = "ledger_audit_tracking"
    projection = "audit_trail"

    def __init__(self, datastore: Any, log: EventLog) -> None:
        super().__init__(datastore, log)
        self._copy = (
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)")
            .format(
                sql.Identifier(AUDIT_TABLE),
                sql.SQL(", ").join(sql.Identifier(c) for c in AUDIT_COLUMNS),
            )
            .as_string()
        )

    def contexts(self, curs: Curs, events: Sequence[Positioned]) -> dict[UUID, CredentialContext]:
        """The context of every credential the events name: from its ``Minted`` in the batch,
        or else from the event log (it was minted in an earlier batch). A ``Minted`` that
        lacks what a context needs gives none (its credential's rows have no kind/workspace/
        user)."""
        contexts: dict[UUID, CredentialContext] = {}
        for item in events:
            if isinstance(item.event, Credential.Minted):
                if item.clean:
                    contexts[item.event.originator_id] = minted_context(item.event)
                else:
                    _add_context(contexts, item.event)
        earlier = {
            item.event.originator_id
            for item in events
            if isinstance(item.event, LATER_CREDENTIAL_EVENTS)
            and item.event.originator_id not in contexts
        }
        if earlier:
            for event in self.log.created(curs, earlier).values():
                if isinstance(event, Credential.Minted):
                    _add_context(contexts, event)
        return contexts

    def prepare(self, curs: Curs, events: Sequence[Positioned], problems: list[Problem]) -> bytes:
        """The batch's rows as binary ``COPY`` data (empty when it has none); the rows of an
        event that did not pass the screen are checked against the table's types
        (``AUDIT_CHECK``)."""
        contexts = self.contexts(curs, events)
        rows: list[Sequence[Any]] = []
        sources: list[Positioned] = []
        notes: list[str] = []
        for item in events:
            try:
                row = audit_row(item, contexts.get(item.event.originator_id))
                if row is None:
                    continue
                rows.append(row if item.clean else AUDIT_CHECK(row, notes))
            except Exception as error:  # noqa: BLE001 - whatever the event holds: its problem
                problems.append(event_problem(item, INVALID_VALUE, error))
                notes.clear()
                continue
            sources.append(item)
            if notes:
                problems.append(event_problem(item, UNSAFE_TEXT, "; ".join(notes)))
                notes.clear()
        if not rows:
            return b""
        return copy_checked(curs, rows, lambda: sources, AUDIT_TYPES.values(), problems)

    def apply(self, curs: Curs, prepared: bytes) -> None:
        if prepared:
            with curs.copy(self._copy) as copy:
                copy.write(prepared)


class AuditTrail(LedgerProjection[AuditTrailView]):
    """One row per credential, membership or user-creation event (``ledger_audit``)."""

    name = "audit_trail"
    view_class: ClassVar[type[LedgerView]] = AuditTrailView
