"""Pages of personal access tokens: limits, day counts and opaque cursors.

A cursor is the sort key of the last token of a page (``created_at``, then id), encoded so that
clients treat it as opaque: the next page starts right after that key, so tokens minted or
revoked between two requests never shift a page by one (keyset pagination).
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from uuid import UUID

from ledger.domain.errors import InvalidQueryParameter

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_DAYS = 3650
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_CURSOR_LENGTH = 100


def check_limit(limit: int) -> int:
    """A page size in 1..1000 (``InvalidQueryParameter`` otherwise)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        msg = f"limit must be a whole number in 1..{MAX_LIMIT}"
        raise InvalidQueryParameter(msg)
    return limit


def check_days(days: int) -> int:
    """A number of days in 0..3650 (``InvalidQueryParameter`` otherwise)."""
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_DAYS:
        msg = f"the number of days must be a whole number in 0..{MAX_DAYS}"
        raise InvalidQueryParameter(msg)
    return days


def encode_cursor(created_at: datetime, credential_id: UUID) -> str:
    """The opaque cursor that resumes a listing after the token with this sort key."""
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    raw = f"{micros}.{credential_id.hex}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, UUID] | None:
    """The sort key a cursor stands for (``None`` or empty: from the start);
    ``InvalidQueryParameter`` for anything ``encode_cursor`` did not make."""
    if cursor is None or cursor == "":
        return None
    msg = "cursor is not one this service gave"
    if len(cursor) > _MAX_CURSOR_LENGTH or not cursor.isascii():
        raise InvalidQueryParameter(msg)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        micros, _, hex_id = raw.partition(".")
        if not micros.isdigit() or len(hex_id) != 32:
            raise ValueError(msg)
        created_at = _EPOCH + timedelta(microseconds=int(micros))
        credential_id = UUID(hex=hex_id)
    except (ValueError, binascii.Error, OverflowError, UnicodeDecodeError):
        raise InvalidQueryParameter(msg) from None
    if encode_cursor(created_at, credential_id) != cursor:
        raise InvalidQueryParameter(msg)
    return created_at, credential_id
