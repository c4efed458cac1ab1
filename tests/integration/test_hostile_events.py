"""No stored value stops a projection: catch-up, rebuild and the audit queries over a poisoned
store (``tests/integration/hostile.py``), on real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain import TokenKind
from ledger.domain.clock import ManualClock
from ledger.entrypoints.http.app import create_app
from ledger.entrypoints.http.metrics import ProjectionLagSync, render
from ledger.projections import NAMES
from ledger.projections import audit_trail as audit_trail_module
from ledger.projections.problems import MAX_TEXT, PROBLEMS, REJECTED_BY_STORE, EventScreen
from tests.integration.hostile import (
    CONTROL_DAEMON_ID,
    MARKUP_NAME,
    NEWER_TOPIC,
    NUL_NAME,
    Poisoned,
    poison,
)
from tests.integration.test_cli import ledger_cli
from tests.support.databases import fresh_database
from tests.support.principals import START, new_user

SAFE_NUL_NAME = "a\u2400b"  # ␀
SAFE_CONTROL_DAEMON_ID = "d\u2401\u241b[2J\u2421x"  # ␁ ␛ … ␡


@pytest.fixture
def fresh(server_url: str, settings: Settings) -> Iterator[tuple[str, PostgresLedger, ManualClock]]:
    """A ledger on a database of its own (a poisoned store is no other test's business), with
    small batches so that bad events fall at a batch's start, middle and end."""
    url = fresh_database(server_url)
    clock = ManualClock(START)
    small = Settings(**{**settings.model_dump(), "projection_batch_size": 4})
    ledger = build_ledger(url, settings=small, clock=clock)
    try:
        yield url, ledger, clock
    finally:
        ledger.close()


def expected_problems(poisoned: Poisoned) -> dict[tuple[str, int], str]:
    both = {(name, p): code for name in NAMES for p, code in poisoned.problems.items()}
    return both | {("audit_trail", p): code for p, code in poisoned.audit_only.items()}


def recorded_problems(ledger: PostgresLedger) -> dict[tuple[str, int], str]:
    return {(e.projection, e.position): e.problem for e in ledger.projections.errors(limit=1000)}


def traffic_after(ledger: PostgresLedger, clock: ManualClock, poisoned: Poisoned) -> dict[str, Any]:
    """Ordinary commands after the hostile events, in the poisoned workspace too."""
    clock.advance(timedelta(minutes=1))
    owner = poisoned.owner
    pat = ledger.mint_personal_access_token(owner, "after", 30)
    ledger.revoke_personal_access_token(owner, pat.info.id)
    member, _ = new_user(ledger, "member")
    ledger.add_member(owner, poisoned.workspace_id, member.user_id, "admin")
    install = ledger.mint_install_token(owner, poisoned.workspace_id)
    daemon = ledger.exchange_install_token(install.token, "daemon-after")
    return {"pat": pat.info.id, "install": install.id, "daemon": daemon.token_id, "member": member}


def table_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {
            "audit": conn.execute("SELECT * FROM ledger_audit ORDER BY position").fetchall(),
            "credentials": conn.execute(
                "SELECT * FROM ledger_credentials_view ORDER BY credential_id"
            ).fetchall(),
            "errors": conn.execute(
                "SELECT * FROM ledger_projection_errors ORDER BY projection, position"
            ).fetchall(),
        }


def audit_positions(url: str) -> set[int]:
    with psycopg.connect(url) as conn:
        return {p for (p,) in conn.execute("SELECT position FROM ledger_audit").fetchall()}


def assert_queries_work(
    ledger: PostgresLedger, clock: ManualClock, poisoned: Poisoned, after: Any
) -> None:
    """History, the workspace feed and ``valid_at`` answer, with hostile text in a safe form
    and every event after the hostile ones present."""
    feed = ledger.workspace_audit(poisoned.owner, poisoned.workspace_id, limit=1000)
    created = feed.events[0]
    assert (created.type, created.data["name"]) == ("member_added", SAFE_NUL_NAME)
    daemon_ids = [e.data.get("daemon_id") for e in feed.events if e.type == "minted"]
    assert SAFE_CONTROL_DAEMON_ID in daemon_ids
    assert "daemon-after" in daemon_ids
    assert any(len(d or "") == MAX_TEXT and (d or "").endswith("…") for d in daemon_ids)
    added = [
        e for e in feed.events if e.type == "member_added" and e.user_id == after["member"].user_id
    ]
    assert len(added) == 1

    control = ledger.audit.history(poisoned.control_daemon)
    assert control.credential.daemon_id == SAFE_CONTROL_DAEMON_ID
    long = ledger.audit.history(poisoned.long_daemon)
    assert long.credential.daemon_id is not None
    assert len(long.credential.daemon_id) == MAX_TEXT
    nul = ledger.audit.history(poisoned.nul_pat)
    assert nul.credential.name == "n\u2400me"
    assert nul.credential.revoked_reason == "bad\u2400reason"
    assert [e.type for e in nul.events] == ["minted", "revoked"]
    assert ledger.audit.history(poisoned.surrogate_pat).credential.name == "laptop \ufffd"
    wrong = ledger.audit.history(poisoned.wrong_types_pat)
    assert [e.type for e in wrong.events] == ["minted", "revoked"]  # renewal, revocation skipped
    assert wrong.credential.revoked_reason == '{"nested": ["x"]}'
    pat = ledger.audit.history(after["pat"])
    assert [e.type for e in pat.events] == ["minted", "revoked"]

    usable = ledger.workspace_valid_at(poisoned.owner, poisoned.workspace_id, clock.now())
    assert {s.credential_id for s in usable} >= {
        poisoned.control_daemon,
        poisoned.long_daemon,
        after["daemon"],
    }
    assert all(s.kind == TokenKind.DAEMON_TOKEN for s in usable)


def test_live_runner_projects_every_event_after_the_hostile_ones(
    fresh: tuple[str, PostgresLedger, ManualClock],
) -> None:
    url, ledger, clock = fresh
    ledger.projections.start()
    owner, _ = new_user(ledger, "owner")
    poisoned = poison(ledger, clock, owner)
    after = traffic_after(ledger, clock, poisoned)

    ledger.projections.wait_current()

    assert_queries_work(ledger, clock, poisoned, after)
    assert recorded_problems(ledger) == expected_problems(poisoned)
    status = {s.name: s for s in ledger.projections.status()}
    assert all(s.position == s.head and s.lag_events == 0 for s in status.values())
    for name, s in status.items():
        codes = [
            code
            for (projection, _), code in expected_problems(poisoned).items()
            if projection == name
        ]
        assert s.sanitized == codes.count("unsafe_text")
        assert s.skipped == len(codes) - s.sanitized
    assert (status["audit_trail"].sanitized, status["audit_trail"].skipped) == (7, 8)
    assert table_rows(url)["errors"]  # committed with the rows


def test_rebuild_over_a_poisoned_store_equals_the_live_projection(
    fresh: tuple[str, PostgresLedger, ManualClock],
) -> None:
    url, ledger, clock = fresh
    owner, _ = new_user(ledger, "owner")
    poisoned = poison(ledger, clock, owner)
    after = traffic_after(ledger, clock, poisoned)
    ledger.projections.wait_current()
    live = table_rows(url)

    reached = ledger.projections.rebuild()

    assert reached == max(s.head for s in ledger.projections.status())
    assert table_rows(url) == live
    assert recorded_problems(ledger) == expected_problems(poisoned)
    assert_queries_work(ledger, clock, poisoned, after)


def test_a_row_the_store_refuses_is_isolated_and_the_batch_written(
    fresh: tuple[str, PostgresLedger, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were a value to reach the database unchecked (here: the audit trail's check switched
    off, so a NUL reaches ``jsonb``), the batch is bisected under savepoints down to the
    refused event; the rest of the batch and every batch after it are written."""
    url, ledger, clock = fresh
    owner, _ = new_user(ledger, "owner")
    poisoned = poison(ledger, clock, owner)
    after = traffic_after(ledger, clock, poisoned)
    ledger.projections.wait_current()
    checked = audit_positions(url)
    check = audit_trail_module.AUDIT_CHECK

    def types_only(row: Sequence[Any], notes: list[str]) -> Sequence[Any]:
        check(row, notes)  # refuses ids and instants of the wrong type
        return row  # but lets text through as it is

    monkeypatch.setattr(audit_trail_module, "AUDIT_CHECK", types_only)
    ledger.projections.batch_size = 1000  # the whole log in one batch
    created = next(p for p, code in poisoned.audit_only.items() if code == "unsafe_text")

    ledger.projections.rebuild(["audit_trail"])

    problems = {e.position: e.problem for e in ledger.projections.errors("audit_trail")}
    refused = {p for p, code in problems.items() if code == REJECTED_BY_STORE}
    assert created in refused  # jsonb cannot hold \u0000
    assert refused <= {created, *poisoned.problems}
    assert audit_positions(url) == checked - refused
    assert ledger.projections.status()[0].lag_events == 0
    assert ledger.audit.history(after["pat"]).events[-1].type == "revoked"


def test_the_poisoned_workspace_still_works_for_commands(
    fresh: tuple[str, PostgresLedger, ManualClock],
) -> None:
    _, ledger, clock = fresh
    owner, _ = new_user(ledger, "owner")
    poisoned = poison(ledger, clock, owner)
    # The write model keeps what was stored.
    assert ledger.get_workspace(owner, poisoned.workspace_id).name == NUL_NAME
    tokens = {t.daemon_id for t in ledger.list_daemon_tokens(owner, poisoned.workspace_id)}
    assert CONTROL_DAEMON_ID in tokens


def test_status_and_the_metric_report_what_each_projection_recorded(
    fresh: tuple[str, PostgresLedger, ManualClock],
) -> None:
    _, ledger, clock = fresh
    owner, _ = new_user(ledger, "owner")
    poisoned = poison(ledger, clock, owner)
    ledger.projections.wait_current()
    expected = expected_problems(poisoned)

    ProjectionLagSync(ledger).sync()
    scraped = text_string_to_metric_families(render().decode())

    [family] = [f for f in scraped if f.name == "ledger_projection_errors"]
    values = {(s.labels["projection"], s.labels["problem"]): s.value for s in family.samples}
    assert set(values) == {(name, code) for name in NAMES for code in PROBLEMS}
    for (name, code), value in values.items():
        assert value == sum(1 for (n, _), c in expected.items() if (n, c) == (name, code))
    assert values["audit_trail", "unknown_event_type"] == 2
    assert values["credentials", "rejected_by_store"] == 0


def test_the_cli_audit_and_projection_commands_work_over_a_poisoned_store(
    fresh: tuple[str, PostgresLedger, ManualClock],
) -> None:
    url, ledger, clock = fresh
    owner, _ = new_user(ledger, "owner")
    poisoned = poison(ledger, clock, owner)
    env = {"LEDGER_DATABASE_URL": url, "COLUMNS": "250"}
    workspace = str(poisoned.workspace_id)

    rebuilt = ledger_cli("projections", "rebuild", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    status = ledger_cli("projections", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    counts = {r["name"]: (r["sanitized"], r["skipped"]) for r in json.loads(status.stdout)}
    assert counts == {"audit_trail": (7, 8), "credentials": (6, 7)}
    status_table = ledger_cli("projections", "status", env=env)
    assert "ledger projections errors" in status_table.stdout
    errors = ledger_cli("projections", "errors", "credentials", "--json", env=env)
    assert errors.returncode == 0, errors.stderr
    listed = {e["position"]: e["problem"] for e in json.loads(errors.stdout)}
    assert listed == {
        p: c for (n, p), c in expected_problems(poisoned).items() if n == "credentials"
    }
    errors_table = ledger_cli("projections", "errors", env=env)
    assert errors_table.returncode == 0, errors_table.stderr
    assert NEWER_TOPIC in errors_table.stdout

    feed = ledger_cli("audit", "events", "--workspace", workspace, "--limit", "1000", env=env)
    assert feed.returncode == 0, feed.stderr
    assert SAFE_NUL_NAME in feed.stdout
    feed_json = ledger_cli("audit", "events", "--workspace", workspace, "--json", env=env)
    assert json.loads(feed_json.stdout)["events"][0]["name"] == SAFE_NUL_NAME
    history = ledger_cli("audit", "history", str(poisoned.control_daemon), env=env)
    assert history.returncode == 0, history.stderr
    assert SAFE_CONTROL_DAEMON_ID in history.stdout
    markup = ledger_cli("audit", "history", str(poisoned.markup_pat), env=env)
    assert markup.returncode == 0, markup.stderr
    assert MARKUP_NAME in markup.stdout
    at = clock.now().isoformat()
    valid = ledger_cli("audit", "valid-at", at, "--workspace", workspace, env=env)
    assert valid.returncode == 0, valid.stderr
    valid_json = ledger_cli("audit", "valid-at", at, "--workspace", workspace, "--json", env=env)
    ids = {s["id"] for s in json.loads(valid_json.stdout)}
    assert ids == {str(poisoned.control_daemon), str(poisoned.long_daemon)}
    for result in (rebuilt, status_table, errors_table, feed, history, markup, valid):
        assert "\x1b[2J" not in result.stdout  # nothing stored reaches the terminal raw
        assert "Traceback" not in result.stderr


def test_the_http_audit_routes_answer_over_a_poisoned_store(
    fresh: tuple[str, PostgresLedger, ManualClock],
) -> None:
    _, ledger, clock = fresh
    owner, owner_token = new_user(ledger, "owner")
    other, other_token = new_user(ledger, "bystander")
    elsewhere = ledger.create_workspace(other, "elsewhere").id
    poisoned = poison(ledger, clock, owner)
    at = clock.now().isoformat().replace("+00:00", "Z")

    with TestClient(create_app(ledger), raise_server_exceptions=False) as client:
        auth = {"Authorization": f"Bearer {owner_token}"}
        workspace = f"/api/workspaces/{poisoned.workspace_id}"
        feed = client.get(f"{workspace}/audit", params={"limit": "1000"}, headers=auth)
        valid = client.get(f"{workspace}/credentials", params={"valid_at": at}, headers=auth)
        histories = [
            client.get(f"/api/credentials/{cid}/history", headers=auth)
            for cid in (
                poisoned.control_daemon,
                poisoned.markup_pat,
                poisoned.wrong_types_pat,
                poisoned.nul_pat,
            )
        ]
        bystander = client.get(
            f"/api/workspaces/{elsewhere}/audit", headers={"Authorization": f"Bearer {other_token}"}
        )

    assert feed.status_code == 200, feed.text
    assert feed.json()["events"][0]["name"] == SAFE_NUL_NAME
    assert valid.status_code == 200, valid.text
    assert {c["daemon_id"] for c in valid.json()} == {SAFE_CONTROL_DAEMON_ID, "x" * 999 + "…"}
    # The NUL token never had an auth row (the old service failed to write one): not found.
    assert [h.status_code for h in histories] == [200, 200, 200, 404]
    assert histories[0].json()["credential"]["daemon_id"] == SAFE_CONTROL_DAEMON_ID
    assert histories[1].json()["credential"]["name"] == MARKUP_NAME
    assert histories[2].json()["events"][1]["reason"] == '{"nested": ["x"]}'
    assert bystander.status_code == 200, bystander.text  # every other workspace too
    assert [e["type"] for e in bystander.json()["events"]] == ["member_added"]


def test_with_no_checks_at_all_the_nets_still_hold(
    fresh: tuple[str, PostgresLedger, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last two nets alone: with the row check off and every event sent down the checked
    path, a value psycopg cannot render is found row by row (``invalid_value``) and a value
    the database refuses by bisection (``rejected_by_store``); every other event is written."""
    url, ledger, clock = fresh
    owner, _ = new_user(ledger, "owner")
    poisoned = poison(ledger, clock, owner)
    traffic_after(ledger, clock, poisoned)
    ledger.projections.wait_current()
    checked = audit_positions(url)
    monkeypatch.setattr(audit_trail_module, "AUDIT_CHECK", lambda row, notes: row)
    monkeypatch.setattr(EventScreen, "__call__", lambda self, event: False)
    ledger.projections.batch_size = 1000

    ledger.projections.rebuild(["audit_trail"])

    problems = {e.position: e.problem for e in ledger.projections.errors("audit_trail")}
    bad_instant = [p for p, c in poisoned.problems.items() if c == "invalid_value"][1]
    assert problems[bad_instant] == "invalid_value"  # an int where an instant belongs
    refused = {p for p, code in problems.items() if code == REJECTED_BY_STORE}
    assert refused  # NULs reach jsonb
    written = audit_positions(url)
    assert written <= checked | set(poisoned.problems) | set(poisoned.audit_only)
    assert checked - written <= refused
    assert ledger.projections.status()[0].lag_events == 0
