"""Abuse controls: failed authentications counted and logged, failed exchanges throttled.

Every failed authentication (a 401 on any route, and a malformed install token on the
exchange) adds one to ``ledger_auth_failures_total{route, reason}`` and writes one log line with
the route, the reason, the presented token's display prefix (never more of it) and the client
address. Nothing is written to the store.

The public exchange answers 429 ``too many requests`` (with ``Retry-After``) to a client address
that made ``LEDGER_EXCHANGE_FAILURES_PER_MINUTE`` failed exchanges (400 ``invalid_install_token``
or any 401) in its current minute, until that minute has passed; the refusal happens before the
body is read, so the store is never touched. The counts are in each process's memory (ADR 0022):
with N worker processes on H hosts an address gets at most N x H times the limit.

The client address is the socket's peer, unless ``LEDGER_TRUSTED_PROXY_HEADER`` names a header
that the proxies in front of the service set (``X-Forwarded-For``): then it is the entry
``LEDGER_TRUSTED_PROXY_HOPS`` places from the right of that header's list, the address the
outermost trusted proxy saw. A request with fewer entries than trusted hops did not come
through them and is counted by its peer address.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from fastapi import Request
from prometheus_client import Counter
from starlette.datastructures import Headers
from starlette.types import Scope

from ledger.application.throttle import FailureLimiter
from ledger.config import Settings
from ledger.domain.clock import Clock, nanos_of
from ledger.domain.errors import (
    AuthenticationFailed,
    LedgerError,
    MalformedInstallToken,
    TooManyRequests,
)
from ledger.domain.tokens import DISPLAY_PREFIX_LENGTH

log = logging.getLogger("ledger.http.auth")

EXCHANGE_ROUTE = "/api/install-tokens/exchange"
PRESENTED_PREFIX_KEY = "ledger.presented_prefix"
"""Where a route leaves the display prefix of a token it read from a body (``scope["state"]``)."""
UNKNOWN_ADDRESS = "unknown"

AUTH_FAILURES = Counter(
    "ledger_auth_failures",
    "Failed authentications (401 answers, and malformed install tokens), by route and reason",
    ["route", "reason"],
)
EXCHANGES_THROTTLED = Counter(
    "ledger_exchange_throttled",
    "Exchanges refused with 429 because their address made too many failed exchanges",
)

_SAFE_PREFIX = re.compile(r"[A-Za-z0-9_]{1,%d}" % DISPLAY_PREFIX_LENGTH)  # noqa: UP031
_MAX_ADDRESS = 64


def display_prefix(token: object) -> str | None:
    """The first 12 characters of a presented token when they look like token text (what the
    ledger itself shows of a token) and are at most half of it; ``None`` for anything else (a
    short made-up token would otherwise be logged whole)."""
    if not isinstance(token, str):
        return None
    text = token.strip()
    head = text[:DISPLAY_PREFIX_LENGTH]
    if len(text) < 2 * DISPLAY_PREFIX_LENGTH or not _SAFE_PREFIX.fullmatch(head):
        return None
    return head


def _clean_address(text: str) -> str:
    text = text.strip()[:_MAX_ADDRESS]
    return text if text and text.isprintable() else UNKNOWN_ADDRESS


class ClientAddresses:
    """The client address of a request, from the socket or a trusted proxy header."""

    def __init__(self, header: str | None = None, hops: int = 1) -> None:
        self.header = header
        self.hops = hops

    def __call__(self, scope: Scope) -> str:
        if self.header:
            entries = [
                entry.strip()
                for value in Headers(scope=scope).getlist(self.header)
                for entry in value.split(",")
                if entry.strip()
            ]
            if len(entries) >= self.hops:
                return _clean_address(entries[-self.hops])
        client = scope.get("client")
        return _clean_address(str(client[0])) if client else UNKNOWN_ADDRESS


class AbuseControls:
    """One process's failed-exchange limiter, client addresses and time (kept on
    ``app.state.abuse``)."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.limiter = FailureLimiter(settings.exchange_failures_per_minute)
        self.address_of = ClientAddresses(
            settings.trusted_proxy_header, settings.trusted_proxy_hops
        )
        self._nanos: Callable[[], int] = nanos_of(clock)

    def _seconds(self) -> float:
        return self._nanos() / 1e9

    def check_exchange(self, scope: Scope) -> None:
        """Raise ``TooManyRequests`` if the request's address is throttled."""
        retry_after = self.limiter.retry_after(self.address_of(scope), self._seconds())
        if retry_after is not None:
            EXCHANGES_THROTTLED.inc()
            raise TooManyRequests(retry_after, "too many failed exchanges from this address")

    def failed(self, scope: Scope, error: LedgerError) -> None:
        """Count, log and (on the exchange) throttle a failed authentication."""
        if not isinstance(error, AuthenticationFailed | MalformedInstallToken):
            return
        matched = scope.get("route")
        route = getattr(matched, "path_format", None) or getattr(matched, "path", "<unmatched>")
        address = self.address_of(scope)
        state: dict[str, Any] = scope.get("state", {})
        prefix = state.get(PRESENTED_PREFIX_KEY)
        if prefix is None:
            prefix = display_prefix(_bearer(scope))
        AUTH_FAILURES.labels(route, error.code).inc()
        log.info(
            "authentication failed",
            extra={
                "route": route,
                "reason": error.code,
                "token_prefix": prefix,
                "client": address,
            },
        )
        if route == EXCHANGE_ROUTE:
            self.limiter.failed(address, self._seconds())


def _bearer(scope: Scope) -> str | None:
    value = Headers(scope=scope).get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token if scheme.lower() == "bearer" else None


def controls(request: Request) -> AbuseControls | None:
    found = getattr(request.app.state, "abuse", None)
    return found if isinstance(found, AbuseControls) else None


def exchange_guard(request: Request) -> None:
    """A dependency of the exchange route, declared before its body: 429 for a throttled
    address, before anything is read."""
    abuse = controls(request)
    if abuse is not None:
        abuse.check_exchange(request.scope)


def remember_presented(request: Request, token: object) -> None:
    """Note the display prefix of a token a route read from its body, for the failure log."""
    prefix = display_prefix(token)
    if prefix is not None:
        request.scope.setdefault("state", {})[PRESENTED_PREFIX_KEY] = prefix
