"""Issue 14's routes and commands through ``ledger serve`` and the ``ledger`` CLI: bulk
revocation and offboarding, the paged token list and the workspace list, revocation notes,
``user_created``, the expiring report and gauge, and the failed-exchange throttle."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.acceptance.service import Api, ServeProcess, TokenLog, error_of, wait_until
from tests.support.world import Operator, World

REFUSAL_WAIT_S = 5.0
"""How long a test waits for every worker to refuse a token another process revoked: far
beyond the propagation bound, a bound on the wait and not a measurement."""


def ledger_cli(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger", *args],
        # wide enough that a table never folds an id
        env={**os.environ, "LEDGER_DATABASE_URL": database, "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def refused_everywhere(api: Api, token: str) -> bool:
    """Whether several requests in a row (the service has two workers) all answer 401."""
    return all(api.get("/api/me", token=token).status_code == 401 for _ in range(6))


def test_token_pages_follow_the_link_header_to_the_last_page(api: Api, operator: Operator) -> None:
    user = operator.user("pager")
    for i in range(4):
        assert api.post("/api/tokens", token=user.token, json={"name": f"t{i}"}).status_code == 201
    everything = api.get("/api/tokens", token=user.token)
    assert everything.status_code == 200
    assert "link" not in everything.headers
    ids = [t["id"] for t in everything.json()]
    assert len(ids) == 5
    seen: list[str] = []
    url: str | None = "/api/tokens?limit=2"
    while url is not None:
        page = api.get(url, token=user.token)
        assert page.status_code == 200, page.text
        assert len(page.json()) <= 2
        seen += [t["id"] for t in page.json()]
        link = page.headers.get("link")
        found = re.fullmatch(r'<([^>]+)>; rel="next"', link) if link else None
        url = found.group(1) if found else None
    assert seen == ids


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "cursor=bogus",
        "expiring_within_days=-1",
        "expiring_within_days=3651",
        "expiring_within_days=x",
    ],
)
def test_bad_list_parameters_answer_400(api: Api, shared_world: World, query: str) -> None:
    answer = api.get(f"/api/tokens?{query}", token=shared_world.outsider.token)
    assert error_of(answer) == (400, "invalid query parameter")


def test_the_expiring_filter(api: Api, operator: Operator) -> None:
    user = operator.user("expiring")  # its initial token expires in 90 days
    soon = api.post("/api/tokens", token=user.token, json={"name": "soon", "expires_in_days": 3})
    api.post("/api/tokens", token=user.token, json={"name": "never"})
    listed = api.get("/api/tokens?expiring_within_days=7", token=user.token).json()
    assert [t["id"] for t in listed] == [soon.json()["id"]]
    assert len(api.get("/api/tokens?expiring_within_days=90", token=user.token).json()) == 2


def test_the_workspace_list_has_each_role(api: Api, world: World) -> None:
    for caller, role in ((world.owner, "owner"), (world.admin, "admin"), (world.member, "member")):
        listed = api.get("/api/workspaces", token=caller.token)
        assert listed.status_code == 200
        assert [(w["id"], w["name"], w["role"]) for w in listed.json()] == [
            (world.workspace_id, "acme", role)
        ]
        assert listed.json()[0]["created_at"].endswith("Z")
    assert api.get("/api/workspaces", token=world.outsider.token).json() == []
    assert error_of(api.get("/api/workspaces")) == (401, "missing authorization")


def test_revoke_all_keeps_the_bearer_when_asked_and_then_revokes_it(
    api: Api, operator: Operator
) -> None:
    user = operator.user("revoker")
    other = api.post("/api/tokens", token=user.token, json={"name": "ci"}).json()["token"]
    kept = api.post("/api/tokens/revoke-all", token=user.token, json={"keep_current": True})
    assert (kept.status_code, kept.json()) == (200, {"revoked": 1})
    assert refused_everywhere(api, other)
    assert api.get("/api/me", token=user.token).status_code == 200
    everything = api.post("/api/tokens/revoke-all", token=user.token)  # no body: defaults
    assert (everything.status_code, everything.json()) == (200, {"revoked": 1})
    assert refused_everywhere(api, user.token)


def test_revoke_all_refuses_a_bad_body_and_changes_nothing(api: Api, operator: Operator) -> None:
    user = operator.user("careful")
    for body in ({"keep_current": "yes"}, {"note": "a\u0007b"}, [1]):
        answer = api.post("/api/tokens/revoke-all", token=user.token, json=body)
        assert answer.status_code == 400, answer.text
    assert api.get("/api/me", token=user.token).status_code == 200


def test_a_revocation_note_is_in_the_history_and_a_bad_one_is_refused(
    api: Api, world: World
) -> None:
    token = api.post("/api/tokens", token=world.member.token, json={"name": "n"}).json()
    path = f"/api/tokens/{token['id']}"
    for note in ("", "%20%20", "a%0Ab", "x" * 201):
        answer = api.delete(f"{path}?note={note}", token=world.member.token)
        assert error_of(answer) == (400, "invalid note")
    assert api.delete(f"{path}?note=lost%20laptop", token=world.member.token).status_code == 204
    history = api.get(f"/api/credentials/{token['id']}/history", token=world.member.token)
    revoked = history.json()["events"][-1]
    assert (revoked["type"], revoked["reason"], revoked["note"]) == (
        "revoked",
        "user_request",
        "lost laptop",
    )
    daemon = f"/api/workspaces/{world.workspace_id}/daemon-tokens/{world.daemon_token_id}"
    assert api.delete(f"{daemon}?note=decommissioned", token=world.admin.token).status_code == 204
    feed = api.get(
        f"/api/workspaces/{world.workspace_id}/audit?type=revoked", token=world.owner.token
    )
    assert [e["note"] for e in feed.json()["events"]] == ["decommissioned"]


def test_delete_on_the_revoke_all_route_is_405(api: Api, shared_world: World) -> None:
    answer = api.delete("/api/tokens/revoke-all", token=shared_world.outsider.token)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"


def test_users_offboard_revokes_everything_the_user_holds_and_issued(
    api: Api, world: World, service_database: str
) -> None:
    pat = api.post("/api/tokens", token=world.admin.token, json={"name": "laptop"}).json()
    install = api.post(
        f"/api/workspaces/{world.workspace_id}/install-tokens", token=world.admin.token
    ).json()
    result = ledger_cli(service_database, "users", "offboard", world.admin.user_id, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"user_id": world.admin.user_id, "revoked": 3}
    for token in (world.admin.token, pat["token"]):

        def refused(token: str = token) -> bool:
            return refused_everywhere(api, token)

        assert wait_until(refused, timeout=REFUSAL_WAIT_S)
    exchange = api.post(
        "/api/install-tokens/exchange", json={"token": install["token"], "daemon_id": "late"}
    )
    assert error_of(exchange) == (401, "invalid_install_token")
    history = api.get(f"/api/credentials/{pat['id']}/history", token=world.owner.token)
    assert history.status_code == 404  # another user's token: not theirs to read
    feed = api.get(
        f"/api/workspaces/{world.workspace_id}/audit?type=revoked", token=world.owner.token
    ).json()["events"]
    assert [(e["credential_id"], e["reason"]) for e in feed] == [(install["id"], "offboarded")]
    assert api.get("/api/daemon/whoami", token=world.daemon_token).status_code == 200  # owner's


def test_users_offboard_an_unknown_user_exits_1(service_database: str) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    result = ledger_cli(service_database, "users", "offboard", unknown, "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"error": "user not found"}
    plain = ledger_cli(service_database, "users", "offboard", unknown)
    assert plain.returncode == 1 and "user not found" in plain.stderr


def test_audit_expiring_lists_tokens_about_to_expire_with_their_holders(
    api: Api, world: World, service_database: str
) -> None:
    install = api.post(
        f"/api/workspaces/{world.workspace_id}/install-tokens", token=world.owner.token
    ).json()
    result = ledger_cli(
        service_database,
        "audit",
        "expiring",
        "--within-days",
        "1",
        "--workspace",
        world.workspace_id,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    found = {e["id"]: e for e in json.loads(result.stdout)}
    entry = found[install["id"]]
    assert entry["kind"] == "install_token"
    assert entry["holder"] == {"user_id": world.owner.user_id, "name": "owner"}
    assert entry["expires_at"].endswith("Z")
    assert world.install_token_id in found
    table = ledger_cli(service_database, "audit", "expiring", "--within-days", "1")
    assert table.returncode == 0 and install["id"] in table.stdout
    bad = ledger_cli(service_database, "audit", "expiring", "--within-days", "9999", "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout) == {"error": "invalid query parameter"}


def test_user_creation_is_an_audited_event(world: World, service_database: str) -> None:
    result = ledger_cli(
        service_database,
        "audit",
        "events",
        "--user",
        world.member.user_id,
        "--type",
        "user_created",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    [event] = json.loads(result.stdout)["events"]
    assert event["actor"] == {"type": "system", "id": "operator"}
    assert (event["user_id"], event["name"]) == (world.member.user_id, "member")


def test_the_metrics_count_tokens_expiring_soon_and_failed_authentications(
    api: Api, shared_world: World
) -> None:
    assert api.get("/api/me", token="mul_" + "A" * 36).status_code == 401
    text = api.get("/metrics").text
    assert re.search(r'^ledger_tokens_expiring_soon\{kind="install_token"\} \d', text, re.M)
    assert re.search(
        r'^ledger_auth_failures_total\{reason="invalid token",route="/api/me"\} \d', text, re.M
    )


@pytest.fixture(scope="module")
def throttled(
    service_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    """A service of its own with a low failed-exchange limit, behind a (pretend) proxy."""
    process = ServeProcess(
        service_database,
        tmp_path_factory.mktemp("throttled") / "serve.log",
        env={
            "LEDGER_EXCHANGE_FAILURES_PER_MINUTE": "3",
            "LEDGER_TRUSTED_PROXY_HEADER": "X-Forwarded-For",
        },
    )
    try:
        process.wait_ready()
        yield process
    finally:
        assert process.stop() == 0


def test_failed_exchanges_from_one_address_are_throttled_and_others_are_not(
    throttled: ServeProcess, world: World, token_log: TokenLog
) -> None:
    api = Api(throttled.base_url, token_log)
    try:
        fake = {"token": "mit_" + "A" * 36, "daemon_id": "guess"}
        attacker = {"X-Forwarded-For": "203.0.113.66"}
        statuses = [
            api.post("/api/install-tokens/exchange", json=fake, headers=attacker).status_code
            for _ in range(4)
        ]
        assert statuses == [400, 400, 400, 429]
        limited = api.post("/api/install-tokens/exchange", json=fake, headers=attacker)
        assert error_of(limited) == (429, "too many requests")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        real = {"token": world.install_token, "daemon_id": "legit"}
        other = api.post(
            "/api/install-tokens/exchange", json=real, headers={"X-Forwarded-For": "192.0.2.1"}
        )
        assert other.status_code == 200, other.text
    finally:
        api.close()
    log = throttled.log_text()
    assert '"client": "203.0.113.66"' in log and '"token_prefix": "mit_AAAAAAAA' in log
    assert "mit_" + "A" * 36 not in log


def test_the_socket_address_is_used_when_no_proxy_header_is_trusted(
    service: ServeProcess,
) -> None:
    # The session's service trusts no header: a forged X-Forwarded-For changes nothing.
    with httpx.Client(base_url=service.base_url) as client:
        answer = client.get("/api/me", headers={"X-Forwarded-For": "198.51.100.7"})
    assert answer.status_code == 401
    assert '"client": "198.51.100.7"' not in Path(service.log_path).read_text()
