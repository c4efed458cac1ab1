"""Value types shared by the aggregates."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal
from uuid import UUID

ActorType = Literal["user", "daemon", "system"]


class TokenKind(StrEnum):
    """The three kinds of credential; the value is the audit trail's ``kind``."""

    PERSONAL_ACCESS_TOKEN = "personal_access_token"  # noqa: S105 - a kind, not a secret
    DAEMON_TOKEN = "daemon_token"  # noqa: S105
    INSTALL_TOKEN = "install_token"  # noqa: S105

    @property
    def prefix(self) -> str:
        """The token text prefix that announces this kind."""
        return _PREFIXES[self]


_PREFIXES = {
    TokenKind.PERSONAL_ACCESS_TOKEN: "mul_",
    TokenKind.DAEMON_TOKEN: "mdt_",
    TokenKind.INSTALL_TOKEN: "mit_",
}


class Role(StrEnum):
    """A member's role in a workspace."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"

    @property
    def can_administer(self) -> bool:
        """Whether this role may manage members, install tokens and daemon tokens."""
        return self in (Role.OWNER, Role.ADMIN)


class RevocationReason(StrEnum):
    """Why a credential was revoked (recorded on every ``Revoked`` event)."""

    USER_REQUEST = "user_request"
    ADMIN = "admin"
    MEMBER_REMOVED = "member_removed"
    REPLAY_DETECTED = "replay_detected"
    OFFBOARDED = "offboarded"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused an event: a user, a daemon (by daemon token id) or the system."""

    type: ActorType
    id: str

    @classmethod
    def user(cls, user_id: UUID) -> Actor:
        return cls("user", str(user_id))

    @classmethod
    def daemon(cls, daemon_token_id: UUID) -> Actor:
        return cls("daemon", str(daemon_token_id))

    @classmethod
    def system(cls, name: str = "operator") -> Actor:
        return cls("system", name)
