"""Bearer authentication for FastAPI applications, backed by ``Ledger.verify``.

Add ``LedgerAuth`` as a dependency of any route to get the caller's ``Principal``::

    from fastapi import Depends, FastAPI
    from ledger import Principal, TokenKind
    from ledger.entrypoints.fastapi import LedgerAuth, add_error_handlers

    app = FastAPI()
    app.state.ledger = ledger  # one Ledger per process
    add_error_handlers(app)    # {"error": code} bodies with the contract's statuses
    users = LedgerAuth({TokenKind.PERSONAL_ACCESS_TOKEN})

    @app.get("/things")
    def things(caller: Annotated[Principal, Depends(users)]) -> ...

Answers (the contract's): no ``Authorization`` header, or not ``Bearer <something>``: 401
``missing authorization``; a token that is unknown, malformed, expired, revoked, consumed or of a
kind the dependency does not take: 401 ``invalid token``; the store unreachable: 503
``service unavailable``. Install tokens are never bearer credentials, so they are refused
whatever ``allowed_kinds`` says.

The dependency answers a token found in the verifier's cache on the event loop (no I/O, no
hop to a thread); on a miss it runs ``verify``, which reads PostgreSQL, in FastAPI's thread
pool, never on the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from ledger.application import Ledger, Principal
from ledger.domain import TokenKind, errors
from ledger.domain.errors import (
    AuthenticationFailed,
    BadRequest,
    ConcurrencyConflict,
    Conflict,
    Forbidden,
    LedgerError,
    MissingAuthorization,
    NotFound,
    RequestTooLarge,
    ServiceUnavailable,
    TooManyRequests,
)

BEARER_KINDS = frozenset({TokenKind.PERSONAL_ACCESS_TOKEN, TokenKind.DAEMON_TOKEN})
"""The kinds that may ever authenticate a request (an install token never does)."""

# Reads the header and declares the scheme in the OpenAPI document ("Authorize" in /docs);
# auto_error=False so that the contract's own 401 body is the answer, not FastAPI's.
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")


def ledger_of_app(request: Request) -> Ledger:
    """The process's ``Ledger``, kept on ``app.state.ledger``."""
    ledger = getattr(request.app.state, "ledger", None)
    if not isinstance(ledger, Ledger):  # pragma: no cover - a wiring error of the host app
        msg = "app.state.ledger is not set to a Ledger"
        raise TypeError(msg)
    return ledger


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """The raw bearer token of the request, or ``None`` (no header, or not ``Bearer <x>``)."""
    return credentials.credentials if credentials is not None else None


class LedgerAuth:
    """A FastAPI dependency: the ``Principal`` behind the request's bearer token.

    ``allowed_kinds`` are the token kinds the routes take (personal access tokens by default);
    ``ledger`` returns the process's ``Ledger`` for a request (``app.state.ledger`` by default).
    Failures raise ``ledger.domain.errors`` exceptions: register ``add_error_handlers`` (or your own
    handler for ``LedgerError``) to answer them.
    """

    def __init__(
        self,
        allowed_kinds: Iterable[TokenKind] = (TokenKind.PERSONAL_ACCESS_TOKEN,),
        *,
        ledger: Callable[[Request], Ledger] = ledger_of_app,
    ) -> None:
        self.allowed_kinds = frozenset(allowed_kinds) & BEARER_KINDS
        if not self.allowed_kinds:
            msg = "LedgerAuth needs at least one bearer kind (personal access or daemon token)"
            raise ValueError(msg)
        self._ledger = ledger

    async def __call__(
        self, request: Request, raw: Annotated[str | None, Depends(bearer_token)]
    ) -> Principal:
        if raw is None:
            raise MissingAuthorization
        ledger = self._ledger(request)
        principal = ledger.verify_cached(raw, self.allowed_kinds)
        if principal is None:  # a miss reads the store: not on the event loop
            principal = await run_in_threadpool(ledger.verify, raw, self.allowed_kinds)
        return principal


FAMILY_STATUS: dict[type[LedgerError], int] = {
    BadRequest: 400,
    AuthenticationFailed: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    RequestTooLarge: 413,
    TooManyRequests: 429,
    ServiceUnavailable: 503,
    ConcurrencyConflict: 503,
    LedgerError: 500,
}
"""The HTTP status of each family of the error tree (``ledger.domain.errors``). Statuses follow
classes, not codes: the contract uses ``invalid_install_token`` for both a 400 and a 401."""


