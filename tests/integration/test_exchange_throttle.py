"""The public exchange's throttle, failed-authentication metrics and logs, and the expiring
gauge, in-process (``create_app`` with a manual clock: windows move without sleeping)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain.clock import ManualClock
from ledger.entrypoints.http.app import create_app
from tests.support.principals import new_user

LIMIT = 3
EXCHANGE = "/api/install-tokens/exchange"


@pytest.fixture
def throttled(database_url: str, clock: ManualClock) -> Iterator[PostgresLedger]:
    settings = Settings(
        pool_size=2,
        exchange_failures_per_minute=LIMIT,
        trusted_proxy_header="X-Forwarded-For",
    )
    ledger = build_ledger(database_url, settings=settings, clock=clock)
    try:
        yield ledger
    finally:
        ledger.close()


@pytest.fixture
def client(throttled: PostgresLedger) -> Iterator[TestClient]:
    with TestClient(create_app(throttled), raise_server_exceptions=False) as test_client:
        yield test_client


def exchange(client: TestClient, address: str, token: str, daemon_id: str = "box") -> Any:
    return client.post(
        EXCHANGE,
        json={"token": token, "daemon_id": daemon_id},
        headers={"X-Forwarded-For": address},
    )


def unknown_install_token(ledger: PostgresLedger) -> str:
    """Install-token text that fails its checksum (400 ``invalid_install_token``)."""
    owner, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "spare")
    return ledger.mint_install_token(owner, workspace.id).token + "x"  # fails its checksum


def metric(client: TestClient, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    wanted = "".join(f'(?=[^}}]*{k}="{re.escape(v)}")' for k, v in labels.items())
    pattern = rf"^{name}\{{{wanted}[^}}]*\}} (\S+)$" if labels else rf"^{name} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_failed_exchanges_past_the_limit_answer_429_until_the_minute_has_passed(
    throttled: PostgresLedger,
    client: TestClient,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, _ = new_user(throttled)
    workspace = throttled.create_workspace(owner, "acme")
    valid = throttled.mint_install_token(owner, workspace.id)
    bad = unknown_install_token(throttled)
    answers = [exchange(client, "203.0.113.7", bad).status_code for _ in range(LIMIT)]
    answers.append(exchange(client, "203.0.113.7", "mit_" + "A" * 36).status_code)
    assert answers == [400, 400, 400, 429]
    clock.advance(timedelta(seconds=20))
    calls: list[object] = []
    real = throttled.exchange_install_token

    def spy(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(throttled, "exchange_install_token", spy)
    refused = exchange(client, "203.0.113.7", valid.token)
    assert refused.status_code == 429
    assert refused.json()["error"] == "too many requests"
    assert refused.headers["Retry-After"] == "40"
    assert calls == []  # refused before the ledger (and its store) was asked anything
    # Another address is not affected: its exchange of the same token succeeds.
    assert exchange(client, "198.51.100.2", valid.token).status_code == 200
    assert len(calls) == 1
    clock.advance(timedelta(seconds=40))
    assert exchange(client, "203.0.113.7", bad).status_code == 400  # the minute has passed


def test_a_401_counts_as_a_failed_exchange_and_a_success_does_not(
    throttled: PostgresLedger, client: TestClient
) -> None:
    owner, _ = new_user(throttled)
    workspace = throttled.create_workspace(owner, "acme")
    used = throttled.mint_install_token(owner, workspace.id)
    for i in range(LIMIT):
        fresh = throttled.mint_install_token(owner, workspace.id)
        assert exchange(client, "192.0.2.50", fresh.token, f"d{i}").status_code == 200
    assert exchange(client, "192.0.2.50", used.token).status_code == 200
    for _ in range(LIMIT):
        assert exchange(client, "192.0.2.50", used.token, "other").status_code == 401
    assert exchange(client, "192.0.2.50", used.token, "other").status_code == 429


def test_failed_authentications_are_counted_by_route_and_reason_and_logged(
    throttled: PostgresLedger, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    _, token = new_user(throttled)
    before = metric(client, "ledger_auth_failures_total", route="/api/me", reason="invalid token")
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    with caplog.at_level(logging.INFO, logger="ledger.http.auth"):
        answer = client.get(
            "/api/me",
            headers={"Authorization": f"Bearer {forged}", "X-Forwarded-For": "192.0.2.9"},
        )
    assert answer.status_code == 401
    after = metric(client, "ledger_auth_failures_total", route="/api/me", reason="invalid token")
    assert after == before + 1
    [record] = [r for r in caplog.records if r.name == "ledger.http.auth"]
    assert vars(record)["token_prefix"] == forged[:12]
    assert vars(record)["client"] == "192.0.2.9"
    assert vars(record)["route"] == "/api/me"
    assert forged not in caplog.text and token not in caplog.text


def test_the_gauge_counts_tokens_expiring_within_seven_days(
    throttled: PostgresLedger, client: TestClient, clock: ManualClock
) -> None:
    kind = {"kind": "personal_access_token"}
    before = metric(client, "ledger_tokens_expiring_soon", **kind)
    me, _ = new_user(throttled)
    throttled.mint_personal_access_token(me, "soon", 6)
    throttled.mint_personal_access_token(me, "later", 8)
    assert metric(client, "ledger_tokens_expiring_soon", **kind) == before  # cached a while
    clock.advance(timedelta(seconds=16))
    assert metric(client, "ledger_tokens_expiring_soon", **kind) == before + 1
