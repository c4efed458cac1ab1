"""ledger: an event-sourced credential ledger on PostgreSQL.

The names in ``__all__`` are the public surface; everything else may change without notice.
They are imported on first use, so that ``import ledger.domain`` (or any other part) loads only
what that part needs: the domain alone loads neither psycopg, pydantic nor FastAPI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.application import (
        CreatedUser,
        DaemonTokenInfo,
        ExchangedDaemonToken,
        Ledger,
        MintedInstallToken,
        MintedToken,
        TokenInfo,
        UserInfo,
        WorkspaceInfo,
    )
    from ledger.bootstrap import open_ledger
    from ledger.config import Settings
    from ledger.domain import Actor, Member, RenewalOutcome, RevocationReason, Role, TokenKind
    from ledger.domain.clock import Clock, ManualClock, SystemClock
    from ledger.domain.errors import LedgerError
    from ledger.domain.principal import Principal

_HOMES = {
    "Actor": "ledger.domain",
    "Clock": "ledger.domain.clock",
    "CreatedUser": "ledger.application",
    "DaemonTokenInfo": "ledger.application",
    "ExchangedDaemonToken": "ledger.application",
    "Ledger": "ledger.application",
    "LedgerError": "ledger.domain.errors",
    "ManualClock": "ledger.domain.clock",
    "Member": "ledger.domain",
    "MintedInstallToken": "ledger.application",
    "MintedToken": "ledger.application",
    "Principal": "ledger.domain.principal",
    "RenewalOutcome": "ledger.domain",
    "RevocationReason": "ledger.domain",
    "Role": "ledger.domain",
    "Settings": "ledger.config",
    "SystemClock": "ledger.domain.clock",
    "TokenInfo": "ledger.application",
    "TokenKind": "ledger.domain",
    "UserInfo": "ledger.application",
    "WorkspaceInfo": "ledger.application",
    "open_ledger": "ledger.bootstrap",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        msg = f"module 'ledger' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
