"""Token text: ``<prefix><30 random base62 characters><6-character base62 CRC-32 checksum>``.

30 characters from a 62-letter alphabet carry 178 bits of randomness (``secrets``); the checksum
lets a mistyped or made-up token be refused without touching the store. The store keeps only the
SHA-256 of the whole text and its first 12 characters for display.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import zlib
from dataclasses import dataclass

from ledger.domain.model import TokenKind

ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
RANDOM_LENGTH = 30
CHECKSUM_LENGTH = 6
TOKEN_LENGTH = 4 + RANDOM_LENGTH + CHECKSUM_LENGTH
DISPLAY_PREFIX_LENGTH = 12

_KINDS_BY_PREFIX = {kind.prefix: kind for kind in TokenKind}
_SHAPE = re.compile(
    rf"(mul_|mdt_|mit_)([0-9A-Za-z]{{{RANDOM_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly generated token: the raw text (shown once) and what the store may keep."""

    raw: str
    token_hash: str
    display_prefix: str


def _checksum(text: str) -> str:
    value = zlib.crc32(text.encode("ascii"))
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def hash_token(raw: str) -> str:
    """SHA-256 (hex) of the whole token text: the only form in which a token is stored."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


_UNBIASED_BELOW = 248  # 4 * 62: a random byte below this, taken mod 62, is exactly uniform


def _random_body() -> str:
    # Rejection sampling over random bytes: uniform characters, one system call (almost always).
    chars: list[str] = []
    while len(chars) < RANDOM_LENGTH:
        chars += [ALPHABET[b % 62] for b in secrets.token_bytes(40) if b < _UNBIASED_BELOW]
    return "".join(chars[:RANDOM_LENGTH])


def issue(kind: TokenKind) -> IssuedToken:
    """Generate a new random token of ``kind``."""
    head = kind.prefix + _random_body()
    raw = head + _checksum(head)
    return IssuedToken(
        raw=raw, token_hash=hash_token(raw), display_prefix=raw[:DISPLAY_PREFIX_LENGTH]
    )


def parse_kind(raw: str) -> TokenKind | None:
    """The kind of a well-formed token with a valid checksum; ``None`` for anything else."""
    match = _SHAPE.fullmatch(raw)
    if match is None:
        return None
    prefix, body, checksum = match.groups()
    if _checksum(prefix + body) != checksum:
        return None
    return _KINDS_BY_PREFIX[prefix]
