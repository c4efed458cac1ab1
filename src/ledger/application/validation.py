"""Input rules of the contract, checked before anything is loaded or written."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from ledger.domain import Role
from ledger.domain.errors import (
    DaemonIdRequired,
    InvalidExpiresInDays,
    InvalidRequestBody,
    InvalidRole,
    LedgerError,
    NameRequired,
)

MAX_NAME_LENGTH = 100
MAX_DAEMON_ID_LENGTH = 128
MAX_EXPIRES_IN_DAYS = 3650
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}")


def name(value: Any) -> str:
    """A display name: 1..100 characters once surrounding white space is dropped."""
    if not isinstance(value, str):
        raise NameRequired
    stripped = value.strip()
    if not stripped or len(stripped) > MAX_NAME_LENGTH:
        raise NameRequired
    return stripped


def email(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _EMAIL.fullmatch(value.strip()):
        msg = "invalid email"
        raise InvalidRequestBody(msg)
    return value.strip()


def expires_in_days(value: Any) -> int | None:
    """``None`` (never expires) or a whole number of days in 1..3650."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidExpiresInDays
    if not 1 <= value <= MAX_EXPIRES_IN_DAYS:
        raise InvalidExpiresInDays
    return value


def role(value: Any) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidRole from None


def daemon_id(value: Any) -> str:
    """A daemon id: 1..128 characters once trimmed."""
    if not isinstance(value, str):
        raise DaemonIdRequired
    stripped = value.strip()
    if not stripped or len(stripped) > MAX_DAEMON_ID_LENGTH:
        raise DaemonIdRequired
    return stripped


def uuid(value: UUID | str, error: type[LedgerError]) -> UUID:
    """A UUID from its canonical text (or a UUID); ``error`` otherwise."""
    if isinstance(value, UUID):
        return value
    try:
        parsed = UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise error from None
    if str(parsed) != value.lower():  # canonical 8-4-4-4-12 text only
        raise error
    return parsed