DEFAULT_DETAILS: dict[type[LedgerError], str] = {
    errors.InvalidRequestBody: "the request body is not JSON of the documented shape",
    errors.InvalidExpiresInDays: "expires_in_days must be a whole number in 1..3650, or null",
    errors.NameRequired: "name must be 1..100 characters, not blank, no control characters",
    errors.InvalidTokenId: "the token id in the path is not a UUID",
    errors.InvalidWorkspaceId: "the workspace id in the path is not a UUID",
    errors.InvalidUserId: "the user id is not a UUID",
    errors.InvalidRole: "role must be one of owner, admin, member",
    errors.InvalidNote: "note must be 1..200 characters, not blank, no control characters",
    errors.LastOwner: "the workspace would be left without an owner",
    errors.NotRenewable: "only a personal access token (mul_) sent as the bearer can be renewed",
    errors.DaemonIdRequired: "daemon_id must be 1..128 characters, not blank",
    errors.MalformedInstallToken: "token must be an install token (mit_) with a valid checksum",
    errors.InvalidQueryParameter: "a query parameter is not valid",
    errors.InvalidCredentialId: "the credential id in the path is not a UUID",
    errors.UnknownProjection: "no projection has this name",
    errors.MissingAuthorization: "send the token as an Authorization: Bearer header",
    errors.InvalidToken: (
        "the bearer token is unknown, malformed, expired, revoked, consumed, "
        "or of a kind this route does not take"
    ),
    errors.TokenNoLongerValid: "the token is revoked, expired or unknown",
    errors.InvalidInstallToken: "the install token is unknown, expired or revoked",
    errors.InstallTokenAlreadyUsed: "the install token was already exchanged",
    errors.InsufficientPermissions: "your role in the workspace does not allow this",
    errors.IssuerNotAdmin: "whoever issued the install token is no longer a workspace admin",
    errors.WorkspaceNotFound: "no workspace with this id has you as a member",
    errors.TokenNotFound: "you hold no personal access token with this id",
    errors.DaemonTokenNotFound: "the workspace has no daemon token with this id",
    errors.MemberNotFound: "the user is not a member of the workspace",
    errors.UserNotFound: "no user has this id",
    errors.CredentialNotFound: "no credential with this id that you may read",
    errors.AlreadyMember: "the user is already a member of the workspace",
    errors.TokenLimitReached: (
        "the user or the workspace already holds as many tokens as its limit allows"
    ),
    errors.RequestTooLarge: "the request body is larger than 64 KiB",
}
"""What a client error says when the code that raised it said nothing more (one sentence, no
secret): every 4xx answer carries a ``detail``."""


def client_error_detail(error: LedgerError) -> str | None:
    """The ``detail`` of a client error: its own, else its class's (or its family's)."""
    if error.detail and error.detail != error.code:
        return error.detail
    return next((DEFAULT_DETAILS[c] for c in type(error).__mro__ if c in DEFAULT_DETAILS), None)


def http_status(error_class: type[LedgerError]) -> int:
    """The status of the nearest family ``error_class`` belongs to."""
    return next(FAMILY_STATUS[c] for c in error_class.__mro__ if c in FAMILY_STATUS)


def error_response(error: LedgerError, **extra: str) -> JSONResponse:
    """``{"error": code}`` with the status of the error's family (``http_status``).

    A client error (4xx) also carries ``"detail"``: one sentence about the caller's own input
    (``client_error_detail``). A server error never does (its detail names internals)."""
    status = http_status(type(error))
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, AuthenticationFailed) else None
    if isinstance(error, TooManyRequests):
        headers = {"Retry-After": str(error.retry_after)}
    body = {"error": error.code}
    detail = client_error_detail(error) if status < 500 else None
    if detail:
        body["detail"] = detail
    return JSONResponse({**body, **extra}, status_code=status, headers=headers)


async def _ledger_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, LedgerError)
    return error_response(error)


def add_error_handlers(app: FastAPI) -> None:
    """Answer every ``LedgerError`` raised by a route or dependency as ``{"error": code}``."""
    app.add_exception_handler(LedgerError, _ledger_error)


__all__ = [
    "BEARER_KINDS",
    "DEFAULT_DETAILS",
    "FAMILY_STATUS",
    "LedgerAuth",
    "add_error_handlers",
    "bearer_token",
    "client_error_detail",
    "error_response",
    "http_status",
    "ledger_of_app",
]
