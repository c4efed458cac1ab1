"""What a read from a replica must see (``WrittenAt``), the unknown-token budget, announcements
with their WAL position, and the replica settings (ADR 0023)."""

from __future__ import annotations

from uuid import uuid4

import pytest
from pydantic import ValidationError

from ledger.adapters.announcer import parse_payload, payloads
from ledger.adapters.replicas import UNKNOWN_LSN, TokenBucket, WrittenAt, format_lsn, parse_lsn
from ledger.config import Settings


def test_lsn_text_round_trips() -> None:
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert format_lsn(parse_lsn("0/3020AF8")) == "0/3020AF8"
    assert parse_lsn("0/10") < parse_lsn("1/0")


def test_a_noted_change_is_required_of_reads_of_that_credential_only() -> None:
    written = WrittenAt()
    changed, other = uuid4(), uuid4()
    written.note([changed], 500)
    assert written.required(changed) == 500
    assert written.required(other) == 0
    assert written.known(changed) and not written.known(other)
    assert written.high == 500


def test_a_requirement_only_grows() -> None:
    written = WrittenAt()
    changed = uuid4()
    written.note([changed], 500)
    written.note([changed], 300)
    assert written.required(changed) == 500


def test_changes_not_heard_of_are_required_of_every_read() -> None:
    written = WrittenAt()
    written.note_everything(700)
    assert written.required(uuid4()) == 700


def test_a_full_map_keeps_what_it_drops_as_the_floor() -> None:
    written = WrittenAt(max_entries=2)
    first, second, third = uuid4(), uuid4(), uuid4()
    written.note([first], 100)
    written.note([second], 200)
    written.note([third], 300)
    assert not written.known(first)
    assert written.required(first) == 100  # never less than its change
    assert written.required(third) == 300


def test_what_every_usable_replica_replayed_is_forgotten_but_still_required() -> None:
    written = WrittenAt()
    old, new = uuid4(), uuid4()
    written.note([old], 100)
    written.note([new], 900)
    written.settle(500)
    assert not written.known(old) and written.known(new)
    assert written.required(uuid4()) == 100  # a replica back from behind must pass it
    assert written.required(new) == 900


def test_a_change_at_an_unknown_position_sends_its_reads_to_the_primary() -> None:
    written = WrittenAt(max_entries=1)
    lost, later = uuid4(), uuid4()
    written.note([lost], 400)
    written.note([lost], UNKNOWN_LSN)
    assert written.required(lost) == UNKNOWN_LSN
    assert written.high == 400  # not a position any replica could reach
    written.note([later], 600)  # pushed out: the floor is what was known, not "never"
    assert written.required(lost) == 600


def test_the_budget_allows_its_rate_and_refills_with_time() -> None:
    now = [0.0]
    bucket = TokenBucket(3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(5)] == [True, True, True, False, False]
    now[0] += 1 / 3
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 100  # never more than one second's worth at once
    assert sum(bucket.take() for _ in range(10)) == 3


def test_a_zero_budget_allows_nothing() -> None:
    bucket = TokenBucket(0)
    assert not any(bucket.take() for _ in range(10))


def test_an_announcement_carries_its_origin_ids_and_position() -> None:
    ids = [uuid4(), uuid4()]
    [payload] = payloads("origin", ids)
    announcement = parse_payload(payload + "@16/B374D848")
    assert announcement.origin == "origin"
    assert announcement.credential_ids == ids
    assert announcement.lsn == "16/B374D848"


def test_an_announcement_without_position_is_still_understood() -> None:
    credential_id = uuid4()
    announcement = parse_payload(f"origin:{credential_id.hex}")
    assert announcement.credential_ids == [credential_id]
    assert announcement.lsn is None


@pytest.mark.parametrize("payload", ["no colon", "origin:@nolsn"])
def test_a_malformed_announcement_is_refused(payload: str) -> None:
    with pytest.raises(ValueError, match="announcement"):
        parse_payload(payload)


def test_read_urls_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_READ_DATABASE_URLS", "postgresql://a/ledger, postgresql://b/ledger,")
    assert Settings().read_database_urls == ("postgresql://a/ledger", "postgresql://b/ledger")
    monkeypatch.setenv("LEDGER_READ_DATABASE_URLS", "")
    assert Settings().read_database_urls == ()


def test_a_read_url_that_is_not_postgresql_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_READ_DATABASE_URLS", "mysql://a/ledger")
    with pytest.raises(ValidationError, match="LEDGER_READ_DATABASE_URLS"):
        Settings()
