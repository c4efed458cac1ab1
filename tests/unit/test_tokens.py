"""Token text: prefix, ≥160 random bits in [A-Za-z0-9], a checksum, at most 64 characters."""

from __future__ import annotations

import hashlib
import math
import re
import zlib
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import TokenKind
from ledger.domain.tokens import (
    ALPHABET,
    RANDOM_LENGTH,
    TOKEN_LENGTH,
    _checksum,
    hash_token,
    issue,
    parse_kind,
    token_digest,
)


@pytest.mark.parametrize("kind", list(TokenKind))
def test_issued_tokens_have_the_contract_shape(kind: TokenKind) -> None:
    token = issue(kind)
    assert token.raw.startswith(kind.prefix)
    assert len(token.raw) == TOKEN_LENGTH <= 64
    assert re.fullmatch(r"[A-Za-z0-9]+", token.raw[4:])
    assert token.display_prefix == token.raw[:12]
    assert parse_kind(token.raw) is kind


def test_randomness_is_at_least_160_bits() -> None:
    assert RANDOM_LENGTH * math.log2(len(ALPHABET)) >= 160


def test_tokens_do_not_repeat() -> None:
    assert len({issue(TokenKind.DAEMON_TOKEN).raw for _ in range(2000)}) == 2000


def test_the_stored_hash_is_sha256_of_the_whole_text() -> None:
    token = issue(TokenKind.INSTALL_TOKEN)
    assert token.token_hash == hashlib.sha256(token.raw.encode()).hexdigest()
    assert hash_token(token.raw) == token.token_hash


def test_the_digest_is_the_stored_hash_in_bytes() -> None:
    token = issue(TokenKind.DAEMON_TOKEN)
    assert token_digest(token.raw).hex() == token.token_hash


def _checksum_digit_by_digit(text: str) -> str:
    value = zlib.crc32(text.encode("ascii"))
    digits = []
    for _ in range(6):
        value, digit = divmod(value, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


@given(st.text(alphabet=ALPHABET, min_size=34, max_size=34))
def test_the_checksum_is_the_crc32_in_six_base62_digits(text: str) -> None:
    assert _checksum(text) == _checksum_digit_by_digit(text)


def test_checksums_of_tokens_already_issued_do_not_change() -> None:
    assert _checksum("mul_" + "0" * 30) == "1P4vCp"
    assert _checksum("mdt_abcdefghijklmnopqrstuvwxyzABCD") == "3wNfR7"
    assert _checksum("mit_" + "z" * 30) == "1BrtOk"


def test_every_single_character_typo_fails_the_checksum() -> None:
    raw = issue(TokenKind.PERSONAL_ACCESS_TOKEN).raw
    for position in range(4, len(raw)):
        for replacement in "0aZ":
            if raw[position] == replacement:
                continue
            typo = raw[:position] + replacement + raw[position + 1 :]
            assert parse_kind(typo) is None, (position, replacement)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "mul_",
        "Bearer mul_abc",
        "xyz_" + "a" * 36,
        "mul_" + "a" * 35,
        "mul_" + "a" * 37,
        "mul_" + "-" * 36,
        "mul_" + "é" * 36,
    ],
)
def test_malformed_text_is_not_a_token(text: str) -> None:
    assert parse_kind(text) is None


def test_a_token_with_another_prefix_fails_the_checksum() -> None:
    raw = issue(TokenKind.INSTALL_TOKEN).raw
    assert parse_kind("mdt_" + raw[4:]) is None


def test_random_characters_are_uniform_over_the_alphabet() -> None:
    counts = Counter(
        char
        for _ in range(2000)
        for char in issue(TokenKind.DAEMON_TOKEN).raw[4 : 4 + RANDOM_LENGTH]
    )
    expected = 2000 * RANDOM_LENGTH / len(ALPHABET)  # ~968 per character
    assert set(counts) == set(ALPHABET)
    # A mod-62 bias over bytes would give 0-7 about 25% more; sampling noise is ~3%.
    assert all(0.85 * expected < n < 1.15 * expected for n in counts.values()), counts
