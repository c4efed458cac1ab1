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
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple
from uuid import UUID

from ledger.domain.model import Actor

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
    if type(value) is int and _MIN_BIGINT <= value <= _MAX_BIGINT:
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
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return value
    msg = f"{name} is not an instant with a time zone ({type(value).__name__})"
    raise InvalidValue(msg)


def check_id(value: Any, name: str) -> UUID | None:
    """``value`` if it is a UUID or ``None``, else ``InvalidValue``."""
    if value is None or value.__class__ is UUID:
        return value
    msg = f"{name} is not an id ({type(value).__name__})"
    raise InvalidValue(msg)


_CLASSES: dict[str, frozenset[type]] = {
    "text": frozenset({str}),
    "jsonb": frozenset({dict}),
    "uuid": frozenset({UUID}),
    "bigint": frozenset({int}),
    "timestamp with time zone": frozenset({datetime}),
}


class RowCheck:
    """Checks a row's values against its columns' SQL types before they are written.

    Ids, instants and numbers of the wrong type, and a required value missing, raise
    ``InvalidValue``; unsafe text (in a text column, or a value of a ``jsonb`` object) is
    replaced by its safe form, with a note per field. A row that needs nothing is returned as
    it is after one pass over its values (``_clean``); the column-by-column checks run only
    for the others."""

    def __init__(self, types: Mapping[str, str], required: Iterable[str]) -> None:
        needed = set(required)
        columns = list(types.items())
        self._columns = [(name, _CHECKS[sql], name in needed) for name, sql in columns]
        self._classes = tuple(
            _CLASSES[sql] if name in needed else _CLASSES[sql] | {type(None)}
            for name, sql in columns
        )
        self._signatures: dict[tuple[type, ...], bool] = {}
        self._texts = _getter(columns, {"text"})
        self._objects = tuple(i for i, (_, sql) in enumerate(columns) if sql == "jsonb")
        self._integers = _getter(columns, {"bigint"})
        self._instants = _getter(columns, {"timestamp with time zone"})

    def __call__(self, values: Sequence[Any], notes: list[str]) -> Sequence[Any]:
        """The values (the same sequence if nothing needed cleaning); ``notes`` says what
        was cleaned."""
        if self._clean(values):
            return values
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

    def _clean(self, values: Sequence[Any]) -> bool:
        """Whether every value is of its column's class and safe as it is: the classes of the
        values (and of the values of a ``jsonb`` object) as one signature, looked up rather
        than checked one by one; the text as one string; integers and instants by range."""
        objects = [values[i].values() for i in self._objects if values[i].__class__ is dict]
        signature = tuple(map(type, values))
        for items in objects:
            signature += tuple(map(type, items))
        known = self._signatures.get(signature)
        if known is None:
            known = self._learn(signature)
        if not known:
            return False
        joined = "".join(filter(None, self._texts(values)))
        for items in objects:
            joined += "".join(map(str, filter(None, items)))
        # Over the limit in total: the column-by-column checks tell whether one is.
        if len(joined) > MAX_TEXT or not joined.isprintable():
            return False
        numbers = list(filter(None, self._integers(values)))  # nulls (and zeros) need no check
        if numbers and (min(numbers) < _MIN_BIGINT or max(numbers) > _MAX_BIGINT):
            return False
        return None not in map(_TZINFO, filter(None, self._instants(values)))

    def _learn(self, signature: tuple[type, ...]) -> bool:
        """Whether rows of this signature have the columns' classes (and, in ``jsonb``
        objects, only text, booleans and nulls)."""
        width = len(self._classes)
        known = (
            len(signature) >= width
            and all(cls in ok for cls, ok in zip(signature, self._classes, strict=False))
            and _OBJECT_ITEM_CLASSES.issuperset(signature[width:])
            and (len(signature) == width or bool(self._objects))
        )
        if len(self._signatures) >= _MAX_SIGNATURES:
            self._signatures.clear()
        self._signatures[signature] = known
        return known


