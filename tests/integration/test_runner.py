"""The projection runner as a process: killed between batches, restarted, disconnected."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg

from ledger.bootstrap import build_ledger
from ledger.config import Settings
from ledger.domain.clock import ManualClock
from ledger.projections.runner import LISTENER_NAME
from tests.integration.test_projections import snapshot
from tests.integration.workload import run_workload
from tests.support.databases import fresh_database
from tests.support.principals import START, new_user


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` (a bounded wait on a state, not a sleep standing in for one)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.002)


def tracked(url: str) -> int:
    """The audit trail's position (an ordinal: events are numbered 1, 2, ... in log order)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT position FROM ledger_audit_tracking").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def head(url: str) -> int:
    """The ordinal of the newest event (in a database written after migration 0004 only: the
    number of events)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM ledger_events").fetchone()
    assert row is not None
    return int(row[0])


def rows_beyond_tracking(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ledger_audit, ledger_audit_tracking "
            "WHERE ledger_audit.position > ledger_audit_tracking.position"
        ).fetchone()
    assert row is not None
    return int(row[0])


def start_runner(url: str, batch_size: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": url,
        "LEDGER_PROJECTION_BATCH_SIZE": str(batch_size),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ledger", "projections", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_runner_killed_between_batches_resumes_with_nothing_lost_or_doubled(
    server_url: str, settings: Settings
) -> None:
    url = fresh_database(server_url)
    clock = ManualClock(START)
    ledger = build_ledger(url, settings=settings, clock=clock)
    try:
        run_workload(ledger, clock, random.Random(11), 150)
        user, _ = new_user(ledger)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: ledger.mint_personal_access_token(user, f"t{i}"), range(1500)))
        newest = head(url)
        kills = []
        for _ in range(3):
            before = tracked(url)
            runner = start_runner(url, batch_size=2)
            try:
                wait_for(lambda before=before: tracked(url) > before + 20)  # type: ignore[misc]
                runner.send_signal(signal.SIGKILL)
            finally:
                runner.communicate(timeout=30)
            kills.append(tracked(url))
            # What committed is exactly what the tracking row says: no row beyond it.
            assert rows_beyond_tracking(url) == 0
        assert 0 < kills[0] < kills[1] < kills[2] < newest, kills  # every kill was mid-way
        ledger.projections.catch_up()
        resumed = snapshot(url)
        ledger.projections.rebuild()
        assert snapshot(url) == resumed
        assert len(resumed["credentials"]) >= 1500
    finally:
        ledger.close()


def test_projections_run_stops_cleanly_on_sigterm(server_url: str) -> None:
    url = fresh_database(server_url)
    runner = start_runner(url, batch_size=100)
    try:
        assert runner.stdout is not None
        assert "following the event store" in runner.stdout.readline()
        runner.send_signal(signal.SIGTERM)
        stdout, stderr = runner.communicate(timeout=30)
    finally:
        runner.kill()
    assert runner.returncode == 0, stderr
    assert "stopped" in stdout
    assert "Traceback" not in stderr


def test_the_live_runner_reconnects_after_its_connection_is_killed(
    server_url: str, settings: Settings
) -> None:
    url = fresh_database(server_url)
    ledger = build_ledger(url, settings=settings, clock=ManualClock(START))
    try:
        ledger.projections.start()
        user, _ = new_user(ledger)
        first = ledger.mint_personal_access_token(user, "before")
        wait_for(lambda: tracked(url) >= head(url))
        with psycopg.connect(url, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s",
                (LISTENER_NAME,),
            ).fetchall()
        assert killed == [(True,)]
        second = ledger.mint_personal_access_token(user, "after")
        # No query here catches up by itself: only the reconnected runner can move the position.
        wait_for(lambda: tracked(url) >= head(url))
        with psycopg.connect(url) as conn:
            ids = {r[0] for r in conn.execute("SELECT credential_id FROM ledger_audit").fetchall()}
        assert {first.info.id, second.info.id} <= ids
    finally:
        ledger.close()
