"""The ledger's signing key (an Ed25519 key in a file outside the database) and checkpoint
signatures.

The key file holds the private key as PKCS #8 PEM. It is created on first use with mode 0600
(never readable by another user), atomically: a second process starting at the same instant
finds the first one's key rather than writing its own.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.config import Settings
from ledger.domain.checkpoint import Checkpoint, format_time, signed_message

KEY_FILE_NAME = "signing.key"


def key_path(settings: Settings) -> Path:
    """``LEDGER_SIGNING_KEY_FILE``, or ``<LEDGER_DATA_DIR>/signing.key``."""
    if settings.signing_key_file is not None:
        return settings.signing_key_file.expanduser()
    return settings.data_dir.expanduser() / KEY_FILE_NAME


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The key in ``path``; a new one written there (mode 0600) if there is none."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with contextlib.suppress(FileExistsError):  # another process made one first: use it
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        msg = f"{path} does not hold an Ed25519 private key"
        raise ValueError(msg)
    return loaded


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign_checkpoint(
    key: Ed25519PrivateKey, *, log_size: int, root_hash: bytes, at: datetime
) -> Checkpoint:
    """A checkpoint of ``log_size`` events with tree hash ``root_hash``, signed by ``key``."""
    time = format_time(at)
    signature = key.sign(signed_message(log_size, root_hash, time))
    return Checkpoint(log_size, root_hash, time, public_bytes(key), signature)


def signature_holds(checkpoint: Checkpoint, trusted: bytes | None = None) -> bool:
    """Whether the checkpoint's signature is valid for its own public key, and that key is
    ``trusted`` (the raw public key of the ledger's signing key) when one is given."""
    if trusted is not None and checkpoint.public_key != trusted:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(checkpoint.public_key).verify(
            checkpoint.signature, checkpoint.signed_message()
        )
    except (InvalidSignature, ValueError):
        return False
    return True
