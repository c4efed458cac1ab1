"""A signed checkpoint of the event log: its length and Merkle root at an instant.

The file is a small JSON object; every field but ``signature`` is covered by the signature,
through the text ``signed_message`` builds (one field a line, so that it can be rebuilt by hand
and checked with any Ed25519 tool; docs/verifying-checkpoints.md)::

    ledger-checkpoint/1
    <log_size>
    <root_hash, lowercase hex>
    <time, RFC 3339 UTC with Z>

Signing and checking a signature are I/O-free but need a key: they live in
``ledger.adapters.signing``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

FORMAT = "ledger-checkpoint/1"
HASH_DESCRIPTION = (
    "RFC 6962 Merkle tree hash (SHA-256) over the events in log order; leaf data: "
    "originator id (16 bytes), version (8), topic length (4), state length (4), topic, state"
)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


class InvalidCheckpoint(ValueError):
    """Raised when a checkpoint file is not a well-formed ledger checkpoint."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a checkpoint states (``log_size`` events whose tree hash is ``root_hash``), when,
    and who says so (``public_key``: raw Ed25519, 32 bytes; ``signature``: 64 bytes)."""

    log_size: int
    root_hash: bytes
    time: str
    public_key: bytes
    signature: bytes

    def signed_message(self) -> bytes:
        return signed_message(self.log_size, self.root_hash, self.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "log_size": self.log_size,
            "root_hash": self.root_hash.hex(),
            "time": self.time,
            "hash": HASH_DESCRIPTION,
            "public_key": base64.b64encode(self.public_key).decode("ascii"),
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"


def format_time(at: datetime) -> str:
    """An instant as a checkpoint writes it (UTC, microseconds, ``Z``)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def signed_message(log_size: int, root_hash: bytes, time: str) -> bytes:
    """The exact bytes a checkpoint's signature is over."""
    return f"{FORMAT}\n{log_size}\n{root_hash.hex()}\n{time}\n".encode("ascii")


def _base64(body: dict[str, Any], name: str, size: int) -> bytes:
    value = body.get(name)
    try:
        decoded = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except binascii.Error:
        decoded = b""
    if len(decoded) != size:
        msg = f"{name} is not {size} bytes in base64"
        raise InvalidCheckpoint(msg)
    return decoded


def parse_checkpoint(text: str) -> Checkpoint:
    """A checkpoint from its JSON text; ``InvalidCheckpoint`` names the first bad field."""
    try:
        body = json.loads(text)
    except ValueError:
        msg = "not JSON"
        raise InvalidCheckpoint(msg) from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        msg = f"not a {FORMAT} checkpoint"
        raise InvalidCheckpoint(msg)
    size = body.get("log_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        msg = "log_size is not a non-negative integer"
        raise InvalidCheckpoint(msg)
    root = body.get("root_hash")
    if not isinstance(root, str) or not _HEX64.fullmatch(root):
        msg = "root_hash is not 64 lowercase hex digits"
        raise InvalidCheckpoint(msg)
    time = body.get("time")
    if not isinstance(time, str) or not _TIME.fullmatch(time):
        msg = "time is not an RFC 3339 UTC instant ending in Z"
        raise InvalidCheckpoint(msg)
    return Checkpoint(
        log_size=size,
        root_hash=bytes.fromhex(root),
        time=time,
        public_key=_base64(body, "public_key", 32),
        signature=_base64(body, "signature", 64),
    )
