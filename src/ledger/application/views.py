"""What the ledger's operations return: plain frozen values, never aggregates.

``Principal`` (who presented a token) is the domain's; it is named here too, for callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ledger.domain.credential_row import CredentialRow
from ledger.domain.model import Role
from ledger.domain.principal import Principal


@dataclass(frozen=True, slots=True)
class CreatedUser:
    """A new user and the initial personal access token (``token`` is shown only here)."""

    user_id: UUID
    name: str
    token: str
    token_prefix: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class UserInfo:
    user_id: UUID
    name: str
    email: str | None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A personal access token as its owner may see it (never the secret)."""

    id: UUID
    name: str
    token_prefix: str
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: CredentialRow) -> TokenInfo:
        return cls(
            id=row.credential_id,
            name=row.name or "",
            token_prefix=row.token_prefix,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class TokenPage:
    """A page of personal access tokens; ``next_cursor`` is ``None`` on the last page."""

    tokens: list[TokenInfo]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class MintedToken:
    """A new personal access token: ``token`` is the raw secret, returned exactly once."""

    info: TokenInfo
    token: str


@dataclass(frozen=True, slots=True)
class WorkspaceInfo:
    id: UUID
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MembershipInfo:
    """A workspace as one of its members sees it in their list: with their role."""

    id: UUID
    name: str
    role: Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ExpiringCredential:
    """A credential about to expire, with its holder (the user of a personal access token, the
    issuer of an install or daemon token) and the holder's name when the user is known."""

    id: UUID
    kind: str
    token_prefix: str
    name: str | None
    workspace_id: UUID | None
    daemon_id: str | None
    expires_at: datetime
    holder_id: UUID | None
    holder_name: str | None

    @classmethod
    def of(
        cls, row: CredentialRow, holder_id: UUID | None, holder_name: str | None
    ) -> ExpiringCredential:
        assert row.expires_at is not None
        return cls(
            id=row.credential_id,
            kind=row.kind,
            token_prefix=row.token_prefix,
            name=row.name,
            workspace_id=row.workspace_id,
            daemon_id=row.daemon_id,
            expires_at=row.expires_at,
            holder_id=holder_id,
            holder_name=holder_name,
        )


@dataclass(frozen=True, slots=True)
class MintedInstallToken:
    """A new install token (15 minutes, single use); ``token`` is shown only here."""

    id: UUID
    token: str
    workspace_id: UUID
    expires_at: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ExchangedDaemonToken:
    """The daemon token an install token was exchanged for; ``token`` is shown only here."""

    token_id: UUID
    token: str
    workspace_id: UUID
    daemon_id: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class DaemonTokenInfo:
    id: UUID
    daemon_id: str
    created_by: UUID | None
    install_token_id: UUID | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: CredentialRow) -> DaemonTokenInfo:
        return cls(
            id=row.credential_id,
            daemon_id=row.daemon_id or "",
            created_by=row.created_by,
            install_token_id=row.install_token_id,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
        )


__all__ = [
    "CreatedUser",
    "DaemonTokenInfo",
    "ExchangedDaemonToken",
    "ExpiringCredential",
    "MembershipInfo",
    "MintedInstallToken",
    "MintedToken",
    "Principal",
    "TokenInfo",
    "TokenPage",
    "UserInfo",
    "WorkspaceInfo",
]
