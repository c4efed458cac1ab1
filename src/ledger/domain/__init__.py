"""The pure domain: aggregates that check rules and change their own state. No I/O, no clock."""

from ledger.domain.chain import GENESIS_HASH, ChainBrokenError, event_hash, verify_chain
from ledger.domain.credential import Credential, RenewalOutcome
from ledger.domain.model import Actor, RevocationReason, Role, TokenKind
from ledger.domain.user import User
from ledger.domain.workspace import Member, Workspace

__all__ = [
    "GENESIS_HASH",
    "Actor",
    "ChainBrokenError",
    "Credential",
    "Member",
    "RenewalOutcome",
    "RevocationReason",
    "Role",
    "TokenKind",
    "User",
    "Workspace",
    "event_hash",
    "verify_chain",
]
