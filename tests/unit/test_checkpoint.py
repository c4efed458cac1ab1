"""Checkpoints: the signed text, the file format, and what a changed byte does to a signature."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.adapters.signing import (
    load_or_create_key,
    public_bytes,
    sign_checkpoint,
    signature_holds,
)
from ledger.domain.checkpoint import InvalidCheckpoint, parse_checkpoint, signed_message

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ROOT = bytes(range(32))


def test_the_signed_message_is_pinned() -> None:
    assert signed_message(7, ROOT, "2026-11-30T12:00:00.000000Z") == (
        b"ledger-checkpoint/1\n7\n" + ROOT.hex().encode() + b"\n2026-11-30T12:00:00.000000Z\n"
    )


def test_a_checkpoint_round_trips_and_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    signed = sign_checkpoint(key, log_size=7, root_hash=ROOT, at=AT)
    parsed = parse_checkpoint(signed.dumps())
    assert parsed == signed
    assert parsed.time == "2026-11-30T12:00:00.000000Z"
    assert signature_holds(parsed, public_bytes(key))
    assert len(signed.dumps()) < 600


@pytest.mark.parametrize(
    ("field", "value"),
    [("log_size", 8), ("root_hash", "00" * 32), ("time", "2026-11-30T12:00:01.000000Z")],
)
def test_any_changed_field_breaks_the_signature(field: str, value: object) -> None:
    body = sign_checkpoint(Ed25519PrivateKey.generate(), log_size=7, root_hash=ROOT, at=AT)
    changed = parse_checkpoint(json.dumps({**body.to_json(), field: value}))
    assert not signature_holds(changed)


def test_another_key_is_not_trusted() -> None:
    signed = sign_checkpoint(Ed25519PrivateKey.generate(), log_size=1, root_hash=ROOT, at=AT)
    assert signature_holds(signed)
    assert not signature_holds(signed, public_bytes(Ed25519PrivateKey.generate()))


@pytest.mark.parametrize(
    "text",
    [
        "nope",
        "[]",
        '{"format": "other"}',
        '{"format": "ledger-checkpoint/1", "log_size": -1}',
        '{"format": "ledger-checkpoint/1", "log_size": 1, "root_hash": "AB"}',
    ],
)
def test_a_malformed_checkpoint_is_refused(text: str) -> None:
    with pytest.raises(InvalidCheckpoint):
        parse_checkpoint(text)


def test_the_key_file_is_created_once_with_mode_0600(tmp_path: object) -> None:
    from pathlib import Path  # noqa: PLC0415

    path = Path(str(tmp_path)) / "keys" / "signing.key"
    first = load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert public_bytes(load_or_create_key(path)) == public_bytes(first)
