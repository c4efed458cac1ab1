"""Token text: ``<prefix><30 random base62 characters><6-character base62 CRC-32 checksum>``.

30 characters from a 62-letter alphabet carry 178 bits of randomness (``secrets``); the checksum
lets a mistyped or made-up token be refused without touching the store. The store keeps only the
SHA-256 of the whole text and its first 12 characters for display.
"""

from __future__ import annotations

import hashlib
import hmac
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


_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]
"""Every two-digit base-62 numeral, by value: three look-ups write the six-digit checksum."""
_PAIR = len(_PAIRS)


def _checksum(text: str) -> str:
    """CRC-32 of ``text`` as six base-62 digits, most significant first (2^32 < 62^6)."""
    high, rest = divmod(zlib.crc32(text.encode("ascii")), _PAIR * _PAIR)
    middle, low = divmod(rest, _PAIR)
    return _PAIRS[high] + _PAIRS[middle] + _PAIRS[low]


def hash_token(raw: str) -> str:
    """SHA-256 (hex) of the whole token text: the only form in which a token is stored."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def token_digest(raw: str) -> bytes:
    """SHA-256 (32 bytes) of the whole token text; ``token_digest(raw).hex() == hash_token(raw)``.

    Raises ``UnicodeEncodeError`` for text that is no token (a lone surrogate)."""
    return hashlib.sha256(raw.encode("utf-8")).digest()


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


_BODY_SPACE = 62**RANDOM_LENGTH


def derive(kind: TokenKind, key: bytes, material: bytes) -> IssuedToken:
    """A token of ``kind`` whose body is HMAC-SHA256(``key``, ``material``) in base 62: the same
    key and material always give the same token, and without the key nobody can compute it.

    The 256-bit MAC is reduced modulo 62^30 (about 2^178.6); the bias that leaves is below
    2^-77, far from anything an attacker could use."""
    number = int.from_bytes(hmac.digest(key, material, "sha256"), "big") % _BODY_SPACE
    digits = []
    for _ in range(RANDOM_LENGTH):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    head = kind.prefix + "".join(reversed(digits))
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
