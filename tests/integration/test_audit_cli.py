"""`ledger audit …` and `ledger projections …` run as a user runs them: subprocesses."""

from __future__ import annotations

import json

from ledger.bootstrap import PostgresLedger
from ledger.projections import NAMES
from tests.integration.test_cli import ledger_cli
from tests.support.principals import new_user


def test_audit_history_prints_the_state_and_events_as_json(
    database_url: str, ledger: PostgresLedger
) -> None:
    user, _ = new_user(ledger)
    minted = ledger.mint_personal_access_token(user, "cli-token")
    ledger.revoke_personal_access_token(user, minted.info.id)

    result = ledger_cli(
        "audit", "history", str(minted.info.id), "--json", env={"LEDGER_DATABASE_URL": database_url}
    )

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["credential"]["id"] == str(minted.info.id)
    assert data["credential"]["name"] == "cli-token"
    assert [e["type"] for e in data["events"]] == ["minted", "revoked"]
    assert data["events"][1]["reason"] == "user_request"
    assert data["events"][0]["actor"] == {"type": "user", "id": str(user.user_id)}
    assert minted.token not in result.stdout


def test_audit_history_table_and_errors(database_url: str, ledger: PostgresLedger) -> None:
    user, _ = new_user(ledger)
    minted = ledger.mint_personal_access_token(user, "t")
    env = {"LEDGER_DATABASE_URL": database_url, "COLUMNS": "200"}
    table = ledger_cli("audit", "history", str(minted.info.id), env=env)
    assert table.returncode == 0, table.stderr
    assert "minted" in table.stdout
    assert str(minted.info.id) in table.stdout
    missing = ledger_cli(
        "audit", "history", "8b0f0a2e-0000-4000-8000-000000000000", "--json", env=env
    )
    assert (missing.returncode, json.loads(missing.stdout)) == (
        1,
        {"error": "credential not found"},
    )
    bad = ledger_cli("audit", "history", "not-a-uuid", "--json", env=env)
    assert (bad.returncode, json.loads(bad.stdout)) == (
        2,
        {"error": "invalid query parameter", "detail": "CREDENTIAL_ID is not a UUID"},
    )
    assert "Traceback" not in bad.stderr + missing.stderr


def test_audit_events_and_valid_at(database_url: str, ledger: PostgresLedger) -> None:
    owner, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "ws").id
    install = ledger.mint_install_token(owner, workspace)
    env = {"LEDGER_DATABASE_URL": database_url}

    events = ledger_cli(
        "audit", "events", "--workspace", str(workspace), "--type", "minted", "--json", env=env
    )
    assert events.returncode == 0, events.stderr
    page = json.loads(events.stdout)
    assert [e["credential_id"] for e in page["events"]] == [str(install.id)]
    assert page["next_cursor"] is None

    at = install.created_at.isoformat()
    valid = ledger_cli("audit", "valid-at", at, "--workspace", str(workspace), "--json", env=env)
    assert valid.returncode == 0, valid.stderr
    assert [s["id"] for s in json.loads(valid.stdout)] == [str(install.id)]
    after = (install.expires_at).isoformat()  # expired at expires_at
    none = ledger_cli("audit", "valid-at", after, "--workspace", str(workspace), "--json", env=env)
    assert json.loads(none.stdout) == []

    bad_time = ledger_cli("audit", "valid-at", "yesterday", "--user", str(owner.user_id), env=env)
    assert bad_time.returncode == 2
    assert "error: T is not an RFC 3339 timestamp" in bad_time.stderr
    naive = ledger_cli("audit", "valid-at", "2026-11-30T12:00:00", env=env)
    assert naive.returncode == 2
    assert "T needs a time zone" in naive.stderr


def test_audit_valid_at_with_neither_filter_lists_every_credential(
    database_url: str, ledger: PostgresLedger
) -> None:
    alice, _ = new_user(ledger)
    bob, _ = new_user(ledger)
    workspace = ledger.create_workspace(alice, "ws").id
    install = ledger.mint_install_token(alice, workspace)
    pat = ledger.mint_personal_access_token(bob, "bob's")
    at = max(install.created_at, pat.info.created_at).isoformat()

    result = ledger_cli(
        "audit", "valid-at", at, "--json", env={"LEDGER_DATABASE_URL": database_url}
    )

    assert result.returncode == 0, result.stderr
    ids = {s["id"] for s in json.loads(result.stdout)}
    assert {str(install.id), str(pat.info.id)} <= ids


def test_projections_status_and_rebuild(database_url: str, ledger: PostgresLedger) -> None:
    new_user(ledger)
    env = {"LEDGER_DATABASE_URL": database_url}
    rebuilt = ledger_cli("projections", "rebuild", "audit_trail", "--json", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["rebuilt"] == ["audit_trail"]
    status = ledger_cli("projections", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)
    assert [r["name"] for r in rows] == list(NAMES)
    assert set(rows[0]) == {
        "name",
        "position",
        "head",
        "lag_events",
        "lag_seconds",
        "skipped",
        "sanitized",
        "horizon",
    }
    assert {"behind_events", "holder_pid", "holder_age_seconds"} <= set(rows[0]["horizon"])
    table = ledger_cli("projections", "rebuild", env=env)
    assert table.returncode == 0, table.stderr
    assert "rebuilt audit_trail, credentials" in table.stdout
    unknown = ledger_cli("projections", "rebuild", "nope", "--json", env=env)
    assert unknown.returncode == 2
    assert json.loads(unknown.stdout) == {
        "error": "unknown projection",
        "detail": "NAME must be one of audit_trail, credentials",
    }
