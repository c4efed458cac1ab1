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


class ChainBrokenError(ValueError):
    """Raised when a stream's events do not form an unbroken hash chain."""


def _canonical_value(value: Any) -> Any:
    if value is None or (isinstance(value, bool | int | str) and not isinstance(value, Enum)):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            msg = "event datetimes must be timezone-aware"
            raise ValueError(msg)
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical_value(getattr(value, f.name)) for f in fields(value)}
    msg = f"no canonical encoding for {type(value).__name__}"
    raise TypeError(msg)


def canonical_encoding(event: object) -> bytes:
    """The bytes that are hashed: sorted-key compact JSON of the event's type and attributes."""
    body = {name: _canonical_value(value) for name, value in vars(event).items()}
    body["__type__"] = type(event).__qualname__
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def event_hash(event: object) -> str:
    """SHA-256 (hex) of the event's canonical encoding."""
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