def _getter(
    columns: list[tuple[str, str]], sql_types: set[str]
) -> Callable[[Any], tuple[Any, ...]]:
    """What takes the values of the columns of these types out of a row, as a tuple."""
    indexes = [i for i, (_, sql) in enumerate(columns) if sql in sql_types]
    if not indexes:
        return lambda _: ()
    return itemgetter(*indexes, indexes[0])  # two or more: always a tuple


_OBJECT_ITEM_CLASSES = frozenset({str, bool, type(None)})
_TZINFO = attrgetter("tzinfo")
_MIN_BIGINT = -(2**63)
_MAX_BIGINT = 2**63 - 1
_MAX_SIGNATURES = 256
"""How many row signatures (the classes of a row's values) a ``RowCheck`` remembers."""


def clean_text(value: Any, name: str, notes: list[str]) -> Any:
    """``value`` (text or ``None``) in its safe form, with a note if it needed one."""
    return None if value is None else _text(value, name, notes)


class EventScreen:
    """Tells whether a decoded event is certainly projectable as it is: every field its class
    declares is present with a value of the declared class, instants have a time zone, and all
    its text (the actor's included) is safe and, put together, at most ``MAX_TEXT`` long.

    Views build the rows of such an event without checking them (the usual case, and the
    fast one); any other event takes the checked path. Verdicts on the classes are kept by
    signature (the event class, its field names and their values' classes)."""

    def __init__(self) -> None:
        self._verdicts: dict[tuple[Any, ...], _Getters | None] = {}

    def __call__(self, event: object) -> bool:
        fields = event.__dict__
        signature = (event.__class__, *fields, *map(type, fields.values()))
        getters = self._verdicts.get(signature, _UNSEEN)
        if getters is _UNSEEN:
            getters = self._learn(event, signature)
        if getters is None:
            return False
        texts, instants, actor = getters
        joined = "".join(texts(fields))
        if actor is not None:
            who = actor(fields)
            if who.__class__ is not Actor or who.type.__class__ is not str:
                return False
            if who.id.__class__ is not str:
                return False
            joined += who.type + who.id
        if len(joined) > MAX_TEXT or not joined.isprintable():
            return False
        return None not in map(_TZINFO, instants(fields))

    def _learn(self, event: object, signature: tuple[Any, ...]) -> _Getters | None:
        fields = event.__dict__
        verdict: _Getters | None = None
        try:
            hints = typing.get_type_hints(type(event))
        except Exception:  # noqa: BLE001 - an event class we cannot read: the checked path
            hints = None
        if hints is not None and all(
            name in fields and type(fields[name]) in _allowed(hint)
            for name, hint in hints.items()
            if typing.get_origin(hint) is not typing.ClassVar
        ):
            texts = [n for n in hints if n in fields and type(fields[n]) is str]
            instants = [n for n in hints if n in fields and type(fields[n]) is datetime]
            verdict = _Getters(
                _tuple_getter(texts),
                _tuple_getter(instants),
                itemgetter("actor") if "actor" in hints else None,
            )
        if len(self._verdicts) >= _MAX_SIGNATURES:
            self._verdicts.clear()
        self._verdicts[signature] = verdict
        return verdict


class _Getters(NamedTuple):
    """What takes an event's text, its instants and its actor out of its fields."""

    texts: Callable[[Any], tuple[Any, ...]]
    instants: Callable[[Any], tuple[Any, ...]]
    actor: Callable[[Any], Any] | None


_UNSEEN: Any = object()


def _allowed(hint: Any) -> frozenset[type]:
    """The classes a value annotated ``hint`` may have on the fast path (exactly these)."""
    if isinstance(hint, typing.TypeVar):
        return frozenset({UUID})  # the originator id: read from the events table's column
    args = typing.get_args(hint)
    if args:
        return frozenset(a if a is not None else type(None) for a in args if isinstance(a, type))
    return frozenset({hint}) if isinstance(hint, type) else frozenset()


def _tuple_getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda _: ()
    return itemgetter(*names, names[0])  # always a tuple; the first twice changes no verdict
