"""The projections on real PostgreSQL: the audit trail, the Credentials view, the runner."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain.clock import ManualClock
from ledger.domain.errors import CredentialNotFound, UnknownProjection
from ledger.projections import EVENT_TYPES, NAMES
from tests.integration.workload import run_workload
from tests.support.databases import fresh_database
from tests.support.principals import START, new_user

CREDENTIAL_COLUMNS = (
    "credential_id, kind, token_prefix, name, user_id, workspace_id, daemon_id, "
    "install_token_id, created_by, created_at, expires_at, revoked_at, revoked_reason, "
    "consumed_at, version"
)


def rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table, row for row, in a stable order."""
    with psycopg.connect(url) as conn:
        return {
            "audit": conn.execute("SELECT * FROM ledger_audit ORDER BY position").fetchall(),
            "credentials": conn.execute(
                "SELECT * FROM ledger_credentials_view ORDER BY credential_id"
            ).fetchall(),
        }


def test_history_lists_every_event_of_a_credential_with_actor_and_time(
    ledger: PostgresLedger, clock: ManualClock
) -> None:
    user, _ = new_user(ledger)
    minted = ledger.mint_personal_access_token(user, "cli", 3)
    clock.advance(timedelta(hours=1))
    ledger.renew_personal_access_token(minted.token)
    clock.advance(timedelta(hours=1))
    ledger.revoke_personal_access_token(user, minted.info.id)

    history = ledger.audit.history(minted.info.id)

    assert [e.type for e in history.events] == ["minted", "renewed", "revoked"]
    assert all(e.actor.type == "user" and e.actor.id == str(user.user_id) for e in history.events)
    assert [e.at for e in history.events] == [
        minted.info.created_at,
        minted.info.created_at + timedelta(hours=1),
        minted.info.created_at + timedelta(hours=2),
    ]
    renewed = history.events[1].to_json()
    assert renewed["expires_at_before"] == rfc3339(minted.info.created_at + timedelta(days=3))
    assert renewed["expires_at_after"] == rfc3339(
        clock.now() - timedelta(hours=1) + timedelta(days=90)
    )
    assert history.events[2].data == {"reason": "user_request"}
    state = history.credential
    assert state.revoked_at == clock.now()
    assert state.kind == "personal_access_token"
    assert state.token_prefix == minted.token[:12]
    assert minted.token not in str(history.to_json())


def test_exchange_and_cascade_appear_in_the_workspace_feed(ledger: PostgresLedger) -> None:
    owner, _ = new_user(ledger)
    admin, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "ws").id
    ledger.add_member(owner, workspace, admin.user_id, "admin")
    install = ledger.mint_install_token(admin, workspace)
    daemon = ledger.exchange_install_token(install.token, "host-1")
    ledger.remove_member(owner, workspace, admin.user_id)

    page = ledger.audit.events(workspace=workspace)

    assert [(e.type, e.credential_id) for e in page.events] == [
        ("member_added", None),
        ("member_added", None),
        ("minted", install.id),
        ("consumed", install.id),
        ("minted", daemon.token_id),
        ("member_removed", None),
        ("revoked", daemon.token_id),
    ]
    assert page.next_cursor is None
    consumed = page.events[3]
    assert consumed.data == {"daemon_token_id": str(daemon.token_id)}
    assert consumed.actor.type == "daemon"
    assert page.events[-1].data == {"reason": "member_removed"}
    assert page.events[-1].user_id == admin.user_id  # the issuer
    assert page.events[-2].to_json()["role"] == "admin"
    history = ledger.audit.history(daemon.token_id)
    assert history.credential.install_token_id == install.id
    assert history.credential.daemon_id == "host-1"


def test_a_query_after_a_command_sees_it_with_the_live_runner_running(
    ledger: PostgresLedger,
) -> None:
    ledger.projections.start()
    user, _ = new_user(ledger)
    for _ in range(20):
        minted = ledger.mint_personal_access_token(user, "t", None)
        assert [e.type for e in ledger.audit.history(minted.info.id).events] == ["minted"]
        ledger.revoke_personal_access_token(user, minted.info.id)
        assert ledger.audit.history(minted.info.id).events[-1].type == "revoked"


def test_history_of_an_unknown_credential_is_not_found(ledger: PostgresLedger) -> None:
    with pytest.raises(CredentialNotFound):
        ledger.audit.history(uuid4())


def test_unknown_projection_name_is_refused(ledger: PostgresLedger) -> None:
    with pytest.raises(UnknownProjection):
        ledger.projections.rebuild(["nope"])


def test_rebuild_equals_live_row_for_row_after_a_random_workload(
    server_url: str, settings: Settings
) -> None:
    url = fresh_database(server_url)
    clock = ManualClock(START)
    small = Settings(**{**settings.model_dump(), "projection_batch_size": 7})
    ledger = build_ledger(url, settings=small, clock=clock)
    try:
        ledger.projections.start()
        run_workload(ledger, clock, random.Random(7), 250)
        ledger.projections.wait_current()
        live = snapshot(url)
        assert {row[5] for row in live["audit"]} == set(EVENT_TYPES)  # every kind of row
        ledger.projections.rebuild()
        assert snapshot(url) == live
        # The event-built Credentials view agrees with the inline auth table.
        with psycopg.connect(url) as conn:
            inline = conn.execute(
                f"SELECT {CREDENTIAL_COLUMNS} FROM ledger_credentials ORDER BY credential_id"
            ).fetchall()
            view = conn.execute(
                f"SELECT {CREDENTIAL_COLUMNS} FROM ledger_credentials_view ORDER BY credential_id"
            ).fetchall()
        assert view == inline
        status = {s.name: s for s in ledger.projections.status()}
        assert set(status) == set(NAMES)
        assert all(s.lag_events == 0 and s.position == s.head for s in status.values())
    finally:
        ledger.close()
