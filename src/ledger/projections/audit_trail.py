"""The Audit trail: one row per credential or membership event, for the auditors' queries.

Each row has the contract's audit fields: the credential id (or the membership's workspace and
user), ``kind``, ``type``, ``at``, ``actor`` and the type-specific fields in ``data`` (``reason``
on ``revoked``, ``expires_at_before``/``expires_at_after`` on ``renewed``, ``daemon_token_id``
on ``consumed``, ``role`` on membership events, ...). ``position`` is the event's ordinal in
the log (``ledger.adapters.log_order``): rows only ever arrive at the end, which is what makes
cursor pagination stable.

``user_id`` is the user the event concerns: the holder of a personal access token, the issuer
of an install or daemon token, the member of a membership event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple
from uuid import UUID

from psycopg import sql

from ledger.domain import Credential, TokenKind, Workspace
from ledger.projections.base import Curs, LedgerProjection, LedgerView, Positioned, copy_data
from ledger.projections.eventlog import EventLog

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

EVENT_TYPES = (
    "minted",
    "consumed",
    "renewed",
    "revoked",
    "member_added",
    "member_role_changed",
    "member_removed",
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


def _text(value: UUID | datetime | None) -> str | None:
    """Ids as text; instants in UTC RFC 3339 with ``Z`` (as the HTTP answers write them)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


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
    data = {
        "token_prefix": event.token_prefix,
        "name": event.name,
        "expires_at": _text(event.expires_at),
        "daemon_id": event.daemon_id,
        "install_token_id": _text(event.install_token_id),
        "created_by": _text(event.created_by),
    }
    # The writer passes the context it already took from this very event.
    own = context if context is not None else minted_context(event)
    return _credential_row(position, event, own, "minted", data)


def _consumed(
    position: int, event: Credential.Consumed, context: CredentialContext | None
) -> AuditRow:
    data = {"daemon_token_id": _text(event.daemon_token_id)}
    return _credential_row(position, event, context, "consumed", data)


def _renewed(
    position: int, event: Credential.Renewed, context: CredentialContext | None
) -> AuditRow:
    data = {
        "expires_at_before": _text(event.expires_at_before),
        "expires_at_after": _text(event.expires_at_after),
    }
    return _credential_row(position, event, context, "renewed", data)


def _revoked(
    position: int, event: Credential.Revoked, context: CredentialContext | None
) -> AuditRow:
    return _credential_row(position, event, context, "revoked", {"reason": event.reason})


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


_BUILDERS: dict[type[Any], Build | None] = {
    Credential.Minted: _minted,
    Credential.Consumed: _consumed,
    Credential.Renewed: _renewed,
    Credential.Revoked: _revoked,
    Workspace.Created: _created,
    Workspace.MemberAdded: _added,
    Workspace.MemberRoleChanged: _role_changed,
    Workspace.MemberRemoved: _removed,
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
    """The row for one event, or ``None`` for an event the trail ignores (user profiles).

    ``context`` is the credential's, needed for its events after ``Minted``; ``None`` for a
    credential event means the credential is unknown (then the row has no kind/workspace/user).
    """
    build = _builder(type(item.event))
    return None if build is None else build(item.position, item.event, context)


LATER_CREDENTIAL_EVENTS = (Credential.Consumed, Credential.Renewed, Credential.Revoked)


class AuditTrailView(LedgerView):
    """The ``ledger_audit`` table and its tracking row."""

    tables = (AUDIT_TABLE,)
    tracking_table = "ledger_audit_tracking"

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
        or else from the event log (it was minted in an earlier batch)."""
        contexts = {
            item.event.originator_id: minted_context(item.event)
            for item in events
            if isinstance(item.event, Credential.Minted)
        }
        earlier = {
            item.event.originator_id
            for item in events
            if isinstance(item.event, LATER_CREDENTIAL_EVENTS)
            and item.event.originator_id not in contexts
        }
        if earlier:
            for stream_id, event in self.log.created(curs, earlier).items():
                if isinstance(event, Credential.Minted):
                    contexts[stream_id] = minted_context(event)
        return contexts

    def prepare(self, curs: Curs, events: Sequence[Positioned]) -> bytes:
        """The batch's rows as binary ``COPY`` data (empty when it has none)."""
        contexts = self.contexts(curs, events)
        rows = [
            row
            for item in events
            if (row := audit_row(item, contexts.get(item.event.originator_id))) is not None
        ]
        return copy_data(curs, rows, AUDIT_TYPES.values()) if rows else b""

    def apply(self, curs: Curs, prepared: bytes) -> None:
        if prepared:
            with curs.copy(self._copy) as copy:
                copy.write(prepared)


class AuditTrail(LedgerProjection[AuditTrailView]):
    """One row per credential or membership event (``ledger_audit``)."""

    name = "audit_trail"
    view_class: ClassVar[type[LedgerView]] = AuditTrailView
