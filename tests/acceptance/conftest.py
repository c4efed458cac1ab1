"""Acceptance fixtures: a PostgreSQL server and a ``ledger serve`` process for the session.

The session starts an embedded PostgreSQL, makes a fresh migrated database, and runs
``ledger serve --workers 2`` on it (``LEDGER_DATABASE_URL`` set, free port, ready when
``/readyz`` answers). Tests talk to it over HTTP; users are created by the operator's API (the
CLI's ``ledger users create`` calls the same ``Ledger.create_user``, and one test runs the CLI
itself). Every test makes its own users and workspaces: no test depends on another's state.
When the session ends the service is stopped with SIGTERM (it must exit 0) and its whole log
is searched for every raw token the tests saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.adapters.postgres import embedded_server
from ledger.bootstrap import build_ledger
from ledger.config import Settings
from ledger.domain.clock import ManualClock
from tests.acceptance.service import Api, ServeProcess, TokenLog, served
from tests.support.databases import fresh_database
from tests.support.world import Operator, World, build_world


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The maintenance database of a PostgreSQL server that lives for the session."""
    with embedded_server(tmp_path_factory.mktemp("acceptance-postgres")) as url:
        yield url


@pytest.fixture(scope="session")
def service_database(postgres_url: str) -> str:
    return fresh_database(postgres_url)


@pytest.fixture(scope="session")
def token_log() -> TokenLog:
    return TokenLog()


@pytest.fixture(scope="session")
def service(
    service_database: str, tmp_path_factory: pytest.TempPathFactory, token_log: TokenLog
) -> Iterator[ServeProcess]:
    """``ledger serve --workers 2`` on the session's database. Its exchange throttle is off:
    every test calls from 127.0.0.1, and the tests' deliberate failures must not add up to a
    429 for another test (``test_lists`` runs a throttled service of its own)."""
    process = ServeProcess(
        service_database,
        tmp_path_factory.mktemp("serve") / "serve.log",
        workers=2,
        env={"LEDGER_EXCHANGE_FAILURES_PER_MINUTE": "0"},
    )
    with served(process, token_log):
        yield process


@pytest.fixture
def api(service: ServeProcess, token_log: TokenLog) -> Iterator[Api]:
    client = Api(service.base_url, token_log)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def operator(service_database: str, token_log: TokenLog) -> Iterator[Operator]:
    """What an operator does outside HTTP: create users (as ``ledger users create`` does)."""
    now = ManualClock(datetime.now(UTC))
    ledger = build_ledger(service_database, settings=Settings(pool_size=2), clock=now)
    try:
        yield Operator(ledger, now, token_log)
    finally:
        ledger.close()


@pytest.fixture
def world(api: Api, operator: Operator) -> World:
    return build_world(api, operator)


@pytest.fixture(scope="module")
def shared_world(service: ServeProcess, token_log: TokenLog, operator: Operator) -> World:
    """One world for the calls that leave it as it was for every other caller (they only
    read, or add things nobody else in the module looks at)."""
    api = Api(service.base_url, token_log)
    try:
        return build_world(api, operator)
    finally:
        api.close()


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-logs")
