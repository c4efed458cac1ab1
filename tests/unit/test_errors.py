"""The error tree: stable codes, and statuses that follow the families."""

from __future__ import annotations

import inspect

import ledger
from ledger.domain import errors
from ledger.entrypoints.fastapi import FAMILY_STATUS, http_status


def all_error_classes() -> list[type[errors.LedgerError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.LedgerError)
    ]


def test_every_error_class_belongs_to_exactly_one_family() -> None:
    for cls in all_error_classes():
        families = [f for f in FAMILY_STATUS if f is not errors.LedgerError and issubclass(cls, f)]
        assert len(families) <= 1, cls.__name__
        assert http_status(cls) == FAMILY_STATUS[families[0] if families else errors.LedgerError]


def test_every_error_class_documents_when_it_is_raised() -> None:
    for cls in all_error_classes():
        assert cls.__doc__ and cls.__doc__.startswith("Raised when"), cls.__name__


def test_the_docstring_draws_every_class() -> None:
    assert errors.__doc__ is not None
    for cls in all_error_classes():
        assert cls.__name__ in errors.__doc__, cls.__name__


CONTRACT_CODES: dict[type[errors.LedgerError], tuple[int, str]] = {
    errors.InvalidRequestBody: (400, "invalid request body"),
    errors.InvalidExpiresInDays: (400, "invalid expires_in_days"),
    errors.NameRequired: (400, "name is required"),
    errors.InvalidNote: (400, "invalid note"),
    errors.TooManyRequests: (429, "too many requests"),
    errors.InvalidTokenId: (400, "invalid token id"),
    errors.InvalidRole: (400, "invalid role"),
    errors.LastOwner: (400, "workspace must have at least one owner"),
    errors.NotRenewable: (400, "only personal access tokens can be renewed"),
    errors.DaemonIdRequired: (400, "daemon_id is required"),
    errors.MalformedInstallToken: (400, "invalid_install_token"),
    errors.MissingAuthorization: (401, "missing authorization"),
    errors.InvalidToken: (401, "invalid token"),
    errors.TokenNoLongerValid: (401, "token is no longer valid"),
    errors.InvalidInstallToken: (401, "invalid_install_token"),
    errors.InstallTokenAlreadyUsed: (401, "install_token_already_used"),
    errors.InsufficientPermissions: (403, "insufficient permissions"),
    errors.IssuerNotAdmin: (403, "install token issuer is not a workspace admin"),
    errors.WorkspaceNotFound: (404, "workspace not found"),
    errors.TokenNotFound: (404, "token not found"),
    errors.DaemonTokenNotFound: (404, "daemon token not found"),
    errors.MemberNotFound: (404, "member not found"),
    errors.UserNotFound: (404, "user not found"),
    errors.CredentialNotFound: (404, "credential not found"),
    errors.AlreadyMember: (409, "already a member"),
    errors.ServiceUnavailable: (503, "service unavailable"),
}


def test_codes_and_statuses_are_the_contracts() -> None:
    for cls, (status, code) in CONTRACT_CODES.items():
        assert (http_status(cls), cls.code) == (status, code), cls.__name__


def test_an_error_message_defaults_to_its_code() -> None:
    assert str(errors.InvalidToken()) == "invalid token"
    assert str(errors.ServiceUnavailable("lock timeout")) == "lock timeout"


def test_public_surface_is_sorted_and_pinned() -> None:
    assert ledger.__all__ == sorted(ledger.__all__)
    assert ledger.__all__ == [
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
    for name in ledger.__all__:
        assert hasattr(ledger, name)
