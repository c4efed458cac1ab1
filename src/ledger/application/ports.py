"""What the application needs from outside it, as protocols: adapters implement them and the
composition root (``ledger.bootstrap``) plugs them in; in-memory fakes do in unit tests."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from ledger.application.audit import AuditPage, CredentialHistory, CredentialState
from ledger.application.verify import AuthRow, StoreErrors, UsageNotes, Verifier
from ledger.domain.credential_row import CredentialRow
from ledger.domain.limits import TokenLimit
from ledger.domain.model import TokenKind


class CredentialReads(Protocol):
    """The credentials' current states (the auth lookup table), exact once a command returns."""

    def get(self, credential_id: UUID) -> CredentialRow | None: ...

    def auth_row(self, credential_id: UUID) -> AuthRow | None: ...

    def personal_access_tokens(self, user_id: UUID) -> list[CredentialRow]:
        """The user's tokens that are not revoked (expired ones included), newest first."""
        ...

    def personal_access_tokens_page(
        self,
        user_id: UUID,
        *,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
        expiring: tuple[datetime, datetime] | None = None,
    ) -> list[CredentialRow]:
        """At most ``limit`` of the user's unrevoked tokens, newest first (by ``created_at``,
        then id), after the key ``after``; with ``expiring``, only those whose expiry is in
        ``(expiring[0], expiring[1]]``."""
        ...

    def live_of_user(self, user_id: UUID) -> list[CredentialRow]:
        """Offboarding's candidates: the user's unrevoked personal access tokens, and the
        unrevoked daemon tokens and unconsumed, unrevoked install tokens they issued."""
        ...

    def expiring(
        self, start: datetime, end: datetime, workspace_id: UUID | None = None
    ) -> list[CredentialRow]:
        """Credentials neither revoked nor consumed whose expiry is in ``(start, end]``,
        soonest first (only the workspace's when it is given)."""
        ...

    def of_workspace(self, workspace_id: UUID, kind: TokenKind) -> list[CredentialRow]:
        """Every credential of ``kind`` in the workspace, revoked ones included, newest first."""
        ...

    def live_issued_by(self, workspace_id: UUID, user_id: UUID) -> list[CredentialRow]:
        """Unrevoked daemon tokens minted through the user's install tokens, and the user's
        unconsumed, unrevoked install tokens (the member-removal cascade's candidates)."""
        ...


class AuditReads(Protocol):
    """The auditors' read models; a query sees every command that returned before it."""

    def history(self, credential_id: UUID) -> CredentialHistory: ...

    def events(
        self,
        *,
        workspace: UUID | None = None,
        type: str | None = None,  # noqa: A002 - the contract's parameter name
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = ...,
    ) -> AuditPage: ...

    def valid_at(self, at: datetime, *, workspace: UUID | None = None) -> list[CredentialState]: ...

    def workspaces_of(self, user_id: UUID) -> list[UUID]:
        """The workspaces the user is a member of (``current_workspaces`` of their membership
        events)."""
        ...


class Refused(enum.Enum):
    """Why the store refused a command, besides an optimistic race (``None``)."""

    LIMIT_REACHED = "limit_reached"
    """A ``TokenLimit`` of the command was reached: nothing of it was written."""


WriteOutcome = list[int] | Refused | None
"""A written command's notification ids; ``None`` when a stream moved since it was loaded (an
optimistic race: run the command again); ``Refused`` when a limit refused it."""

WriteEvents = Callable[[list[StoredEvent], list[CredentialRow], TokenLimit | None], WriteOutcome]
"""Write one command's stored events and the credential rows they produce, atomically, if the
command stays within its ``TokenLimit`` (counted in the writing transaction, with every other
command on the same scope waiting)."""

ReadStreams = Callable[[UUID], list[StoredEvent]]
"""The stored events of a credential and of its workspace, in one read (an exchange needs
both)."""


def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Ports:
    """Everything the ``Ledger`` application talks to besides its event store."""

    credentials: CredentialReads
    verifier: Verifier
    audit: AuditReads
    write: WriteEvents
    exchange_keys: tuple[bytes, ...]
    """The exchange keys (ADR 0020), newest first: the first derives new daemon tokens; every
    one is tried when a retry recomputes a daemon token (key rotation)."""
    read_streams: ReadStreams | None = None
    """``None``: the credential and its workspace are loaded one after the other."""
    close: Callable[[], None] = field(default=_nothing)
    """Stops what the adapters run (threads, pools); called by ``Ledger.close``."""


__all__ = [
    "AuditReads",
    "AuthRow",
    "CredentialReads",
    "Ports",
    "ReadStreams",
    "Refused",
    "StoreErrors",
    "UsageNotes",
    "WriteEvents",
    "WriteOutcome",
]
