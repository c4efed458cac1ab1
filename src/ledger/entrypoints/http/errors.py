"""Errors become answers here, once: ``{"error": code}`` with its family's status.

- ``LedgerError`` (raised by the ledger, the auth dependency, body parsing): its code and status;
  a failed authentication is also counted and logged (``abuse``).
- Routing failures: 404 ``not found``, 405 ``method not allowed`` (with ``Allow`` naming every
  method of every route at that path).
- ``RequestValidationError`` (FastAPI's own checks; routes parse their bodies themselves, so this
  is a safety net): 400 ``invalid request body`` — FastAPI's 422 never reaches a client.
- Anything else: ``RequestMiddleware`` answers 500 ``internal error`` with the request id.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from ledger.domain.errors import InvalidRequestBody, LedgerError, ServiceUnavailable
from ledger.entrypoints.fastapi import error_response
from ledger.entrypoints.http.abuse import controls
from ledger.entrypoints.http.middleware import ERROR_CODE_KEY

log = logging.getLogger("ledger.http")


def _remember(request: Request, code: str) -> None:
    request.scope.setdefault("state", {})[ERROR_CODE_KEY] = code


async def ledger_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, LedgerError)
    if isinstance(error, ServiceUnavailable):
        log.warning("service unavailable: %s", error.detail or error.code)
    abuse = controls(request)
    if abuse is not None:
        abuse.failed(request.scope, error)
    _remember(request, error.code)
    return error_response(error)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at this path (Starlette names only the first route's)."""
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.routes
        )
    ]
    return ", ".join(allowed)


async def http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code = HTTPStatus(error.status_code).phrase.lower()
    _remember(request, code)
    headers = dict(error.headers or {})
    if error.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        headers["Allow"] = _allowed_methods(request)
    return JSONResponse({"error": code}, status_code=error.status_code, headers=headers)


async def validation_error(request: Request, error: Exception) -> Response:
    return await ledger_error(request, InvalidRequestBody())


def install(app: FastAPI) -> None:
    app.add_exception_handler(LedgerError, ledger_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
