"""The Audit trail: one row per credential or membership event, for the auditors' queries.

Each row has the contract's audit fields: the credential id (or the membership's workspace and
user), ``kind``, ``type``, ``at``, ``actor`` and the type-specific fields in ``data`` (``reason``
on ``revoked``, ``expires_at_before``/``expires_at_after`` on ``renewed``, ``daemon_token_id``
on ``consumed``, ``role`` on membership events, ...). ``position`` is the event's notification
id: rows only ever arrive at the end, which is what makes cursor pagination stable.

``user_id`` is the user the event concerns: the holder of a personal access token, the issuer
of an install or daemon token, the member of a membership event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

from psycopg import sql

from ledger.domain import Credential, TokenKind, Workspace
from ledger.projections.base import Curs, LedgerProjection, LedgerView, Positioned

AUDIT_TABLE = "ledger_audit"
AUDIT_COLUMNS = (
    "position",
    "stream_id",
    "stream_version",
    "credential_id",
    "kind",
    "type",
    "at",
    "actor_type",
    "actor_id",
    "workspace_id",
    "user_id",
    "data",
)

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


@dataclass(frozen=True, slots=True)
class CredentialContext:
    """What a credential's later events do not repeat: its kind, workspace and user."""

    kind: str
    workspace_id: UUID | None
    user_id: UUID | None


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One row of the audit trail, as stored."""

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

    def values(self) -> tuple[Any, ...]:
        return (
            self.position,
            self.stream_id,
            self.stream_version,
            self.credential_id,
            self.kind,
            self.type,
            self.at,
            self.actor_type,
            self.actor_id,
            self.workspace_id,
            self.user_id,
            json.dumps(self.data, separators=(",", ":")),
        )


def _text(value: UUID | datetime | None) -> str | None:
    """Ids as text; instants in UTC RFC 3339 with ``Z`` (as the HTTP answers write them)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def minted_context(event: Credential.Minted) -> CredentialContext:
    holder = event.user_id if event.kind == TokenKind.PERSONAL_ACCESS_TOKEN else event.created_by
    return CredentialContext(kind=event.kind, workspace_id=event.workspace_id, user_id=holder)


def audit_row(item: Positioned, context: CredentialContext | None) -> AuditRow | None:
    """The row for one event, or ``None`` for an event the trail ignores (user profiles).

    ``context`` is the credential's, needed for its events after ``Minted``; ``None`` for a
    credential event means the credential is unknown (then the row has no kind/workspace/user).
    """
    event = item.event
    common: dict[str, Any] = {
        "position": item.position,
        "stream_id": event.originator_id,
        "stream_version": event.originator_version,
        "at": event.timestamp,
        "actor_type": event.actor.type,
        "actor_id": event.actor.id,
    }
    if isinstance(event, Credential.Minted):
        context = minted_context(event)
        type_, data = (
            "minted",
            {
                "token_prefix": event.token_prefix,
                "name": event.name,
                "expires_at": _text(event.expires_at),
                "daemon_id": event.daemon_id,
                "install_token_id": _text(event.install_token_id),
                "created_by": _text(event.created_by),
            },
        )
    elif isinstance(event, Credential.Consumed):
        type_, data = "consumed", {"daemon_token_id": _text(event.daemon_token_id)}
    elif isinstance(event, Credential.Renewed):
        type_, data = (
            "renewed",
            {
                "expires_at_before": _text(event.expires_at_before),
                "expires_at_after": _text(event.expires_at_after),
            },
        )
    elif isinstance(event, Credential.Revoked):
        type_, data = "revoked", {"reason": event.reason}
    else:
        return _membership_row(item, common)
    return AuditRow(
        credential_id=event.originator_id,
        kind=context.kind if context else None,
        type=type_,
        workspace_id=context.workspace_id if context else None,
        user_id=context.user_id if context else None,
        data=data,
        **common,
    )


def _membership_row(item: Positioned, common: dict[str, Any]) -> AuditRow | None:
    event = item.event
    if isinstance(event, Workspace.Created):
        type_, user_id = "member_added", event.owner_id
        data: dict[str, Any] = {"role": "owner", "workspace_created": True, "name": event.name}
    elif isinstance(event, Workspace.MemberAdded):
        type_, user_id, data = "member_added", event.user_id, {"role": event.role}
    elif isinstance(event, Workspace.MemberRoleChanged):
        type_, user_id = "member_role_changed", event.user_id
        data = {"role_before": event.role_before, "role_after": event.role_after}
    elif isinstance(event, Workspace.MemberRemoved):
        type_, user_id = "member_removed", event.user_id
        data = {"role": event.role, "left": event.left}
    else:
        return None
    return AuditRow(
        credential_id=None,
        kind=None,
        type=type_,
        workspace_id=event.originator_id,
        user_id=user_id,
        data=data,
        **common,
    )


LATER_CREDENTIAL_EVENTS = (Credential.Consumed, Credential.Renewed, Credential.Revoked)


class AuditTrailView(LedgerView):
    """The ``ledger_audit`` table and its tracking row."""

    tables = (AUDIT_TABLE,)
    tracking_table = "ledger_audit_tracking"

    def __init__(self, datastore: Any) -> None:
        super().__init__(datastore)
        self._copy = (
            sql.SQL("COPY {} ({}) FROM STDIN")
            .format(
                sql.Identifier(AUDIT_TABLE),
                sql.SQL(", ").join(sql.Identifier(c) for c in AUDIT_COLUMNS),
            )
            .as_string()
        )
        self._contexts = (
            sql.SQL(
                "SELECT credential_id, kind, workspace_id, user_id FROM {} "
                "WHERE credential_id = ANY(%s) AND type = 'minted'"
            )
            .format(sql.Identifier(AUDIT_TABLE))
            .as_string()
        )

    def contexts(self, curs: Curs, credential_ids: set[UUID]) -> dict[UUID, CredentialContext]:
        """The contexts of credentials minted in earlier batches."""
        if not credential_ids:
            return {}
        curs.execute(self._contexts, (list(credential_ids),))
        return {
            row["credential_id"]: CredentialContext(
                kind=row["kind"], workspace_id=row["workspace_id"], user_id=row["user_id"]
            )
            for row in curs.fetchall()
        }

    def write(self, curs: Curs, events: Sequence[Positioned]) -> None:
        minted: dict[UUID, CredentialContext] = {}
        for item in events:
            if isinstance(item.event, Credential.Minted):
                minted[item.event.originator_id] = minted_context(item.event)
        later = {
            item.event.originator_id
            for item in events
            if isinstance(item.event, LATER_CREDENTIAL_EVENTS)
            and item.event.originator_id not in minted
        }
        contexts = {**self.contexts(curs, later), **minted}
        rows = [
            row
            for item in events
            if (row := audit_row(item, contexts.get(item.event.originator_id))) is not None
        ]
        if not rows:
            return
        with curs.copy(self._copy) as copy:
            for row in rows:
                copy.write_row(row.values())


class AuditTrail(LedgerProjection[AuditTrailView]):
    """One row per credential or membership event (``ledger_audit``)."""

    name = "audit_trail"
    view_class: ClassVar[type[LedgerView]] = AuditTrailView
