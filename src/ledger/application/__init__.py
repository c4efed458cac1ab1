"""The service layer: the ``Ledger`` application and the values it returns."""

from ledger.application.ledger import Ledger
from ledger.application.views import (
    CreatedUser,
    DaemonTokenInfo,
    ExchangedDaemonToken,
    MintedInstallToken,
    MintedToken,
    TokenInfo,
    UserInfo,
    WorkspaceInfo,
)
from ledger.domain.principal import Principal

__all__ = [
    "CreatedUser",
    "DaemonTokenInfo",
    "ExchangedDaemonToken",
    "Ledger",
    "MintedInstallToken",
    "MintedToken",
    "Principal",
    "TokenInfo",
    "UserInfo",
    "WorkspaceInfo",
]
