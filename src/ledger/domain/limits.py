"""Token limits: how many personal access tokens a user, and daemon tokens a workspace, may hold.

A mint or an exchange names the limit it must stay under; the store admits it only if, in the
same transaction and with every other command on the same scope waiting (ADR 0021), fewer than
``maximum`` credentials of the scope count toward it. What counts is ``counts_toward``; the
write-batch function's SQL says the same thing, and the integration tests hold them together.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ledger.domain.credential_row import CredentialRow
from ledger.domain.errors import TokenLimitReached
from ledger.domain.model import TokenKind


class LimitScope(enum.StrEnum):
    """Whose credentials a limit counts (the value travels to the store)."""

    USER_PERSONAL_ACCESS_TOKENS = "personal_access_tokens"
    WORKSPACE_DAEMON_TOKENS = "daemon_tokens"


@dataclass(frozen=True, slots=True)
class TokenLimit:
    """At most ``maximum`` credentials of ``scope`` held by ``principal`` (a user or a
    workspace id), counted at ``at``."""

    scope: LimitScope
    principal: UUID
    maximum: int
    at: datetime

    @classmethod
    def personal_access_tokens(cls, user_id: UUID, maximum: int, at: datetime) -> TokenLimit:
        return cls(LimitScope.USER_PERSONAL_ACCESS_TOKENS, user_id, maximum, at)

    @classmethod
    def daemon_tokens(cls, workspace_id: UUID, maximum: int, at: datetime) -> TokenLimit:
        return cls(LimitScope.WORKSPACE_DAEMON_TOKENS, workspace_id, maximum, at)


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """The configured maximums (0: no limit)."""

    personal_access_tokens_per_user: int = 100
    daemon_tokens_per_workspace: int = 1000

    def for_personal_access_tokens(self, user_id: UUID, at: datetime) -> TokenLimit | None:
        maximum = self.personal_access_tokens_per_user
        return TokenLimit.personal_access_tokens(user_id, maximum, at) if maximum else None

    def for_daemon_tokens(self, workspace_id: UUID, at: datetime) -> TokenLimit | None:
        maximum = self.daemon_tokens_per_workspace
        return TokenLimit.daemon_tokens(workspace_id, maximum, at) if maximum else None


def counts_toward(row: CredentialRow, limit: TokenLimit) -> bool:
    """Whether a credential takes a place under ``limit``: a user's personal access token that
    is not revoked and not expired at ``limit.at`` (one minted a moment later, by another
    process's clock, counts too), or a workspace's daemon token that is not revoked."""
    if row.revoked_at is not None:
        return False
    if limit.scope is LimitScope.USER_PERSONAL_ACCESS_TOKENS:
        return (
            row.kind == TokenKind.PERSONAL_ACCESS_TOKEN.value
            and row.user_id == limit.principal
            and (row.expires_at is None or row.expires_at > limit.at)
        )
    return row.kind == TokenKind.DAEMON_TOKEN.value and row.workspace_id == limit.principal


def check_under_limit(held: int, limit: TokenLimit) -> None:
    """Raise ``TokenLimitReached`` unless one more credential fits: ``held`` < ``maximum``."""
    if held >= limit.maximum:
        raise TokenLimitReached


__all__ = ["LimitScope", "LimitSettings", "TokenLimit", "check_under_limit", "counts_toward"]
