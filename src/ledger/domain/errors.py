"""Every error the ledger raises on purpose, with the stable code the contract names.

    LedgerError
    ├── BadRequest                       400
    │   ├── InvalidRequestBody               "invalid request body"
    │   ├── InvalidExpiresInDays             "invalid expires_in_days"
    │   ├── NameRequired                     "name is required"
    │   ├── InvalidTokenId                   "invalid token id"
    │   ├── InvalidWorkspaceId               "invalid workspace id"
    │   ├── InvalidUserId                    "invalid user id"
    │   ├── InvalidRole                      "invalid role"
    │   ├── LastOwner                        "workspace must have at least one owner"
    │   ├── NotRenewable                     "only personal access tokens can be renewed"
    │   ├── DaemonIdRequired                 "daemon_id is required"
    │   ├── MalformedInstallToken            "invalid_install_token"
    │   ├── InvalidQueryParameter            "invalid query parameter"
    │   ├── InvalidCredentialId              "invalid credential id"
    │   ├── InvalidNote                      "invalid note"
    │   └── UnknownProjection                "unknown projection"
    ├── AuthenticationFailed             401
    │   ├── MissingAuthorization             "missing authorization"
    │   ├── InvalidToken                     "invalid token"
    │   ├── TokenNoLongerValid               "token is no longer valid"
    │   ├── InvalidInstallToken              "invalid_install_token"
    │   └── InstallTokenAlreadyUsed          "install_token_already_used"
    ├── Forbidden                        403
    │   ├── InsufficientPermissions          "insufficient permissions"
    │   └── IssuerNotAdmin                   "install token issuer is not a workspace admin"
    ├── NotFound                         404
    │   ├── WorkspaceNotFound                "workspace not found"
    │   ├── TokenNotFound                    "token not found"
    │   ├── DaemonTokenNotFound              "daemon token not found"
    │   ├── MemberNotFound                   "member not found"
    │   ├── UserNotFound                     "user not found"
    │   └── CredentialNotFound               "credential not found"
    ├── Conflict                         409
    │   ├── AlreadyMember                    "already a member"
    │   └── TokenLimitReached                "token limit reached"
    ├── RequestTooLarge                  413 "request body too large"
    ├── TooManyRequests                  429 "too many requests"
    ├── ServiceUnavailable               503 "service unavailable"
    │   └── SchemaMissing                    (no ledger tables yet: run `ledger migrate`)
    └── ConcurrencyConflict              (internal: a stale write lost a race; retried, never shown)

Lower-layer errors (psycopg, eventsourcing) are translated once, in
``ledger.adapters.postgres.translate_store_errors``. The HTTP status of an error is its
family's, drawn beside each family above (``ledger.entrypoints.fastapi.http_status``); a class
answers with the status of its nearest family.

Messages never contain a raw token: an error carries at most a credential id or a display prefix.
"""

from __future__ import annotations

from typing import ClassVar


class LedgerError(Exception):
    """Raised when the ledger reports any failure on purpose; ``code`` is stable."""

    code: ClassVar[str] = "internal error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.code)
        self.detail = detail


class BadRequest(LedgerError):
    """Raised when a request is malformed or breaks a rule that the caller can fix."""

    code = "invalid request"


class InvalidRequestBody(BadRequest):
    """Raised when a body cannot be parsed or a field has the wrong type."""

    code = "invalid request body"


class InvalidExpiresInDays(BadRequest):
    """Raised when ``expires_in_days`` is neither null nor a whole number in 1..3650."""

    code = "invalid expires_in_days"


class NameRequired(BadRequest):
    """Raised when a name is missing, blank, longer than 100 characters or holds a control
    character."""

    code = "name is required"


class InvalidTokenId(BadRequest):
    """Raised when a token id is not a UUID."""

    code = "invalid token id"


class InvalidWorkspaceId(BadRequest):
    """Raised when a workspace id in a path is not a UUID in canonical text form."""

    code = "invalid workspace id"


class InvalidUserId(BadRequest):
    """Raised when a user id (in a path or a body) is not a UUID in canonical text form."""

    code = "invalid user id"


class InvalidRole(BadRequest):
    """Raised when a role is not one of ``owner``, ``admin``, ``member``."""

    code = "invalid role"


class LastOwner(BadRequest):
    """Raised when a change would leave a workspace without an owner."""

    code = "workspace must have at least one owner"


