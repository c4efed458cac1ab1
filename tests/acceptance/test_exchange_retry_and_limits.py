"""Through HTTP: a lost exchange answer fetched again, replays recorded (and, when configured,
revoking), and the 409 `token limit reached` of mints and exchanges."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.acceptance.service import Api, ServeProcess, TokenLog, error_of, served
from tests.support.world import Operator, World

CLIENTS = 16
EXCHANGE = "/api/install-tokens/exchange"


def install_token(api: Api, world: World) -> dict[str, str]:
    minted = api.post(
        f"/api/workspaces/{world.workspace_id}/install-tokens", token=world.owner.token
    )
    assert minted.status_code == 201, minted.text
    body: dict[str, str] = minted.json()
    return body


def history_types(api: Api, world: World, credential_id: str) -> list[str]:
    history = api.get(f"/api/credentials/{credential_id}/history", token=world.owner.token)
    assert history.status_code == 200, history.text
    return [e["type"] for e in history.json()["events"]]


def test_a_retry_answers_the_same_body_and_a_replay_is_recorded(api: Api, world: World) -> None:
    install = install_token(api, world)
    first = api.post(EXCHANGE, json={"token": install["token"], "daemon_id": "box-2"})
    assert first.status_code == 200, first.text
    again = api.post(EXCHANGE, json={"token": install["token"], "daemon_id": "box-2"})
    assert (again.status_code, again.json()) == (200, first.json())

    replay = api.post(EXCHANGE, json={"token": install["token"], "daemon_id": "elsewhere"})
    assert error_of(replay) == (401, "install_token_already_used")
    assert history_types(api, world, install["id"]) == ["minted", "consumed", "replay_detected"]
    feed = api.get(
        f"/api/workspaces/{world.workspace_id}/audit?type=replay_detected",
        token=world.owner.token,
    ).json()["events"]
    assert [(e["credential_id"], e["kind"], e["daemon_id"]) for e in feed] == [
        (install["id"], "install_token", "elsewhere")
    ]
    # The replay policy is off here: the daemon token still works.
    whoami = api.get("/api/daemon/whoami", token=first.json()["token"])
    assert whoami.status_code == 200


def test_concurrent_identical_exchanges_through_two_workers_get_one_token(
    api: Api, world: World
) -> None:
    install = install_token(api, world)
    start = threading.Barrier(CLIENTS)

    def exchange(_: int) -> httpx.Response:
        start.wait()
        return api.post(EXCHANGE, json={"token": install["token"], "daemon_id": "same-box"})

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(exchange, range(CLIENTS)))
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
    assert len({a.text for a in answers}) == 1
    daemons = api.get(
        f"/api/workspaces/{world.workspace_id}/daemon-tokens", token=world.owner.token
    ).json()
    assert [d["daemon_id"] for d in daemons].count("same-box") == 1
    assert history_types(api, world, install["id"]) == ["minted", "consumed"]


@pytest.fixture(scope="module")
def limited(service_database: str, logs_dir: Path, token_log: TokenLog) -> Iterator[ServeProcess]:
    """A second `ledger serve` on the same database, with small limits and replays revoking."""
    process = ServeProcess(
        service_database,
        logs_dir / "limited.log",
        workers=2,
        env={
            "LEDGER_MAX_TOKENS_PER_USER": "3",
            "LEDGER_MAX_DAEMON_TOKENS_PER_WORKSPACE": "1",
            "LEDGER_REPLAY_REVOKES": "true",
        },
    )
    with served(process, token_log):
        yield process


@pytest.fixture
def limited_api(limited: ServeProcess, token_log: TokenLog) -> Iterator[Api]:
    client = Api(limited.base_url, token_log)
    try:
        yield client
    finally:
        client.close()


def test_a_mint_past_the_users_limit_is_409_and_writes_nothing(
    limited_api: Api, operator: Operator
) -> None:
    user = operator.user("limited")  # the initial token is one of three
    for name in ("a", "b"):
        assert (
            limited_api.post("/api/tokens", token=user.token, json={"name": name}).status_code
            == 201
        )
    refused = limited_api.post("/api/tokens", token=user.token, json={"name": "c"})
    assert error_of(refused) == (409, "token limit reached")
    tokens = limited_api.get("/api/tokens", token=user.token).json()
    assert sorted(t["name"] for t in tokens) == ["a", "b", "initial token"]
    revoked = limited_api.delete(f"/api/tokens/{tokens[0]['id']}", token=user.token)
    assert revoked.status_code == 204
    assert limited_api.post("/api/tokens", token=user.token, json={"name": "c"}).status_code == 201


def test_an_exchange_past_the_workspace_limit_is_409_and_leaves_the_install_token(
    limited_api: Api, operator: Operator
) -> None:
    owner = operator.user("owner")
    workspace = limited_api.post("/api/workspaces", token=owner.token, json={"name": "small"})
    workspace_id = workspace.json()["id"]
    tokens = [
        limited_api.post(f"/api/workspaces/{workspace_id}/install-tokens", token=owner.token).json()
        for _ in range(2)
    ]
    first = limited_api.post(EXCHANGE, json={"token": tokens[0]["token"], "daemon_id": "one"})
    assert first.status_code == 200, first.text
    refused = limited_api.post(EXCHANGE, json={"token": tokens[1]["token"], "daemon_id": "two"})
    assert error_of(refused) == (409, "token limit reached")
    history = limited_api.get(
        f"/api/credentials/{tokens[1]['id']}/history", token=owner.token
    ).json()
    assert history["credential"]["consumed_at"] is None

    # A replay of the first install token revokes its daemon token (the policy is on here),
    # which frees the workspace's one place.
    replay = limited_api.post(EXCHANGE, json={"token": tokens[0]["token"], "daemon_id": "thief"})
    assert error_of(replay) == (401, "install_token_already_used")
    assert error_of(limited_api.get("/api/daemon/whoami", token=first.json()["token"])) == (
        401,
        "invalid token",
    )
    retry = limited_api.post(EXCHANGE, json={"token": tokens[0]["token"], "daemon_id": "one"})
    assert error_of(retry) == (401, "install_token_already_used")
    second = limited_api.post(EXCHANGE, json={"token": tokens[1]["token"], "daemon_id": "two"})
    assert second.status_code == 200, second.text
