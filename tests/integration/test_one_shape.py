"""One shape per audit event and one timestamp form, whichever way it is read: the HTTP answer
and ``ledger … --json`` of the same events are equal, field for field."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ledger.bootstrap import PostgresLedger
from ledger.entrypoints.http.app import create_app
from tests.integration.test_cli import ledger_cli
from tests.support.principals import new_user

_INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")


@pytest.fixture
def client(wall_clock_ledger: PostgresLedger) -> Iterator[TestClient]:
    with TestClient(create_app(wall_clock_ledger)) as test_client:
        yield test_client


def _instants(value: object) -> list[str]:
    """Every string in ``value`` that looks like a date and time."""
    if isinstance(value, dict):
        return [i for v in value.values() for i in _instants(v)]
    if isinstance(value, list):
        return [i for v in value for i in _instants(v)]
    if isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT", value):
        return [value]
    return []


def test_http_and_cli_json_of_the_same_events_are_identical(
    database_url: str, wall_clock_ledger: PostgresLedger, client: TestClient
) -> None:
    ledger = wall_clock_ledger
    owner, token = new_user(ledger, "owner")
    member, _ = new_user(ledger, "member")
    workspace = ledger.create_workspace(owner, "ws").id
    ledger.add_member(owner, workspace, member.user_id, "admin")
    ledger.change_role(owner, workspace, member.user_id, "member")
    install = ledger.mint_install_token(owner, workspace)
    daemon = ledger.exchange_install_token(install.token, "daemon-1")
    ledger.revoke_daemon_token(owner, workspace, daemon.token_id)
    ledger.remove_member(owner, workspace, member.user_id)
    auth = {"Authorization": f"Bearer {token}"}
    env = {"LEDGER_DATABASE_URL": database_url}

    over_http = client.get(f"/api/workspaces/{workspace}/audit", headers=auth)
    assert over_http.status_code == 200, over_http.text
    cli = ledger_cli("audit", "events", "--workspace", str(workspace), "--json", env=env)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == over_http.json()

    events = over_http.json()["events"]
    assert {e["type"] for e in events} >= {"member_added", "member_role_changed", "revoked"}
    membership = [e for e in events if e["type"].startswith("member_")]
    assert membership and all(e["credential_id"] is None and e["kind"] is None for e in membership)
    assert all(list(e)[:8] == list(events[0])[:8] for e in events)  # common fields, one order

    history_http = client.get(f"/api/credentials/{install.id}/history", headers=auth).json()
    history_cli = ledger_cli("audit", "history", str(install.id), "--json", env=env)
    assert json.loads(history_cli.stdout) == history_http

    instants = _instants([over_http.json(), history_http])
    assert instants and all(_INSTANT.fullmatch(i) for i in instants), instants


def test_users_create_writes_its_expiry_with_z(
    database_url: str, wall_clock_ledger: PostgresLedger
) -> None:
    result = ledger_cli(
        "users", "create", "--name", "Zed", "--json", env={"LEDGER_DATABASE_URL": database_url}
    )
    assert result.returncode == 0, result.stderr
    assert _INSTANT.fullmatch(json.loads(result.stdout)["expires_at"])
