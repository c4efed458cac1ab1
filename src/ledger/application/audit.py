"""What the auditors' queries return: audit events, credential states, pages of the feed.

``event_to_dict`` and ``state_to_dict`` are the one JSON shape of each: the HTTP answers, the
CLI's ``--json`` and the exports all write them, so an event reads the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from ledger.application.timestamps import utc_text, utc_text_or_none
from ledger.domain import Actor
from ledger.domain.credential_row import CredentialRow, usable_at

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def _text(value: UUID | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the audit trail: what happened to a credential or a membership."""

    position: int
    type: str
    at: datetime
    actor: Actor
    credential_id: UUID | None
    kind: str | None
    workspace_id: UUID | None
    user_id: UUID | None
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """``event_to_dict(self)``."""
        return event_to_dict(self)


def event_to_dict(event: AuditEvent) -> dict[str, Any]:
    """An audit event as JSON: the contract's fields in one order, type-specific fields last.

    Every event has every common field: a membership event carries ``credential_id`` and
    ``kind`` as ``null``. ``position`` doubles as a cursor that resumes the feed after it.
    """
    return {
        "position": event.position,
        "credential_id": _text(event.credential_id),
        "kind": event.kind,
        "type": event.type,
        "at": utc_text(event.at),
        "actor": {"type": event.actor.type, "id": event.actor.id},
        "workspace_id": _text(event.workspace_id),
        "user_id": _text(event.user_id),
        **event.data,
    }


@dataclass(frozen=True, slots=True)
class CredentialState:
    """A credential's state at some instant (now, for ``history``; ``T`` for ``valid_at``)."""

    credential_id: UUID
    kind: str
    token_prefix: str
    name: str | None
    user_id: UUID | None
    workspace_id: UUID | None
    daemon_id: str | None
    install_token_id: UUID | None
    created_by: UUID | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str | None
    consumed_at: datetime | None
    daemon_token_id: UUID | None
    last_used_at: datetime | None = None

    @classmethod
    def of(cls, row: CredentialRow) -> CredentialState:
        """The state's fields of a credential's row (each is a field of the declaration)."""
        return cls(**{name: getattr(row, name) for name in STATE_FIELDS})

    def is_usable(self, at: datetime) -> bool:
        """The contract's usability rule (``ledger.domain.credential.usable_at``)."""
        return usable_at(
            at,
            minted_at=self.created_at,
            expires_at=self.expires_at,
            revoked_at=self.revoked_at,
            consumed_at=self.consumed_at,
        )

    def to_json(self) -> dict[str, Any]:
        """``state_to_dict(self)``."""
        return state_to_dict(self)


def state_to_dict(state: CredentialState) -> dict[str, Any]:
    """A credential's state as JSON (``null``: never, or not applicable)."""
    return {
        "id": str(state.credential_id),
        "kind": state.kind,
        "token_prefix": state.token_prefix,
        "name": state.name,
        "user_id": _text(state.user_id),
        "workspace_id": _text(state.workspace_id),
        "daemon_id": state.daemon_id,
        "install_token_id": _text(state.install_token_id),
        "created_by": _text(state.created_by),
        "created_at": utc_text(state.created_at),
        "expires_at": utc_text_or_none(state.expires_at),
        "revoked_at": utc_text_or_none(state.revoked_at),
        "revoked_reason": state.revoked_reason,
        "consumed_at": utc_text_or_none(state.consumed_at),
        "daemon_token_id": _text(state.daemon_token_id),
        "last_used_at": utc_text_or_none(state.last_used_at),
    }


@dataclass(frozen=True, slots=True)
class CredentialHistory:
    """A credential's current state and every event of it, oldest first."""

    credential: CredentialState
    events: list[AuditEvent]

    def to_json(self) -> dict[str, Any]:
        return {
            "credential": self.credential.to_json(),
            "events": [e.to_json() for e in self.events],
        }


@dataclass(frozen=True, slots=True)
class AuditPage:
    """A page of the audit feed; ``next_cursor`` is ``None`` when nothing followed it yet."""

    events: list[AuditEvent]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"events": [e.to_json() for e in self.events], "next_cursor": self.next_cursor}


def current_workspaces(events: Iterable[AuditEvent]) -> list[UUID]:
    """The workspaces a user belongs to after ``events`` (their membership events, in log
    order): added and not removed since, in the order they last joined."""
    joined: dict[UUID, None] = {}
    for event in events:
        if event.workspace_id is None or event.credential_id is not None:
            continue
        if event.type == "member_added":
            joined.pop(event.workspace_id, None)
            joined[event.workspace_id] = None
        elif event.type == "member_removed":
            joined.pop(event.workspace_id, None)
    return list(joined)


STATE_FIELDS = tuple(f.name for f in fields(CredentialState))
"""``CredentialState``'s fields: all of them fields of ``CredentialRow``, by the same names."""
