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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.adapters.postgres import embedded_server
from ledger.application import Ledger
from ledger.config import Settings
from ledger.domain.clock import ManualClock
from tests.acceptance.service import Api, ServeProcess, TokenLog
from tests.integration.conftest import fresh_database


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
    """``ledger serve --workers 2`` on the session's database."""
    process = ServeProcess(
        service_database, tmp_path_factory.mktemp("serve") / "serve.log", workers=2
    )
    try:
        process.wait_ready()
        yield process
    finally:
        status = process.stop()
    log = process.log_text()
    assert status == 0, log[-4000:]
    assert "Traceback" not in log
    assert token_log.found_in(log) == []


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
    ledger = Ledger(service_database, settings=Settings(pool_size=2), clock=now)
    try:
        yield Operator(ledger, now, token_log)
    finally:
        ledger.close()


@dataclass(frozen=True)
class Caller:
    """A user: their id and a personal access token."""

    user_id: str
    token: str


class Operator:
    def __init__(self, ledger: Ledger, clock: ManualClock, tokens: TokenLog) -> None:
        self.ledger = ledger
        self.clock = clock
        self.tokens = tokens

    def user(self, name: str = "user", *, at: datetime | None = None) -> Caller:
        """A new user with a fresh 90-day token (minted at ``at``: in the past for an expired
        one)."""
        self.clock.set(at or datetime.now(UTC))
        created = self.ledger.create_user(name)
        self.tokens.add(created.token)
        return Caller(str(created.user_id), created.token)


@dataclass(frozen=True)
class World:
    """A workspace with an owner, an admin and a member, a user outside it, a daemon token
    (minted through the owner's install token) and an unconsumed install token."""

    workspace_id: str
    owner: Caller
    admin: Caller
    member: Caller
    outsider: Caller
    daemon_token: str
    daemon_token_id: str
    install_token: str
    install_token_id: str


def build_world(api: Api, operator: Operator) -> World:
    owner, admin, member, outsider = (
        operator.user(n) for n in ("owner", "admin", "member", "outsider")
    )
    created = api.post("/api/workspaces", token=owner.token, json={"name": "acme"})
    assert created.status_code == 201, created.text
    workspace_id = created.json()["id"]
    for user, role in ((admin, "admin"), (member, "member")):
        added = api.post(
            f"/api/workspaces/{workspace_id}/members",
            token=owner.token,
            json={"user_id": user.user_id, "role": role},
        )
        assert added.status_code == 201, added.text
    used = api.post(f"/api/workspaces/{workspace_id}/install-tokens", token=owner.token)
    exchanged = api.post(
        "/api/install-tokens/exchange", json={"token": used.json()["token"], "daemon_id": "box"}
    )
    assert exchanged.status_code == 200, exchanged.text
    whoami = api.get("/api/daemon/whoami", token=exchanged.json()["token"])
    unused = api.post(f"/api/workspaces/{workspace_id}/install-tokens", token=owner.token)
    return World(
        workspace_id=workspace_id,
        owner=owner,
        admin=admin,
        member=member,
        outsider=outsider,
        daemon_token=exchanged.json()["token"],
        daemon_token_id=whoami.json()["token_id"],
        install_token=unused.json()["token"],
        install_token_id=unused.json()["id"],
    )


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
