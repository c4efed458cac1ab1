"""The audit routes through ``ledger serve`` (two workers, projections running in both)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from tests.acceptance.service import Api, error_of
from tests.support.world import Operator, World


def history(api: Api, credential_id: str, token: str | None) -> tuple[int, Any]:
    response = api.get(f"/api/credentials/{credential_id}/history", token=token)
    return response.status_code, response.json()


def test_history_of_a_daemon_token_and_its_install_token(api: Api, world: World) -> None:
    status, body = history(api, world.daemon_token_id, world.owner.token)
    assert status == 200, body
    credential = body["credential"]
    assert credential["id"] == world.daemon_token_id
    assert credential["kind"] == "daemon_token"
    assert credential["daemon_id"] == "box"
    assert [e["type"] for e in body["events"]] == ["minted"]
    install_id = credential["install_token_id"]
    status, install = history(api, install_id, world.admin.token)
    assert status == 200, install
    consumed = install["events"][1]
    assert consumed["type"] == "consumed"
    assert consumed["daemon_token_id"] == world.daemon_token_id
    assert consumed["actor"] == {"type": "daemon", "id": world.daemon_token_id}
    assert consumed["at"].endswith("Z")


def test_a_revocation_is_in_the_history_as_soon_as_the_call_returns(api: Api, world: World) -> None:
    path = f"/api/workspaces/{world.workspace_id}/daemon-tokens/{world.daemon_token_id}"
    for _ in range(3):  # the service has two workers: ask more than once
        assert api.delete(path, token=world.admin.token).status_code == 204
        status, body = history(api, world.daemon_token_id, world.owner.token)
        assert status == 200
        assert body["events"][-1]["type"] == "revoked"
        assert body["events"][-1]["reason"] == "admin"
        assert body["credential"]["revoked_at"] is not None


def test_who_may_read_a_history(api: Api, world: World, operator: Operator) -> None:
    pat = api.post("/api/tokens", token=world.member.token, json={"name": "mine"}).json()
    assert history(api, pat["id"], world.member.token)[0] == 200
    denied = [
        (world.daemon_token_id, world.member.token),
        (world.daemon_token_id, world.outsider.token),
        (pat["id"], world.owner.token),
        ("0f0e0d0c-0b0a-4908-8706-050403020100", world.owner.token),
    ]
    answers = [history(api, credential_id, token) for credential_id, token in denied]
    # Not readable and unknown answer alike, detail included: nothing tells them apart.
    assert all(a == answers[-1] for a in answers)
    assert answers[-1][0] == 404 and answers[-1][1]["error"] == "credential not found"
    status, body = history(api, "nope", world.owner.token)
    assert (status, body["error"]) == (400, "invalid credential id")
    assert "UUID" in body["detail"]
    for bearer, code in (
        (None, "missing authorization"),
        (world.daemon_token, "invalid token"),
        (world.install_token, "invalid token"),
    ):
        status, body = history(api, pat["id"], bearer)
        assert (status, body["error"]) == (401, code)


def test_workspace_feed_pages_with_a_cursor(api: Api, world: World) -> None:
    path = f"/api/workspaces/{world.workspace_id}/audit"
    everything = api.get(path, token=world.owner.token).json()
    assert everything["next_cursor"] is None
    types = [e["type"] for e in everything["events"]]
    assert types == [
        "member_added",  # the owner, at creation
        "member_added",
        "member_added",
        "minted",
        "consumed",
        "minted",
        "minted",
    ]
    paged, cursor = [], None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(f"{path}?{query}", token=world.admin.token).json()
        paged += page["events"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == everything["events"]
    minted = api.get(f"{path}?type=minted", token=world.owner.token).json()["events"]
    assert [e["credential_id"] for e in minted][-1] == world.install_token_id
    future = quote(datetime(2100, 1, 1, tzinfo=UTC).isoformat())
    assert api.get(f"{path}?since={future}", token=world.owner.token).json()["events"] == []


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1001", "limit=x", "type=exploded", "cursor=-3", "since=yesterday"],
)
def test_bad_feed_parameters_are_400(api: Api, world: World, query: str) -> None:
    response = api.get(
        f"/api/workspaces/{world.workspace_id}/audit?{query}", token=world.owner.token
    )
    assert error_of(response) == (400, "invalid query parameter")
    assert query.split("=", maxsplit=1)[0] in response.json()["detail"]  # names the parameter


def test_feed_and_valid_at_are_for_owners_and_admins(api: Api, world: World) -> None:
    for route in ("audit", "credentials?valid_at=2026-01-01T00:00:00Z"):
        path = f"/api/workspaces/{world.workspace_id}/{route}"
        assert api.get(path, token=world.admin.token).status_code == 200
        assert error_of(api.get(path, token=world.member.token)) == (
            403,
            "insufficient permissions",
        )
        assert error_of(api.get(path, token=world.outsider.token)) == (404, "workspace not found")
        assert error_of(api.get(path)) == (401, "missing authorization")
        assert error_of(api.get(path, token=world.daemon_token)) == (401, "invalid token")


def test_valid_at_answers_from_the_events(api: Api, world: World, operator: Operator) -> None:
    path = f"/api/workspaces/{world.workspace_id}/credentials"
    now = datetime.now(UTC).isoformat()  # "+00:00": a "+" a client forgot to encode
    usable = api.get(f"{path}?valid_at={now}", token=world.owner.token)
    assert usable.status_code == 200, usable.text
    ids = {c["id"] for c in usable.json()}
    assert ids == {world.daemon_token_id, world.install_token_id}  # the used one is consumed
    long_ago = api.get(f"{path}?valid_at=2000-01-01T00:00:00Z", token=world.owner.token)
    assert long_ago.json() == []
    assert error_of(api.get(path, token=world.owner.token)) == (400, "invalid query parameter")
    naive = api.get(f"{path}?valid_at=2026-01-01T00:00:00", token=world.owner.token)
    assert error_of(naive) == (400, "invalid query parameter")
    assert naive.json()["detail"].startswith("valid_at needs a time zone")
