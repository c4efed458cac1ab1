"""Several ``ledger serve`` processes, the store going away, start-up checks, logs, metrics.

The drain test stops its clients when it sends SIGTERM: a client that keeps sending on a
keep-alive connection after SIGTERM can be served by one worker until uvicorn's graceful-shutdown
timeout (30 s), whose cancelled request then gets uvicorn's own plain-text 500 (the cause inside
uvicorn is not pinned down).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from ledger.adapters.postgres import with_database
from ledger.bootstrap import build_ledger
from ledger.config import Settings
from tests.acceptance.service import (
    STOP_TIMEOUT_S,
    Api,
    ServeProcess,
    TokenLog,
    error_of,
    wait_until,
)
from tests.support.databases import fresh_database
from tests.support.world import Operator, World


@pytest.fixture(scope="module")
def second_service(
    service_database: str, tmp_path_factory: pytest.TempPathFactory, token_log: TokenLog
) -> Iterator[ServeProcess]:
    """Another ``ledger serve`` on the session's database."""
    process = ServeProcess(service_database, tmp_path_factory.mktemp("second") / "serve.log")
    try:
        process.wait_ready()
        yield process
    finally:
        assert process.stop() == 0
    assert token_log.found_in(process.log_text()) == []


def test_a_second_process_sees_a_revocation_made_through_the_first(
    api: Api, second_service: ServeProcess, operator: Operator, token_log: TokenLog
) -> None:
    other = Api(second_service.base_url, token_log)
    try:
        user = operator.user()
        minted = api.post("/api/tokens", token=user.token, json={"name": "shared"}).json()
        # The second process has verified the token: it is in its cache.
        assert other.get("/api/me", token=minted["token"]).status_code == 200
        assert other.get("/api/me", token=minted["token"]).status_code == 200
        assert api.delete(f"/api/tokens/{minted['id']}", token=user.token).status_code == 204
        revoked_at = time.monotonic()
        wait_until(
            lambda: other.get("/api/me", token=minted["token"]).status_code == 401,
            timeout=5.0,
            interval=0.002,
            what="the second process to refuse the revoked token",
        )
        assert time.monotonic() - revoked_at < 5.0
        answer = other.get("/api/me", token=minted["token"])
        assert error_of(answer) == (401, "invalid token")
    finally:
        other.close()


def test_serve_refuses_to_start_on_an_unmigrated_database(postgres_url: str) -> None:
    url = fresh_database(postgres_url, migrate=False)
    result = subprocess.run(
        [sys.executable, "-m", "ledger", "serve", "--port", "0"],
        env={"LEDGER_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "service unavailable" in result.stderr
    assert "ledger migrate" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    with psycopg.connect(url) as conn:  # and it created nothing
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert tables == (0,)


def _allow_connections(postgres_url: str, dbname: str, *, allow: bool) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(dbname), sql.SQL("true" if allow else "false")
            )
        )
        if not allow:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (dbname,),
            )


def test_store_unavailable_is_503_and_readiness_follows(
    postgres_url: str,
    tmp_path: Path,
    token_log: TokenLog,
    operator: Operator,
) -> None:
    url = fresh_database(postgres_url)
    dbname = str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])
    process = ServeProcess(url, tmp_path / "serve.log", env={"LEDGER_LOCK_TIMEOUT_S": "1"})
    api = Api(process.base_url, token_log)
    try:
        process.wait_ready()
        assert with_database(postgres_url, dbname) == url
        _allow_connections(postgres_url, dbname, allow=False)
        # A token this process never saw: verifying it needs the store.
        unknown = operator.user().token
        answer = api.get("/api/me", token=unknown)
        assert error_of(answer) == (503, "service unavailable"), answer.text
        ready = api.get("/readyz")
        assert error_of(ready) == (503, "service unavailable")
        _allow_connections(postgres_url, dbname, allow=True)
        wait_until(
            lambda: api.get("/readyz").status_code == 200,
            timeout=30,
            interval=0.1,
            what="readiness to come back",
        )
    finally:
        _allow_connections(postgres_url, dbname, allow=True)
        api.close()
        status = process.stop()
    log = process.log_text()
    assert status == 0, log[-3000:]
    assert token_log.found_in(log) == []


