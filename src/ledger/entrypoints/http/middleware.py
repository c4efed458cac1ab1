"""The outermost layer of every request: request id, size limit, metrics, access log, and the
last resort for an unexpected exception.

A plain ASGI middleware (no ``BaseHTTPMiddleware``: it would run the app in another task and
hide the context variable that carries the request id).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.domain.errors import LedgerError, RequestTooLarge
from ledger.entrypoints.fastapi import error_response
from ledger.entrypoints.http import metrics
from ledger.entrypoints.http.logs import request_id

log = logging.getLogger("ledger.http")
access_log = logging.getLogger("ledger.http.access")

REQUEST_ID_HEADER = "x-request-id"
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
ERROR_CODE_KEY = "ledger.error_code"
"""Where the error handlers leave the code they answered (in ``scope["state"]``)."""


def _request_id(headers: Headers) -> str:
    """The client's ``X-Request-ID`` if it is a sane one, else a new id."""
    given = headers.get(REQUEST_ID_HEADER)
    if given is not None and _CLIENT_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def _route_template(scope: Scope) -> tuple[str, str | None]:
    """The matched route's path template and endpoint name (never the raw path)."""
    route = scope.get("route")
    # The template as documented: without a parameter's convertor (``{token_id:token_id}``).
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(path, str):
        return "<unmatched>", None
    return path, getattr(route, "name", None)


CLIENT_CLOSED_REQUEST = 499


class RequestMiddleware:
    """Request id in and out, body size limit by ``Content-Length``, metrics, access log,
    and ``500 {"error": "internal error", "request_id": …}`` for anything unexpected."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        rid = _request_id(headers)
        token = request_id.set(rid)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = rid
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            if self._too_large(headers):
                state[ERROR_CODE_KEY] = RequestTooLarge.code
                await error_response(RequestTooLarge())(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client left, or was cut off for sending too slowly, before its request was
            # in: nobody is left to answer. Recorded as 499, the status proxies log for it.
            status = CLIENT_CLOSED_REQUEST
            state[ERROR_CODE_KEY] = "client_disconnected"
        except Exception:
            log.exception("unhandled error")
            if response_started:
                raise
            state[ERROR_CODE_KEY] = LedgerError.code
            response = error_response(LedgerError(), request_id=rid)
            await response(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started)
            request_id.reset(token)

    def _too_large(self, headers: Headers) -> bool:
        length = headers.get("content-length")
        if length is None:
            return False
        if not length.isascii() or not length.isdigit():
            return False  # the server refuses a malformed length before the app sees it
        # Any length with more digits than the limit is over it: never convert a huge number.
        return len(length) > len(str(self.max_body_bytes)) or int(length) > self.max_body_bytes

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float) -> None:
        method = str(scope.get("method", ""))
        template, command = _route_template(scope)
        metrics.REQUESTS.labels(method, template, str(status)).inc()
        metrics.REQUEST_SECONDS.labels(method, template).observe(seconds)
        code = scope.get("state", {}).get(ERROR_CODE_KEY)
        if command is not None and template.startswith("/api/"):
            metrics.COMMANDS.labels(command, code or ("ok" if status < 400 else str(status))).inc()
        access_log.info(
            "%s %s %d",
            method,
            template,
            status,
            extra={
                "method": method,
                "route": template,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
            },
        )