class NotRenewable(BadRequest):
    """Raised when the presented credential is not a personal access token."""

    code = "only personal access tokens can be renewed"


class DaemonIdRequired(BadRequest):
    """Raised when an exchange names no daemon id (or a blank or over-long one, or one with a
    control character)."""

    code = "daemon_id is required"


class MalformedInstallToken(BadRequest):
    """Raised when an exchange's token is missing, not ``mit_``, or fails its checksum."""

    code = "invalid_install_token"


class InvalidQueryParameter(BadRequest):
    """Raised when an audit query's parameter (time, cursor, limit, type, ...) is invalid."""

    code = "invalid query parameter"


class InvalidCredentialId(BadRequest):
    """Raised when a credential id is not a UUID in canonical form."""

    code = "invalid credential id"


class InvalidNote(BadRequest):
    """Raised when a revocation's note is blank, longer than 200 characters or holds a control
    character."""

    code = "invalid note"


class UnknownProjection(BadRequest):
    """Raised when a projection name is not one the ledger has."""

    code = "unknown projection"


class AuthenticationFailed(LedgerError):
    """Raised when a credential is missing or is not usable."""

    code = "authentication failed"


class MissingAuthorization(AuthenticationFailed):
    """Raised when there is no ``Authorization: Bearer`` credential at all."""

    code = "missing authorization"


class InvalidToken(AuthenticationFailed):
    """Raised when a bearer token is unknown, malformed, expired, revoked, consumed or of the
    wrong kind."""

    code = "invalid token"


class TokenNoLongerValid(AuthenticationFailed):
    """Raised when the personal access token presented for renewal is revoked, expired or
    unknown."""

    code = "token is no longer valid"


class InvalidInstallToken(AuthenticationFailed):
    """Raised when an install token is well formed but unknown, expired or revoked."""

    code = "invalid_install_token"


class InstallTokenAlreadyUsed(AuthenticationFailed):
    """Raised when an install token was already exchanged (even if it has also expired)."""

    code = "install_token_already_used"


class Forbidden(LedgerError):
    """Raised when an authenticated principal lacks the right to act."""

    code = "forbidden"


class InsufficientPermissions(Forbidden):
    """Raised when the caller's role does not allow the operation."""

    code = "insufficient permissions"


class IssuerNotAdmin(Forbidden):
    """Raised when an install token's issuer is no longer an owner or admin of its workspace."""

    code = "install token issuer is not a workspace admin"


class NotFound(LedgerError):
    """Raised when the named thing does not exist or is not visible to the caller."""

    code = "not found"


class WorkspaceNotFound(NotFound):
    """Raised when a workspace does not exist or the caller is not a member."""

    code = "workspace not found"


class TokenNotFound(NotFound):
    """Raised when a personal access token is unknown or belongs to another user."""

    code = "token not found"


class DaemonTokenNotFound(NotFound):
    """Raised when a daemon token is unknown or belongs to another workspace."""

    code = "daemon token not found"


class MemberNotFound(NotFound):
    """Raised when a user is not a member of the workspace."""

    code = "member not found"


class UserNotFound(NotFound):
    """Raised when a user id names no user."""

    code = "user not found"


class CredentialNotFound(NotFound):
    """Raised when a credential is unknown or its history is not visible to the caller."""

    code = "credential not found"


class Conflict(LedgerError):
    """Raised when the request conflicts with the current state."""

    code = "conflict"


class AlreadyMember(Conflict):
    """Raised when adding a user who is already a member of the workspace."""

    code = "already a member"


class TokenLimitReached(Conflict):
    """Raised when a mint or an exchange would take a user or a workspace past its token limit
    (nothing is written)."""

    code = "token limit reached"


class RequestTooLarge(LedgerError):
    """Raised when a request body is larger than the service accepts."""

    code = "request body too large"


class TooManyRequests(LedgerError):
    """Raised when a client address made too many failed exchanges in the current minute;
    ``retry_after`` is how many whole seconds remain until the minute has passed."""

    code = "too many requests"

    def __init__(self, retry_after: int = 60, detail: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ServiceUnavailable(LedgerError):
    """Raised when the store cannot be reached or did not answer in time."""

    code = "service unavailable"


class SchemaMissing(ServiceUnavailable):
    """Raised when the database has no ledger tables yet (``ledger migrate`` was not run)."""


class ConcurrencyConflict(LedgerError):
    """Raised when a write was based on a stale aggregate; the application reloads and retries."""

    code = "concurrency conflict"
