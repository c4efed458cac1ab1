"""What the auditors' queries return: audit events, credential states, pages of the feed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from ledger.domain import Actor
from ledger.domain.credential_row import CredentialRow, usable_at

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


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
        """The contract's audit fields, type-specific fields last; ``position`` doubles as a
        cursor that resumes the feed after this event."""
        head: dict[str, Any] = {"position": self.position}
        if self.credential_id is not None:
            head |= {"credential_id": str(self.credential_id), "kind": self.kind}
        return head | {
            "type": self.type,
            "at": self.at.isoformat(),
            "actor": {"type": self.actor.type, "id": self.actor.id},
            "workspace_id": str(self.workspace_id) if self.workspace_id else None,
            "user_id": str(self.user_id) if self.user_id else None,
            **self.data,
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
        return {
            "id": str(self.credential_id),
            "kind": self.kind,
            "token_prefix": self.token_prefix,
            "name": self.name,
            "user_id": str(self.user_id) if self.user_id else None,
            "workspace_id": str(self.workspace_id) if self.workspace_id else None,
            "daemon_id": self.daemon_id,
            "install_token_id": str(self.install_token_id) if self.install_token_id else None,
            "created_by": str(self.created_by) if self.created_by else None,
            "created_at": self.created_at.isoformat(),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "revoked_reason": self.revoked_reason,
            "consumed_at": _iso(self.consumed_at),
            "daemon_token_id": str(self.daemon_token_id) if self.daemon_token_id else None,
            "last_used_at": _iso(self.last_used_at),
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
