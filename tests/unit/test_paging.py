"""Opaque cursors of the token list, and the revoked event's version 1 upcaster."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from ledger.application import paging
from ledger.domain import Credential
from ledger.domain.errors import InvalidQueryParameter


def test_a_cursor_round_trips_its_sort_key() -> None:
    key = (datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC), uuid4())
    cursor = paging.encode_cursor(*key)
    assert cursor.isascii() and "=" not in cursor
    assert paging.decode_cursor(cursor) == key
    assert paging.decode_cursor(None) is None
    assert paging.decode_cursor("") is None


@pytest.mark.parametrize(
    "cursor",
    [
        "abc",
        "%%%",
        "x" * 101,
        "é",
        paging.encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), UUID(int=1)) + "A",
        "MTIzNA",  # "1234": no id
    ],
)
def test_a_cursor_the_service_did_not_make_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidQueryParameter):
        paging.decode_cursor(cursor)


def test_limits_and_day_counts_are_bounded() -> None:
    assert paging.check_limit(1) == 1
    assert paging.check_limit(1000) == 1000
    assert paging.check_days(0) == 0
    assert paging.check_days(3650) == 3650
    for bad_limit in (0, 1001, True):
        with pytest.raises(InvalidQueryParameter):
            paging.check_limit(bad_limit)
    for bad_days in (-1, 3651, False):
        with pytest.raises(InvalidQueryParameter):
            paging.check_days(bad_days)


def test_a_version_1_revoked_event_reads_as_one_without_a_note() -> None:
    state = {"reason": "user_request"}
    Credential.Revoked.upcast_v1_v2(state)
    assert state == {"reason": "user_request", "note": None}
    assert Credential.Revoked.class_version == 2
