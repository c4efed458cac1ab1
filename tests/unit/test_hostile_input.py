"""Hostile input at the edge: control characters, numbers too long to convert, bodies that are
not what the schema says. Each is refused with the contract's code and a ``detail`` sentence."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from ledger.application import validation
from ledger.domain.errors import (
    DaemonIdRequired,
    InvalidExpiresInDays,
    InvalidQueryParameter,
    InvalidRequestBody,
    InvalidTokenId,
    NameRequired,
    ServiceUnavailable,
)
from ledger.entrypoints.fastapi import error_response
from ledger.entrypoints.http.middleware import RequestMiddleware
from ledger.entrypoints.http.models import (
    TEXT_PATTERN,
    CreateTokenRequest,
    CreateWorkspaceRequest,
    ExchangeRequest,
)

CONTROL = [chr(c) for c in range(0x20)] + ["\x7f"]


@pytest.mark.parametrize("char", CONTROL)
def test_a_name_with_a_control_character_is_refused_like_a_blank_one(char: str) -> None:
    for value in (f"a{char}b", f"{char}laptop", f"laptop{char}"):
        with pytest.raises(NameRequired, match="control characters"):
            validation.name(value)


@pytest.mark.parametrize("char", CONTROL)
def test_a_daemon_id_with_a_control_character_is_refused_like_a_blank_one(char: str) -> None:
    with pytest.raises(DaemonIdRequired, match="control characters"):
        validation.daemon_id(f"box{char}1")


def test_an_email_with_a_control_character_is_refused() -> None:
    for value in ("a\x00@b.example", "a@b.example\x7f", "a@b\x1b[31m.example"):
        with pytest.raises(InvalidRequestBody, match="control characters"):
            validation.email(value)


def test_the_length_limit_counts_the_text_as_given() -> None:
    assert validation.name(" " + "x" * 99) == "x" * 99
    with pytest.raises(NameRequired, match="at most 100"):
        validation.name(" " + "x" * 100)
    with pytest.raises(DaemonIdRequired, match="at most 128"):
        validation.daemon_id("d" * 128 + " ")


def test_text_outside_the_control_range_is_taken() -> None:
    assert validation.name("café ☕ \u0085x") == "café ☕ \u0085x"
    assert validation.daemon_id("box-\u00a01") == "box-\u00a01"


@given(st.text(max_size=110) | st.text(alphabet=" \u00a0\u3000x", min_size=95, max_size=105))
def test_the_published_schema_agrees_with_the_ledgers_rule(value: str) -> None:
    pattern_says = re.fullmatch(TEXT_PATTERN, value) is not None and len(value) <= 100
    try:
        validation.name(value)
    except NameRequired:
        ledger_says = False
    else:
        ledger_says = True
    assert pattern_says == ledger_says, repr(value)


@pytest.mark.parametrize(
    "value",
    [
        "9" * 5000,
        "1" * 4301,
        "0" * 10_000,
        "1001",
        "0",
        "-1",
        "+5",
        " 5",
        "5 ",
        "١٢",
        "²",
        "",
        "1e3",
    ],
)
def test_a_bounded_number_refuses_anything_outside_its_range_without_converting_it(
    value: str,
) -> None:
    with pytest.raises(InvalidQueryParameter, match=r"limit must be a whole number in 1\.\.1000"):
        validation.bounded_int(value, "limit", 1, 1000, InvalidQueryParameter)


def test_a_bounded_number_in_range_is_taken() -> None:
    assert validation.bounded_int("1", "limit", 1, 1000, InvalidQueryParameter) == 1
    assert validation.bounded_int("1000", "limit", 1, 1000, InvalidQueryParameter) == 1000


def test_a_uuid_of_any_length_is_refused_cheaply() -> None:
    for value in ("a" * 100_000, "\x00" * 36, "0" * 36):
        with pytest.raises(InvalidTokenId, match="canonical"):
            validation.uuid(value, InvalidTokenId)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b'{"name": "a\\u0000b"}', NameRequired),
        (b'{"name": "\\u001b[31mred"}', NameRequired),
        (b'{"name": "x", "expires_in_days": ' + b"9" * 5000 + b"}", InvalidRequestBody),
        (b'{"name": "x", "expires_in_days": 1e400}', InvalidExpiresInDays),
        (b'{"name": "\\ud800"}', InvalidRequestBody),
        (b'{"name": 5}', InvalidRequestBody),
    ],
)
def test_a_hostile_token_body_is_refused_with_the_contracts_code(
    raw: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        CreateTokenRequest.parse(raw)


def test_a_daemon_id_with_a_nul_is_refused_at_parse() -> None:
    with pytest.raises(DaemonIdRequired):
        ExchangeRequest.parse(b'{"token": "mit_x", "daemon_id": "box\\u0000"}')


def test_an_integral_number_of_days_may_be_written_as_a_float() -> None:
    assert CreateTokenRequest.parse(b'{"name": "t", "expires_in_days": 7.0}').expires_in_days == 7


def test_the_published_request_schemas_require_what_the_ledger_needs() -> None:
    workspace = CreateWorkspaceRequest.model_json_schema()
    assert workspace["required"] == ["name"]
    assert workspace["properties"]["name"]["type"] == "string"
    assert workspace["properties"]["name"]["maxLength"] == 100
    exchange = ExchangeRequest.model_json_schema()
    assert exchange["required"] == ["daemon_id", "token"]
    assert exchange["properties"]["daemon_id"]["maxLength"] == 128


def _body(error: Exception) -> dict[str, Any]:
    response = error_response(error)  # type: ignore[arg-type]
    body: dict[str, Any] = json.loads(bytes(response.body))
    return body


def test_a_client_error_carries_its_detail_and_a_server_error_does_not() -> None:
    assert _body(NameRequired("name must not be blank")) == {
        "error": "name is required",
        "detail": "name must not be blank",
    }
    assert _body(NameRequired()) == {
        "error": "name is required",
        "detail": "name must be 1..100 characters, not blank, no control characters",
    }
    assert _body(ServiceUnavailable("OperationalError")) == {"error": "service unavailable"}


@pytest.mark.parametrize("length", ["9" * 5000, "65537", "²"])
def test_a_content_length_of_any_size_is_read_without_converting_a_huge_number(
    length: str,
) -> None:
    middleware = RequestMiddleware(app=None, max_body_bytes=65536)  # type: ignore[arg-type]
    expected = length != "²"
    assert middleware._too_large(Headers({"content-length": length})) is expected
