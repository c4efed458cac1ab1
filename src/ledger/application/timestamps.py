"""How the ledger writes an instant, in one place: every output (HTTP answers, the CLI's JSON and
tables, exports, log lines) formats its timestamps with these functions.

- ``utc_text``: RFC 3339 in UTC with ``Z`` (``2026-11-30T12:00:00Z``; a fraction of a second
  only when there is one, in microseconds), the contract's form wherever a machine reads it.
- ``compact_utc``: ``2026-11-30 12:00Z``, for tables read by people (a minute's precision; the
  ``--json`` form of the same command has the full instant).
"""

from __future__ import annotations

from datetime import UTC, datetime

_UTC_OFFSET = "+00:00"


def utc_text(value: datetime) -> str:
    """``value`` as RFC 3339 in UTC, written with ``Z``; a naive value is refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        msg = "a naive datetime has no instant to write"
        raise ValueError(msg)
    text = value.astimezone(UTC).isoformat()
    return text.removesuffix(_UTC_OFFSET) + "Z"


def utc_text_or_none(value: datetime | None) -> str | None:
    """``utc_text``, with ``None`` (never) kept as ``None``."""
    return None if value is None else utc_text(value)


def compact_utc(value: datetime) -> str:
    """``value`` in UTC to the minute, as tables show it: ``2026-11-30 12:00Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
