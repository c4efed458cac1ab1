"""``LedgerClient``: the ledger service's HTTP API for daemons and scripts."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx

from ledger.client._errors import ApiError, ServiceUnreachable, api_error
from ledger.client._retry import RetryPolicy

DEFAULT_TIMEOUT_S = 10.0


def parse_instant(value: str | None) -> datetime | None:
    """An RFC 3339 instant of an answer (``None`` or ``""``: never)."""
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, slots=True)
class DaemonCredentials:
    """What an exchange returns: the daemon token (a secret: keep it, never log it)."""

    token: str
    workspace_id: str
    daemon_id: str
    expires_at: datetime | None

    def __repr__(self) -> str:  # the token stays out of logs and tracebacks
        return (
            f"DaemonCredentials(token='{self.token[:12]}…', workspace_id='{self.workspace_id}', "
            f"daemon_id={self.daemon_id!r}, expires_at={self.expires_at!r})"
        )


@dataclass(frozen=True, slots=True)
class DaemonIdentity:
    """Who a daemon token is (``GET /api/daemon/whoami``)."""

    token_id: str
    workspace_id: str
    daemon_id: str


@dataclass(frozen=True, slots=True)
class UserIdentity:
    """Who a personal access token is (``GET /api/me``)."""

    user_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Renewal:
    """The answer to a renewal: the token's expiry (``None``: never) and whether this call
    extended it."""

    expires_at: datetime | None
    renewed: bool


class LedgerClient:
    """The ledger's HTTP API: ``exchange``, ``whoami``, ``me``, ``renew_current``.

    ``token`` is the bearer of the calls that need one (a daemon token for ``whoami``, a
    personal access token for ``me`` and ``renew_current``). Network errors and 5xx answers are
    retried by ``retry`` (never a 4xx); errors are ``ledger.client`` exceptions carrying the
    service's ``error`` code and ``detail``. ``transport`` and ``sleep`` are for tests.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.token = token
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------------------ calls

    def exchange(self, install_token: str, daemon_id: str) -> DaemonCredentials:
        """Exchange an install token for a daemon token.

        Retrying is safe: the service answers the same install token with the same
        ``daemon_id`` again with the same daemon token, within its retry window
        (``LEDGER_EXCHANGE_RETRY_WINDOW_S``, 60 s by default), so keep ``daemon_id`` stable.
        """
        body = self._call(
            "POST",
            "/api/install-tokens/exchange",
            json={"token": install_token, "daemon_id": daemon_id},
            bearer=False,
        )
        return DaemonCredentials(
            token=body["token"],
            workspace_id=body["workspace_id"],
            daemon_id=body["daemon_id"],
            expires_at=parse_instant(body.get("expires_at")),
        )

    def whoami(self) -> DaemonIdentity:
        """The daemon behind ``token`` (a daemon token)."""
        body = self._call("GET", "/api/daemon/whoami")
        return DaemonIdentity(
            token_id=body["token_id"],
            workspace_id=body["workspace_id"],
            daemon_id=body["daemon_id"],
        )

    def me(self) -> UserIdentity:
        """The user behind ``token`` (a personal access token)."""
        body = self._call("GET", "/api/me")
        return UserIdentity(user_id=body["user_id"], name=body["name"])

    def renew_current(self) -> Renewal:
        """Renew ``token`` (a personal access token) in place when 7 days or less are left;
        otherwise learn its expiry. The secret does not change."""
        body = self._call("POST", "/api/tokens/current/renew")
        return Renewal(expires_at=parse_instant(body["expires_at"]), renewed=body["renewed"])

    # ----------------------------------------------------------------------------- plumbing

    def _call(self, method: str, path: str, *, bearer: bool = True, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if bearer and self.token else {}
        delays = self.retry.delays()
        while True:
            try:
                response = self._http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as error:
                failure: Exception = ServiceUnreachable(
                    f"{method} {path}: no answer ({type(error).__name__})"
                )
                failure.__cause__ = error
            else:
                if response.is_success:
                    return response.json()
                failure = _error_of(response)
                if not response.is_server_error:  # a 4xx: the request itself is refused
                    raise failure
            delay = next(delays, None)
            if delay is None:
                raise failure
            self._sleep(delay)


def _error_of(response: httpx.Response) -> ApiError:
    """The ``ApiError`` of an error answer (its ``error`` and ``detail``, when JSON)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    error = body.get("error")
    detail = body.get("detail")
    return api_error(
        response.status_code,
        error if isinstance(error, str) else response.reason_phrase.lower(),
        detail if isinstance(detail, str) else None,
    )
