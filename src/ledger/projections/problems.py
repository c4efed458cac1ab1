"""What a projection does with an event it cannot project as it is (docs/adr/0016).

The events table may hold anything an older service accepted, or a newer one wrote: text with
control characters (``jsonb`` cannot hold ``\\u0000``, ``text`` no NUL byte), text far longer than
any input rule allows, text where an id or an instant belongs, an event type this version does
not know, a payload that does not decode. No such event may stop a projection or the events
after it. Each is handled by the projection that meets it, and recorded, by position, in
``ledger_projection_errors`` (in the same transaction as the rows and the tracking position):

- ``unsafe_text`` (projected): text with control characters (U+0000-U+001F, U+007F: shown as
  the Unicode control pictures ␀…␟, ␡) or lone surrogates (shown as U+FFFD), longer than
  ``MAX_TEXT`` characters (cut, ending in "…"), or a non-text value where text belongs (its JSON
  form). The read model holds the safe form; the event keeps the original.
- ``invalid_value`` (skipped): an id, instant or number of the wrong type, or a field missing.
  A read model cannot make one up, so the event has no row.
- ``unknown_event_type`` (skipped): the topic is not an event class of the ledger (an event of a
  newer version: a rebuild after the upgrade projects it).
- ``undecodable`` (skipped): the stored payload does not decode (not UTF-8, not JSON, an unknown
  transcoding).
- ``rejected_by_store`` (skipped): the database refused the event's rows anyway; the runner
  isolates the event by bisecting its batch under savepoints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

PROBLEMS_TABLE = "ledger_projection_errors"

UNSAFE_TEXT = "unsafe_text"
INVALID_VALUE = "invalid_value"
UNKNOWN_EVENT_TYPE = "unknown_event_type"
UNDECODABLE = "undecodable"
REJECTED_BY_STORE = "rejected_by_store"
PROBLEMS = (UNSAFE_TEXT, INVALID_VALUE, UNKNOWN_EVENT_TYPE, UNDECODABLE, REJECTED_BY_STORE)
"""Every problem code; only ``unsafe_text`` events are projected (in a safe form)."""

MAX_TEXT = 1000
"""The longest text a read model holds (the input rules allow at most 128 characters)."""

_UNSAFE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


class InvalidValue(ValueError):
    """Raised when an event's field cannot go into a read model: an id, instant or number of
    the wrong type, or a required value missing."""


class Problem(NamedTuple):
    """One row of ``ledger_projection_errors``, without the projection's name."""

    position: int
    stream_id: UUID | None
    stream_version: int | None
    topic: str
    problem: str
    detail: str
    projected: bool


def problem(
    position: int,
    stream_id: Any,
    stream_version: Any,
    topic: str,
    *,
    code: str,
    detail: str,
) -> Problem:
    """A problem row whose every text is safe to store and show."""
    return Problem(
        position,
        stream_id if isinstance(stream_id, UUID) else None,
        stream_version if type(stream_version) is int else None,
        safe_text(topic),
        code,
        safe_text(detail),
        code == UNSAFE_TEXT,
    )


def describe(error: BaseException) -> str:
    """An exception as one line (class and message) for a problem's ``detail``."""
    message = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ … ␟
    return "\u2421" if code == 0x7F else "\ufffd"


def safe_text(value: object) -> str:
    """``value`` as text a read model can hold and a terminal can show: control characters
    as control pictures, lone surrogates as U+FFFD, at most ``MAX_TEXT`` characters; a value
    that is not text in its JSON form."""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    text = _UNSAFE.sub(_picture, value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def text_problem(value: object) -> str | None:
    """What makes ``value`` unsafe as read-model text, or ``None`` if it is safe as it is."""
    if not isinstance(value, str):
        return f"not text ({type(value).__name__})"
    if len(value) > MAX_TEXT:
        return f"{len(value)} characters"
    if not value.isprintable() and _UNSAFE.search(value):
        return "control characters"
    return None


Check = Callable[[Any, str, list[str]], Any]


def _text(value: Any, name: str, notes: list[str]) -> Any:
    if type(value) is str and len(value) <= MAX_TEXT and value.isprintable():
        return value  # the usual case, decided without a regular expression
    found = text_problem(value)
    if found is None:
        return value
    notes.append(f"{name}: {found}")
    return safe_text(value)


def _json(value: Any, name: str, notes: list[str]) -> Any:
    if not isinstance(value, dict):
        msg = f"{name} is not an object"
        raise InvalidValue(msg)
    cleaned = None
    for key, item in value.items():
        if item is None or type(item) is bool:
            continue
        safe = _text(item, key, notes)
        if safe is not item:
            cleaned = cleaned if cleaned is not None else dict(value)
            cleaned[key] = safe
    return value if cleaned is None else cleaned


def _uuid(value: Any, name: str, _: list[str]) -> Any:
    if type(value) is UUID:
        return value
    msg = f"{name} is not an id ({type(value).__name__})"
    raise InvalidValue(msg)


def _bigint(value: Any, name: str, _: list[str]) -> Any:
    if type(value) is int and -(2**63) <= value < 2**63:
        return value
    msg = f"{name} is not a 64-bit integer ({type(value).__name__})"
    raise InvalidValue(msg)


def _instant(value: Any, name: str, _: list[str]) -> Any:
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return value
    msg = f"{name} is not an instant with a time zone ({type(value).__name__})"
    raise InvalidValue(msg)


_CHECKS: dict[str, Check] = {
    "text": _text,
    "jsonb": _json,
    "uuid": _uuid,
    "bigint": _bigint,
    "timestamp with time zone": _instant,
}


def check_instant(value: Any, name: str) -> datetime:
    """``value`` if it is an aware datetime, else ``InvalidValue``."""
    checked: datetime = _instant(value, name, [])
    return checked


def check_id(value: Any, name: str) -> UUID | None:
    """``value`` if it is a UUID or ``None``, else ``InvalidValue``."""
    return None if value is None else _uuid(value, name, [])


class RowCheck:
    """Checks a row's values against its columns' SQL types before they are written.

    Ids, instants and numbers of the wrong type, and a required value missing, raise
    ``InvalidValue``; unsafe text (in a text column, or a value of a ``jsonb`` object) is
    replaced by its safe form, with a note per field."""

    def __init__(self, types: Mapping[str, str], required: Iterable[str]) -> None:
        needed = set(required)
        self._columns = [(name, _CHECKS[sql], name in needed) for name, sql in types.items()]

    def __call__(self, values: Sequence[Any], notes: list[str]) -> Sequence[Any]:
        """The values (the same sequence if nothing needed cleaning); ``notes`` says what
        was cleaned."""
        cleaned: list[Any] | None = None
        for index, ((name, check, required), value) in enumerate(
            zip(self._columns, values, strict=True)
        ):
            if value is None:
                if required:
                    msg = f"{name} is missing"
                    raise InvalidValue(msg)
                continue
            safe = check(value, name, notes)
            if safe is not value:
                cleaned = cleaned if cleaned is not None else list(values)
                cleaned[index] = safe
        return values if cleaned is None else cleaned


def clean_text(value: Any, name: str, notes: list[str]) -> Any:
    """``value`` (text or ``None``) in its safe form, with a note if it needed one."""
    return None if value is None else _text(value, name, notes)
