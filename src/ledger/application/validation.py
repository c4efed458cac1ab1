"""Input rules of the contract, checked before anything is loaded or written.

Text (names, daemon ids, e-mail addresses) never holds a control character (U+0000-U+001F,
U+007F): such a value is refused with the same error as a blank one. Numbers given as text are
bounded by their length before they are converted, so no input reaches ``int``'s digit limit.
Each refusal carries a ``detail`` sentence saying which field was wrong and why.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from ledger.domain import Role
from ledger.domain.errors import (
    DaemonIdRequired,
    InvalidExpiresInDays,
    InvalidNote,
    InvalidRequestBody,
    InvalidRole,
    LedgerError,
    NameRequired,
)

MAX_NAME_LENGTH = 100
MAX_DAEMON_ID_LENGTH = 128
MAX_EXPIRES_IN_DAYS = 3650
MAX_EMAIL_LENGTH = 255
MAX_NOTE_LENGTH = 200
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}")
_UUID_LENGTH = 36
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_control_character(value: str) -> bool:
    """Whether ``value`` holds a character in U+0000-U+001F or U+007F."""
    return _CONTROL.search(value) is not None


def _text(value: Any, field: str, limit: int, error: type[LedgerError]) -> str:
    """``value`` trimmed: a string of at most ``limit`` characters as given (the limit the
    published schema states), with no control character and not blank."""
    if not isinstance(value, str):
        raise error(f"{field} must be a string")
    if len(value) > limit:
        raise error(f"{field} must be at most {limit} characters")
    if has_control_character(value):
        raise error(f"{field} must not contain control characters")
    stripped = value.strip()
    if not stripped:
        raise error(f"{field} must not be blank")
    return stripped


def name(value: Any) -> str:
    """A display name: at most 100 characters, not blank, no control character; returned
    without its surrounding white space."""
    return _text(value, "name", MAX_NAME_LENGTH, NameRequired)


def email(value: Any) -> str | None:
    if value is None:
        return None
    email = _text(value, "email", MAX_EMAIL_LENGTH, InvalidRequestBody)
    if not _EMAIL.fullmatch(email):
        msg = "email must look like name@domain"
        raise InvalidRequestBody(msg)
    return email


def expires_in_days(value: Any) -> int | None:
    """``None`` (never expires) or a whole number of days in 1..3650."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_EXPIRES_IN_DAYS:
        return value
    msg = f"expires_in_days must be a whole number in 1..{MAX_EXPIRES_IN_DAYS}, or null"
    raise InvalidExpiresInDays(msg)


def role(value: Any) -> Role:
    try:
        return Role(value)
    except ValueError:
        msg = f"role must be one of {', '.join(r.value for r in Role)}"
        raise InvalidRole(msg) from None


def daemon_id(value: Any) -> str:
    """A daemon id: at most 128 characters, not blank, no control character; returned without
    its surrounding white space."""
    return _text(value, "daemon_id", MAX_DAEMON_ID_LENGTH, DaemonIdRequired)


def note(value: Any) -> str | None:
    """A revocation's note: ``None`` (no note), or at most 200 characters, not blank, no
    control character; returned without its surrounding white space (``InvalidNote``)."""
    if value is None:
        return None
    return _text(value, "note", MAX_NOTE_LENGTH, InvalidNote)


def bounded_int(value: str, field: str, low: int, high: int, error: type[LedgerError]) -> int:
    """A whole number in ``low..high`` written in ASCII digits; ``error`` otherwise. The text's
    length is checked before it is converted (``int`` refuses more than 4,300 digits)."""
    digits = len(str(high))
    if not value.isascii() or not value.isdigit() or len(value) > digits:
        raise error(f"{field} must be a whole number in {low}..{high}")
    number = int(value)
    if not low <= number <= high:
        raise error(f"{field} must be a whole number in {low}..{high}")
    return number


def uuid(value: UUID | str, error: type[LedgerError]) -> UUID:
    """A UUID from its canonical text (or a UUID); ``error`` otherwise."""
    if isinstance(value, UUID):
        return value
    msg = "not a UUID in canonical form (8-4-4-4-12 hexadecimal digits)"
    if not isinstance(value, str) or len(value) != _UUID_LENGTH:
        raise error(msg)
    try:
        parsed = UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise error(msg) from None
    if str(parsed) != value.lower():  # canonical 8-4-4-4-12 text only
        raise error(msg)
    return parsed