def test_no_raw_token_reaches_the_log(
    api: Api, world: World, service: ServeProcess, token_log: TokenLog
) -> None:
    """Tokens in headers, bodies, paths and request ids, in good and bad requests; then the
    log of the session's service holds none of the tokens any test saw so far."""
    tokens = [world.owner.token, world.daemon_token, world.install_token]
    for token in tokens:
        api.get(f"/api/tokens/{token}", token=token)  # a token pasted into a path
        api.delete(f"/api/tokens/{token}", token=token)
        api.get("/api/me", token=token, headers={"X-Request-ID": token[:40]})
        api.post("/api/install-tokens/exchange", json={"token": token, "daemon_id": "d"})
        api.post("/api/install-tokens/exchange", content=f'{{"token": "{token}"'.encode())
        api.post("/api/tokens/current/renew", token=token)
        api.post("/api/tokens", token=world.owner.token, json={"name": token})
    minted = api.post("/api/tokens", token=world.owner.token, json={"name": "x"}).json()
    assert minted["token"] in token_log.tokens
    # The service writes each access line when the answer is sent: wait for the last one.
    wait_until(lambda: minted["id"] in api.get("/api/tokens", token=world.owner.token).text)
    log = wait_until(
        lambda: service.log_text().count("POST /api/tokens 201") > 0 and service.log_text(),
        what="the access log lines",
    )
    assert isinstance(log, str)
    lines = log.splitlines()
    assert any('"request_id"' in line and "/api/tokens/{token_id}" in line for line in lines)
    assert token_log.found_in(log) == []
    assert not re.search(r"(mul|mdt|mit)_[A-Za-z0-9]{20,}", log)


def test_metrics_expose_requests_commands_cache_and_batches(api: Api, world: World) -> None:
    api.get("/api/me", token=world.owner.token)
    api.post("/api/install-tokens/exchange", json={"token": world.install_token, "daemon_id": "m"})
    api.post("/api/install-tokens/exchange", json={"token": world.install_token, "daemon_id": "m"})
    text = api.get("/metrics").text
    for series in (
        'ledger_http_requests_total{method="GET",route="/api/me",status="200"}',
        "ledger_http_request_duration_seconds_bucket",
        'ledger_commands_total{command="exchange",outcome="ok"}',
        'ledger_commands_total{command="exchange",outcome="install_token_already_used"}',
        'ledger_verify_cache_lookups_total{result="hit"}',
        "ledger_verify_cache_hit_ratio",
        "ledger_write_batch_commands_bucket",
    ):
        assert series in text, series
    ratio = re.search(r"^ledger_verify_cache_hit_ratio ([0-9.e+-]+)$", text, re.MULTILINE)
    assert ratio is not None and 0 < float(ratio.group(1)) <= 1


def test_answers_are_not_held_back_by_nagle(api: Api) -> None:
    """With several workers, connections have TCP_NODELAY (server.NoDelayH11Protocol): without
    it every answer waited ~40 ms for the client's delayed ACK."""
    timings = []
    for _ in range(21):
        started = time.perf_counter()
        assert api.get("/healthz").status_code == 200
        timings.append(time.perf_counter() - started)
    assert sorted(timings)[10] < 0.030


def test_sigterm_drains_in_flight_requests_and_flushes_the_ledger(
    postgres_url: str, tmp_path: Path, token_log: TokenLog
) -> None:
    """Requests answered during shutdown were committed; nothing answered 5xx; the
    ``last_used_at`` buffer (written every 30 s) was flushed by ``Ledger.close()``."""
    url = fresh_database(postgres_url)
    process = ServeProcess(url, tmp_path / "serve.log", workers=2)
    process.wait_ready()
    clients = [Api(process.base_url, token_log) for _ in range(8)]
    try:
        setup = build_ledger(url, settings=Settings(pool_size=1))
        try:
            user = setup.create_user("drain")
        finally:
            setup.close()
        token_log.add(user.token)
        assert clients[0].get("/api/me", token=user.token).status_code == 200  # noted, unflushed
        answers: list[tuple[int, str | None]] = []
        stop = threading.Event()

        def mint(api: Api) -> None:
            while not stop.is_set():
                try:
                    response = api.post("/api/tokens", token=user.token, json={"name": "d"})
                except httpx.TransportError:
                    return  # a request sent on a connection the server was closing
                answers.append((response.status_code, response.json().get("id")))

        threads = [threading.Thread(target=mint, args=(api,)) for api in clients]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(answers) >= 20, what="requests in flight")
        process.process.send_signal(signal.SIGTERM)
        # The clients send nothing new (see the module's note on keep-alive); what they have in
        # flight must still be answered.
        stop.set()
        for thread in threads:
            thread.join()
        assert process.process.wait(STOP_TIMEOUT_S) == 0
    finally:
        for api in clients:
            api.close()
        process.stop()
    assert {status for status, _ in answers} == {201}
    minted = {token_id for _, token_id in answers}
    with psycopg.connect(url) as conn:
        stored = {
            str(row[0])
            for row in conn.execute(
                "SELECT credential_id FROM ledger_credentials WHERE name = 'd'"
            ).fetchall()
        }
        last_used = conn.execute(
            "SELECT last_used_at FROM ledger_credentials WHERE name = 'initial token' "
            "AND user_id = %s",
            (user.user_id,),
        ).fetchone()
    assert minted <= stored
    assert last_used is not None and last_used[0] is not None
    assert "Traceback" not in process.log_text()
