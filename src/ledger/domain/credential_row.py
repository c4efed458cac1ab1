"""A credential's current state, flat: what the auth lookup table holds and the views show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ledger.domain.credential import Credential, usable_at
from ledger.domain.model import TokenKind


@dataclass(frozen=True, slots=True)
class CredentialRow:
    """A credential's current state as the auth lookup table holds it."""

    credential_id: UUID
    token_hash: str
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
    version: int
    last_used_at: datetime | None = None
    """Approximate, written in batches by ``ledger.adapters.usage``; never by the event-insert
    path."""

    @classmethod
    def of(cls, credential: Credential) -> CredentialRow:
        return cls(
            credential_id=credential.id,
            token_hash=credential.token_hash,
            kind=credential.kind.value,
            token_prefix=credential.token_prefix,
            name=credential.name,
            user_id=credential.user_id,
            workspace_id=credential.workspace_id,
            daemon_id=credential.daemon_id,
            install_token_id=credential.install_token_id,
            created_by=credential.created_by,
            created_at=credential.created_on,
            expires_at=credential.expires_at,
            revoked_at=credential.revoked_at,
            revoked_reason=credential.revoked_reason.value if credential.revoked_reason else None,
            consumed_at=credential.consumed_at,
            version=credential.version,
        )

    @property
    def token_kind(self) -> TokenKind:
        return TokenKind(self.kind)

    def is_usable(self, at: datetime) -> bool:
        """The contract's usability rule (``ledger.domain.credential.usable_at``)."""
        return usable_at(
            at,
            minted_at=self.created_at,
            expires_at=self.expires_at,
            revoked_at=self.revoked_at,
            consumed_at=self.consumed_at,
        )
