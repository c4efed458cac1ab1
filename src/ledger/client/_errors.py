"""The client's errors: what went wrong, in the service's own words.

LedgerClientError
├── ServiceUnreachable        no answer (connection refused, timeout, ...) after the retries
└── ApiError                  the service answered an error: ``status``, ``error``, ``detail``
    ├── AuthenticationError       401 (``invalid token``, ``install_token_already_used``, ...)
    ├── PermissionDenied          403
    ├── NotFound                  404
    ├── Conflict                  409 (``token limit reached``, ...)
    └── ServerError               5xx, after the retries
"""

from __future__ import annotations

from http import HTTPStatus


class LedgerClientError(Exception):
    """Raised when a call to the ledger service did not succeed."""


class ServiceUnreachable(LedgerClientError):
    """Raised when no answer came back (network error or timeout), after every retry."""


class ApiError(LedgerClientError):
    """Raised when the service answered an error; ``error`` is the contract's stable code and
    ``detail`` its one-sentence explanation (``None`` when the answer had none)."""

    def __init__(self, status: int, error: str, detail: str | None = None) -> None:
        super().__init__(f"{status} {error}" + (f": {detail}" if detail else ""))
        self.status = status
        self.error = error
        self.detail = detail


class AuthenticationError(ApiError):
    """Raised on 401: the token (bearer or install token) is not usable."""


class PermissionDenied(ApiError):
    """Raised on 403: the caller (or an install token's issuer) lacks the role."""


class NotFound(ApiError):
    """Raised on 404."""


class Conflict(ApiError):
    """Raised on 409 (e.g. ``token limit reached``)."""


class ServerError(ApiError):
    """Raised on 5xx once the retries are spent."""


_BY_STATUS: dict[int, type[ApiError]] = {
    HTTPStatus.UNAUTHORIZED: AuthenticationError,
    HTTPStatus.FORBIDDEN: PermissionDenied,
    HTTPStatus.NOT_FOUND: NotFound,
    HTTPStatus.CONFLICT: Conflict,
}


def api_error(status: int, error: str, detail: str | None) -> ApiError:
    """The most specific ``ApiError`` for ``status``."""
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return ServerError(status, error, detail)
    return _BY_STATUS.get(status, ApiError)(status, error, detail)
