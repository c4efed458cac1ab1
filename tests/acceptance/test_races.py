"""16 concurrent clients through HTTP (two workers): exactly one winner, every round."""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.acceptance.service import Api
from tests.support.world import Operator, World

CLIENTS = 16
ROUNDS = 10


def race(call: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """``CLIENTS`` threads released together, each making the call once."""
    start = threading.Barrier(CLIENTS)

    def one() -> httpx.Response:
        start.wait()
        return call()

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(lambda _: one(), range(CLIENTS)))


def test_concurrent_renewals_have_exactly_one_winner(api: Api, operator: Operator) -> None:
    user = operator.user()
    for round_ in range(ROUNDS):
        days = 1 + round_ % 7  # 7 days or less left: renewable
        minted = api.post(
            "/api/tokens", token=user.token, json={"name": "race", "expires_in_days": days}
        ).json()
        renew = functools.partial(api.post, "/api/tokens/current/renew", token=minted["token"])
        answers = race(renew)
        assert {a.status_code for a in answers} == {200}
        bodies = [a.json() for a in answers]
        winners = [b for b in bodies if b["renewed"]]
        assert len(winners) == 1, bodies
        assert {b["expires_at"] for b in bodies} == {winners[0]["expires_at"]}
        stored = {t["id"]: t for t in api.get("/api/tokens", token=user.token).json()}
        assert stored[minted["id"]]["expires_at"] == winners[0]["expires_at"]


def exchange_as_next(
    api: Api, token: str, racers: itertools.count[int], round_: int
) -> httpx.Response:
    body = {"token": token, "daemon_id": f"racer-{round_}-{next(racers)}"}
    return api.post("/api/install-tokens/exchange", json=body)


def test_concurrent_exchanges_have_exactly_one_winner(api: Api, world: World) -> None:
    daemon_tokens = f"/api/workspaces/{world.workspace_id}/daemon-tokens"
    for round_ in range(ROUNDS):
        minted = api.post(
            f"/api/workspaces/{world.workspace_id}/install-tokens", token=world.owner.token
        ).json()
        # Every racer its own daemon_id: the same one would make the losers retries (200).
        answers = race(
            functools.partial(exchange_as_next, api, minted["token"], itertools.count(), round_)
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200] + [401] * (CLIENTS - 1)
        losers = [a.json()["error"] for a in answers if a.status_code == 401]
        assert losers == ["install_token_already_used"] * (CLIENTS - 1)
        (winner,) = [a.json() for a in answers if a.status_code == 200]
        assert api.get("/api/daemon/whoami", token=winner["token"]).status_code == 200
        made = [
            t
            for t in api.get(daemon_tokens, token=world.owner.token).json()
            if t["install_token_id"] == minted["id"]
        ]
        assert len(made) == 1
