"""ledger: an event-sourced credential ledger on PostgreSQL.

The names below are the public surface; everything else may change without notice.
"""

from ledger.application import (
    CreatedUser,
    DaemonTokenInfo,
    ExchangedDaemonToken,
    Ledger,
    MintedInstallToken,
    MintedToken,
    Principal,
    TokenInfo,
    UserInfo,
    WorkspaceInfo,
)
from ledger.bootstrap import open_ledger
from ledger.config import Settings
from ledger.domain import Actor, Member, RenewalOutcome, RevocationReason, Role, TokenKind
from ledger.domain.clock import Clock, ManualClock, SystemClock
from ledger.domain.errors import LedgerError

__all__ = [
    "Actor",
    "Clock",
    "CreatedUser",
    "DaemonTokenInfo",
    "ExchangedDaemonToken",
    "Ledger",
    "LedgerError",
    "ManualClock",
    "Member",
    "MintedInstallToken",
    "MintedToken",
    "Principal",
    "RenewalOutcome",
    "RevocationReason",
    "Role",
    "Settings",
    "SystemClock",
    "TokenInfo",
    "TokenKind",
    "UserInfo",
    "WorkspaceInfo",
    "open_ledger",
]
