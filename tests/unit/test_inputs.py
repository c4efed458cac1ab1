"""Input validation, configuration and the injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from freezegun import freeze_time
from pydantic import ValidationError

from ledger.application import validation
from ledger.config import Settings
from ledger.domain import Role
from ledger.domain.clock import ManualClock, SystemClock, to_nanos
from ledger.domain.errors import (
    DaemonIdRequired,
    InvalidExpiresInDays,
    InvalidRequestBody,
    InvalidRole,
    InvalidTokenId,
    NameRequired,
)


@pytest.mark.parametrize("value", [None, 1, 90, 3650])
def test_valid_expires_in_days(value: int | None) -> None:
    assert validation.expires_in_days(value) == value


@pytest.mark.parametrize("value", [0, -1, 3651, True, False, "5", 5.0, [5]])
def test_invalid_expires_in_days(value: Any) -> None:
    with pytest.raises(InvalidExpiresInDays):
        validation.expires_in_days(value)


@pytest.mark.parametrize("value", ["", "   ", "\t\n", "x" * 101, None, 5])
def test_blank_or_overlong_names_are_refused(value: Any) -> None:
    with pytest.raises(NameRequired):
        validation.name(value)


def test_names_are_trimmed_and_may_be_100_characters() -> None:
    assert validation.name("  laptop ") == "laptop"
    assert validation.name("x" * 100) == "x" * 100


@pytest.mark.parametrize("value", ["", "   ", "x" * 129, None, 3])
def test_blank_or_overlong_daemon_ids_are_refused(value: Any) -> None:
    with pytest.raises(DaemonIdRequired):
        validation.daemon_id(value)


def test_daemon_ids_are_trimmed() -> None:
    assert validation.daemon_id(" box-1 ") == "box-1"
    assert validation.daemon_id("d" * 128) == "d" * 128


@pytest.mark.parametrize("value", ["owner", "admin", "member"])
def test_roles(value: str) -> None:
    assert validation.role(value) is Role(value)


@pytest.mark.parametrize("value", ["Owner", "root", "", None, 1])
def test_invalid_roles(value: Any) -> None:
    with pytest.raises(InvalidRole):
        validation.role(value)


def test_uuids_must_be_canonical_text() -> None:
    value = uuid4()
    assert validation.uuid(str(value), InvalidTokenId) == value
    assert validation.uuid(str(value).upper(), InvalidTokenId) == value
    assert validation.uuid(value, InvalidTokenId) == value
    for bad in ["", "not-a-uuid", value.hex, "{" + str(value) + "}", str(value) + "0"]:
        with pytest.raises(InvalidTokenId):
            validation.uuid(bad, InvalidTokenId)


def test_emails() -> None:
    assert validation.email(None) is None
    assert validation.email(" a@b.example ") == "a@b.example"
    for bad in ["", "no-at", "a@", "@b", "a b@c"]:
        with pytest.raises(InvalidRequestBody):
            validation.email(bad)


def test_settings_read_ledger_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql://u:p@db:5432/ledger")
    monkeypatch.setenv("LEDGER_MAX_BATCH", "64")
    settings = Settings()
    assert settings.database_url == "postgresql://u:p@db:5432/ledger"
    assert settings.max_batch == 64


def test_settings_refuse_a_non_postgres_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", "mysql://db/ledger")
    with pytest.raises(ValidationError):
        Settings()


def test_empty_database_url_means_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", "")
    assert Settings().database_url is None


def test_system_clock_follows_frozen_time() -> None:
    with freeze_time("2026-02-03T04:05:06Z"):
        assert SystemClock().now() == datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
        assert SystemClock().nanos() == to_nanos(datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC))


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock.advance(timedelta(minutes=15)) == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    assert clock.now() == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    with pytest.raises(ValueError, match="aware"):
        ManualClock(datetime(2026, 1, 1))  # noqa: DTZ001


def test_uuid_type_is_preserved() -> None:
    assert isinstance(validation.uuid(str(uuid4()), InvalidTokenId), UUID)
