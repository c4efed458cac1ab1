"""Who presented a usable token: what authorization decides with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ledger.domain.model import TokenKind


@dataclass(frozen=True, slots=True)
class Principal:
    """Who presented a usable token: what auth middleware needs to authorize a request."""

    credential_id: UUID
    kind: TokenKind
    user_id: UUID | None
    workspace_id: UUID | None
    daemon_id: str | None
    expires_at: datetime | None
