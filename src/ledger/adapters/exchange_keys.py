"""The exchange keys: secrets outside the database from which daemon tokens are derived (ADR 0020).

The key file holds one key per line, 64 hexadecimal digits (32 random bytes); blank lines and
lines starting with ``#`` are ignored. The first key derives every new daemon token; the others
are only tried when a retry recomputes a token minted under them (rotation: put a new key on the
first line, keep the old one below it for at least the retry window, then delete it). The file is
created with one key, mode 0600, on first use, atomically: a second process starting at the same
instant finds the first one's key rather than writing its own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from ledger.config import Settings

KEY_FILE_NAME = "exchange.key"
KEY_BYTES = 32


def key_path(settings: Settings) -> Path:
    """``LEDGER_EXCHANGE_KEY_FILE``, or ``<LEDGER_DATA_DIR>/exchange.key``."""
    if settings.exchange_key_file is not None:
        return settings.exchange_key_file.expanduser()
    return settings.data_dir.expanduser() / KEY_FILE_NAME


def new_key_line() -> str:
    """A fresh key as the file holds it."""
    return secrets.token_bytes(KEY_BYTES).hex() + "\n"


def parse_keys(text: str, source: str) -> tuple[bytes, ...]:
    """The keys of a key file's ``text``, first one first (``ValueError`` naming ``source`` for
    a line that is no key, or a file without one)."""
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            key = bytes.fromhex(stripped)
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            msg = f"{source}, line {number}: not a key ({2 * KEY_BYTES} hexadecimal digits)"
            raise ValueError(msg)
        keys.append(key)
    if not keys:
        msg = f"{source} holds no exchange key"
        raise ValueError(msg)
    return tuple(keys)


def load_or_create_keys(path: Path) -> tuple[bytes, ...]:
    """The keys in ``path``; a file with one new key written there (mode 0600) if there is
    none."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a temporary name, then linked into place: a process that finds
        # the file finds a key in it.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as file:  # mkstemp: mode 0600
                file.write(new_key_line())
            with contextlib.suppress(FileExistsError):  # another process made one first
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return parse_keys(path.read_text(encoding="ascii"), str(path))
