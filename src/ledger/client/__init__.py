"""``ledger.client``: a small typed HTTP client of the ledger service, for daemons and scripts.

    from ledger.client import LedgerClient, PatKeeper

    with LedgerClient("https://ledger.example") as client:
        creds = client.exchange(install_token, daemon_id="build-01")   # retried safely
    with LedgerClient("https://ledger.example", token=creds.token) as daemon:
        daemon.whoami()

It talks HTTP only (httpx) and imports nothing of the service itself. See docs/client.md.
"""

from ledger.client._client import (
    DaemonCredentials,
    DaemonIdentity,
    LedgerClient,
    Renewal,
    UserIdentity,
)
from ledger.client._errors import (
    ApiError,
    AuthenticationError,
    Conflict,
    LedgerClientError,
    NotFound,
    PermissionDenied,
    ServerError,
    ServiceUnreachable,
)
from ledger.client._keeper import RENEW_WITHIN, PatKeeper
from ledger.client._retry import NO_RETRY, RetryPolicy

__all__ = [
    "NO_RETRY",
    "RENEW_WITHIN",
    "ApiError",
    "AuthenticationError",
    "Conflict",
    "DaemonCredentials",
    "DaemonIdentity",
    "LedgerClient",
    "LedgerClientError",
    "NotFound",
    "PatKeeper",
    "PermissionDenied",
    "Renewal",
    "RetryPolicy",
    "ServerError",
    "ServiceUnreachable",
    "UserIdentity",
]
