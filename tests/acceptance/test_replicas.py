"""Two ``ledger serve`` processes reading from a streaming replica that replays late
(ADR 0023): what one host revokes, the other refuses as soon as it hears of it and from then
on; what one host mints, the other accepts at once; ``/metrics`` shows the replica."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from psycopg.conninfo import conninfo_to_dict

from ledger.adapters.postgres import embedded_server
from ledger.bootstrap import build_ledger
from ledger.config import Settings
from ledger.domain.clock import ManualClock
from tests.acceptance.service import Api, ServeProcess, TokenLog, wait_until
from tests.support.databases import fresh_database
from tests.support.replication import streaming_replica

ROUNDS = 20


@pytest.fixture(scope="module")
def hosts(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, ServeProcess, ServeProcess]]:
    """The primary's database and two services that read from a replica 500 ms behind."""
    base = tmp_path_factory.mktemp("replicated")
    with (
        embedded_server(base / "primary") as server,
        streaming_replica(server, base / "replica", apply_delay_ms=500) as replica,
    ):
        database = fresh_database(server)
        env = {
            "LEDGER_READ_DATABASE_URLS": replica.url(str(conninfo_to_dict(database)["dbname"])),
            "LEDGER_REPLICA_MAX_LAG_MS": "30000",
        }
        first = ServeProcess(database, base / "a.log", env=env)
        second = ServeProcess(database, base / "b.log", env=env)
        try:
            first.wait_ready()
            second.wait_ready()
            yield database, first, second
        finally:
            statuses = (first.stop(), second.stop())
        for process in (first, second):
            assert "Traceback" not in process.log_text()
        assert statuses == (0, 0)


def refused(api: Api, token: str) -> Callable[[], bool]:
    return lambda: api.get("/api/me", token=token).status_code == 401


def test_revoke_and_mint_through_one_host_hold_on_the_other(
    hosts: tuple[str, ServeProcess, ServeProcess], token_log: TokenLog
) -> None:
    database, first, second = hosts
    ledger = build_ledger(database, settings=Settings(pool_size=1))
    try:
        alice = ledger.create_user("alice")
    finally:
        ledger.close()
    a, b = Api(first.base_url, token_log), Api(second.base_url, token_log)
    try:
        for n in range(ROUNDS):
            created = a.post("/api/tokens", token=alice.token, json={"name": f"t{n}"})
            assert created.status_code == 201
            token, token_id = created.json()["token"], created.json()["id"]
            assert b.get("/api/me", token=token).status_code == 200  # at once, on the other
            assert a.delete(f"/api/tokens/{token_id}", token=alice.token).status_code == 204
            wait_until(
                refused(b, token), timeout=30, what="the other host to refuse the revoked token"
            )
            # From then on, never accepted again (the replica still has it valid for a while).
            assert [b.get("/api/me", token=token).status_code for _ in range(5)] == [401] * 5
        # The replica's figures (synced every 2 s) and the projections' lag.
        wait_until(
            lambda: 'ledger_replica_reads_total{source="primary"}' in b.get("/metrics").text,
            timeout=30,
            what="the read counters",
        )
        metrics = b.get("/metrics").text
        assert 'ledger_replica_up{replica="replica-0"} 1.0' in metrics
        assert 'ledger_replica_lag_seconds{replica="replica-0"}' in metrics
        assert "ledger_projection_lag_events" in metrics
    finally:
        a.close()
        b.close()


def test_hosts_reading_from_a_replica_keep_the_audit_read_after_write(
    hosts: tuple[str, ServeProcess, ServeProcess], token_log: TokenLog
) -> None:
    database, first, second = hosts
    ledger = build_ledger(
        database, settings=Settings(pool_size=1), clock=ManualClock(datetime.now(UTC))
    )
    try:
        alice = ledger.create_user("alice")
    finally:
        ledger.close()
    a, b = Api(first.base_url, token_log), Api(second.base_url, token_log)
    try:
        workspace = a.post("/api/workspaces", token=alice.token, json={"name": "acme"}).json()
        for _ in range(3):
            minted = a.post(f"/api/workspaces/{workspace['id']}/install-tokens", token=alice.token)
            assert minted.status_code == 201
            feed = b.get(f"/api/workspaces/{workspace['id']}/audit", token=alice.token).json()
            assert feed["events"][-1]["credential_id"] == minted.json()["id"]
    finally:
        a.close()
        b.close()


def test_the_log_names_no_replica_url(hosts: tuple[str, ServeProcess, ServeProcess]) -> None:
    database, first, _ = hosts
    password = str(conninfo_to_dict(database).get("password"))
    assert password not in first.log_text()
