"""The hash chain that links each event of a stream to the one before it.

Every ledger event carries ``prev_hash``: the SHA-256 of the canonical encoding of the previous
event of the same stream (``GENESIS_HASH`` for the first). The encoding is specified in
docs/adr/0004-event-hash-chain.md; changing it breaks every stored chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from uuid import UUID

GENESIS_HASH = "0" * 64
STORED_HASH = "_stored_hash"
"""The attribute in which the mapper gives an upcast event the hash of its stored state; the
canonical encoding leaves out every attribute whose name starts with an underscore."""


class ChainBrokenError(ValueError):
    """Raised when a stream's events do not form an unbroken hash chain."""


def _datetime(value: datetime) -> str:
    if value.tzinfo is None:
        msg = "event datetimes must be timezone-aware"
        raise ValueError(msg)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _convert(value: Any) -> Any:
    """The canonical form of a value whose type is not in ``_FAST`` yet (and remember how)."""
    kind = type(value)
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, bool | int | str):
        _FAST[kind] = _same
        return value
    if isinstance(value, UUID):
        _FAST[kind] = str
        return str(value)
    if isinstance(value, datetime):
        _FAST[kind] = _datetime
        return _datetime(value)
    if is_dataclass(value) and not isinstance(value, type):
        _FAST[kind] = _dataclass
        return _dataclass(value)
    msg = f"no canonical encoding for {type(value).__name__}"
    raise TypeError(msg)


def _same(value: Any) -> Any:
    return value


def _dataclass(value: Any) -> dict[str, Any]:
    return {f.name: _canonical_value(getattr(value, f.name)) for f in fields(value)}


_FAST: dict[type, Any] = {}
"""Converters by exact type, learned by ``_convert`` (an enum is never learned: it takes the
first branch whatever its value type, as a ``str``-valued enum must become its value)."""


def _canonical_value(value: Any) -> Any:
    convert = _FAST.get(type(value))
    return convert(value) if convert is not None else _convert(value)


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""What ``json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` builds
on every call; built once."""


def canonical_encoding(event: object) -> bytes:
    """The bytes that are hashed: sorted-key compact JSON of the event's type and attributes."""
    body = {
        name: _canonical_value(value)
        for name, value in vars(event).items()
        if not name.startswith("_")
    }
    body["__type__"] = type(event).__qualname__
    return _ENCODER.encode(body).encode("utf-8")


def event_hash(event: object) -> str:
    """SHA-256 (hex) of the event's canonical encoding; for an upcast event, the hash of its
    stored state that the mapper recorded (what its successor links to)."""
    stored = vars(event).get(STORED_HASH)
    if isinstance(stored, str):
        return stored
    return hashlib.sha256(canonical_encoding(event)).hexdigest()


def verify_chain(events: Iterable[object]) -> str:
    """Check that each event names its predecessor's hash; return the last hash.

    Detects an edited event (its successor's ``prev_hash`` no longer matches), a deleted event
    (a version gap or a mismatched link) and a re-ordered stream.
    """
    expected = GENESIS_HASH
    expected_version = 1
    for event in events:
        version = getattr(event, "originator_version", None)
        if version != expected_version:
            msg = f"expected version {expected_version}, found {version}"
            raise ChainBrokenError(msg)
        if getattr(event, "prev_hash", None) != expected:
            msg = f"event version {version} does not link to its predecessor"
            raise ChainBrokenError(msg)
        expected = event_hash(event)
        expected_version += 1
    return expected


def _stored_default(value: Any) -> Any:
    """``_canonical_value`` for what the C encoder does not handle itself (``None``, ``bool``,
    ``int`` and ``str``, enums derived from them included, it encodes as ``_canonical_value``
    would)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return _datetime(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    msg = f"no canonical encoding for {type(value).__name__}"
    raise TypeError(msg)


_STORED_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_stored_default
)
"""The canonical encoding, with the per-value work in the C encoder (verify hashes every
stored event)."""


def stored_event_hash(
    topic: str, originator_id: object, originator_version: int, state: dict[str, Any]
) -> str:
    """The hash of an event as it was stored: its state as decoded, before any upcaster.

    For an event that was not upcast this is ``event_hash`` of the decoded event (the stored
    state is its attributes but the id and version, plus ``class_version`` when above 1, which
    the domain never hashed); for an upcast one it is the hash its successor linked to when it
    was written. The type is the stored topic's qualified name (docs/adr/0019).
    """
    body = {
        **state,
        "originator_id": originator_id,
        "originator_version": originator_version,
        "__type__": topic.partition(":")[2],
    }
    body.pop("class_version", None)
    return hashlib.sha256(_STORED_ENCODER.encode(body).encode("utf-8")).hexdigest()
