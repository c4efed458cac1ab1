"""The composition root: what it builds and the narrow surface entry points use."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from ledger.bootstrap import PostgresLedger, build_ledger, open_ledger, rebuild_all
from ledger.config import Settings
from ledger.domain.clock import ManualClock
from ledger.domain.errors import SchemaMissing, ServiceUnavailable
from tests.support.databases import fresh_database
from tests.support.principals import START, new_user


def test_open_ledger_uses_a_migrated_configured_database(server_url: str) -> None:
    url = fresh_database(server_url)
    clock = ManualClock(START)
    with open_ledger(Settings(database_url=url, pool_size=1), clock=clock) as ledger:
        assert isinstance(ledger, PostgresLedger)
        assert ledger.database_url == url
        created = ledger.create_user("ada")
        assert created.expires_at == START + timedelta(days=90)  # the injected clock's
        assert ledger.verify(created.token).user_id == created.user_id


def test_open_ledger_refuses_an_unmigrated_configured_database(server_url: str) -> None:
    url = fresh_database(server_url, migrate=False)
    with pytest.raises(SchemaMissing), open_ledger(Settings(database_url=url)):
        pass


def test_ready_says_unavailable_when_the_schema_is_gone(server_url: str) -> None:
    url = fresh_database(server_url)
    with open_ledger(Settings(database_url=url, pool_size=1)) as ledger:
        ledger.ready()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE ledger_credentials")
        with pytest.raises(ServiceUnavailable):
            ledger.ready()


def test_the_narrow_surface(ledger: PostgresLedger) -> None:
    ledger.ready()
    batches: list[tuple[int, int]] = []
    ledger.observe_writes(lambda commands, conflicts: batches.append((commands, conflicts)))
    try:
        _, token = new_user(ledger)
    finally:
        ledger.observe_writes(None)
    assert batches and all(commands >= 1 for commands, _ in batches)
    before = ledger.cache_stats().hits
    ledger.verify(token)
    assert ledger.cache_stats().hits == before + 1


def test_rebuild_all_projects_every_event(server_url: str) -> None:
    url = fresh_database(server_url)
    ledger = build_ledger(url, Settings(pool_size=1))
    try:
        new_user(ledger)
        events = ledger.projections.status()[0].head  # the newest event's ordinal
    finally:
        ledger.close()
    assert rebuild_all(url) == events
