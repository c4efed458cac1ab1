"""Writes without a lock (docs/adr/0018): real parallel writers in several processes, readers
following the log meanwhile; and revocation that does not wait for the log's horizon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql

from ledger.adapters.log_order import (
    HORIZON_QUERY,
    START,
    LogPosition,
    after_horizon_page,
    newest_below_query,
    newest_committed_query,
)
from ledger.bootstrap import build_ledger
from ledger.config import Settings
from ledger.domain.errors import InvalidToken, ServiceUnavailable
from tests.integration.parallel_writer import write
from tests.integration.test_projections import snapshot
from tests.integration.test_rebuild import inline_and_view
from tests.support.databases import fresh_database
from tests.support.principals import new_user

WRITER = Path(__file__).with_name("parallel_writer.py")
THREADS = 8
PROCESSES = 2
MINTS = int(os.environ.get("LEDGER_TEST_PARALLEL_MINTS", "800"))
"""Mints per writer thread (each fourth one also revoked): 3 processes x 8 threads x 800 x 1.25
is 24,000 commands, plus a user per process."""


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``condition`` (a bounded wait on a state, not a sleep standing in for one)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


class LogFollower(threading.Thread):
    """Follows the log by the horizon rule on its own connection and records every position
    it reads, in order."""

    def __init__(self, url: str, page: int) -> None:
        super().__init__(name="log-follower", daemon=True)
        self._url = url
        self._limit = page
        self._query = after_horizon_page(sql.Identifier("ledger_events"), sql.SQL("1"))
        self.seen: list[LogPosition] = []
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self._url, autocommit=True) as conn:
                position = START
                while True:
                    finishing = self.done.is_set()
                    horizon = conn.execute(HORIZON_QUERY).fetchone()
                    assert horizon is not None
                    while True:
                        rows = conn.execute(
                            self._query, (*position, horizon[0], self._limit)
                        ).fetchall()
                        self.seen.extend(LogPosition(x, n) for _, x, n in rows)
                        if rows:
                            position = self.seen[-1]
                        if len(rows) < self._limit:
                            break
                    if finishing:
                        return
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error


def whole_log(url: str) -> list[LogPosition]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT transaction_id::text::bigint, notification_id FROM ledger_events "
            "ORDER BY transaction_id, notification_id"
        ).fetchall()
    return [LogPosition(x, n) for x, n in rows]


def horizon_passed(url: str) -> bool:
    """Whether every committed event is below the horizon."""
    with psycopg.connect(url, autocommit=True) as conn:
        horizon = conn.execute(HORIZON_QUERY).fetchone()
        newest = conn.execute(
            "SELECT coalesce(max(transaction_id)::text::bigint, 0) FROM ledger_events"
        ).fetchone()
    assert horizon is not None and newest is not None
    return bool(horizon[0] > newest[0])


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT topic, count(*) FROM ledger_events GROUP BY topic ORDER BY topic"
        ).fetchall()
    return {topic.rsplit(".", 1)[-1].split(":")[-1]: int(n) for topic, n in rows}


def test_parallel_writers_in_three_processes_and_readers_miss_and_repeat_nothing(
    server_url: str,
) -> None:
    url = fresh_database(server_url)
    settings = Settings(pool_size=8, lock_timeout_s=30, writer_threads=4)
    ledger = build_ledger(url, settings=settings)
    followers = [LogFollower(url, 97), LogFollower(url, 1000)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    processes = [
        subprocess.Popen(
            [sys.executable, str(WRITER), url, str(THREADS), str(MINTS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for follower in followers:
            follower.start()
        ledger.projections.start()
        minted, revoked = write(ledger, THREADS, MINTS)
        for process in processes:
            stdout, stderr = process.communicate(timeout=600)
            assert process.returncode == 0, stderr
            other: dict[str, list[str]] = json.loads(stdout)
            minted += [UUID(i) for i in other["minted"]]
            revoked += [UUID(i) for i in other["revoked"]]
        wait_for(lambda: horizon_passed(url))
        for follower in followers:
            follower.done.set()
        for follower in followers:
            follower.join(timeout=60)
            assert follower.error is None, follower.error

        log = whole_log(url)
        commands = len(minted) + len(revoked) + PROCESSES + 1  # and the users
        assert commands >= (PROCESSES + 1) * THREADS * MINTS
        # Every acknowledged command wrote its events, nothing else was written (a refused
        # command leaves nothing behind).
        assert counts(url) == {
            "Created": PROCESSES + 1,
            "Minted": len(minted),
            "Revoked": len(revoked),
        }
        assert len(set(minted)) == len(minted)
        # Several write transactions were really in flight at once: notification ids did not
        # commit in order, and the log's order differs from theirs.
        assert [p.notification_id for p in log] != sorted(p.notification_id for p in log)
        # Every reader saw every event exactly once, in the one order of the log.
        for follower in followers:
            assert follower.seen == log
        # The projections (fed by the live runner meanwhile) equal a rebuild, and the
        # credentials view equals the auth table the writes kept.
        ledger.projections.wait_current()
        live = snapshot(url)
        assert len(live["credentials"]) == len(minted)
        inline, view = inline_and_view(url)
        assert view == inline
        assert len(live["audit"]) == len(log)  # every event, user_created included
        ledger.projections.rebuild()
        assert snapshot(url) == live
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
        for follower in followers:
            follower.done.set()
        ledger.close()


@pytest.fixture
def held_transaction(server_url: str) -> Any:
    """A transaction with an id, open in another database of the cluster: it holds back the
    horizon of every database."""
    with psycopg.connect(server_url) as conn:
        conn.execute("SELECT pg_current_xact_id()")
        yield conn
        conn.rollback()


def test_revocations_propagate_while_a_transaction_elsewhere_holds_the_horizon(
    server_url: str, held_transaction: psycopg.Connection[Any]
) -> None:
    url = fresh_database(server_url)
    settings = Settings(pool_size=4, audit_wait_s=0.2)
    writer = build_ledger(url, settings=settings)
    # A cache that nothing but an eviction empties within the test, and a backstop that the
    # held horizon keeps from reading the revocation.
    follower = build_ledger(url, settings=Settings(pool_size=2, verify_cache_max_ttl_s=3600))
    try:
        me, _ = new_user(writer)
        tokens = [writer.mint_personal_access_token(me, f"t{i}") for i in range(5)]
        for token in tokens:
            assert follower.verify(token.token).credential_id == token.info.id
        assert follower.verifier.cache.stats.misses >= len(tokens)
        for token in tokens:
            writer.revoke_personal_access_token(me, token.info.id)

        def refused(raw: str) -> bool:
            try:
                follower.verify(raw)
            except InvalidToken:
                return True
            return False

        wait_for(lambda: all(refused(t.token) for t in tokens))
        # Meanwhile the projections wait for the horizon: an audit query answers 503 quickly.
        status = writer.projections.horizon()
        assert status.holder_pid == held_transaction.info.backend_pid
        assert status.behind_events >= len(tokens)
        with pytest.raises(ServiceUnavailable):
            writer.audit.history(tokens[0].info.id)
        held_transaction.rollback()
        history = writer.audit.history(tokens[0].info.id)
        assert [e.type for e in history.events] == ["minted", "revoked"]
        assert writer.projections.horizon().behind_events == 0
    finally:
        follower.close()
        writer.close()


def test_an_idle_transaction_of_the_ledger_is_ended_by_the_server(server_url: str) -> None:
    url = fresh_database(server_url)
    ledger = build_ledger(url, settings=Settings(pool_size=2, idle_in_transaction_timeout_s=0.2))
    try:
        with ledger.credentials_pool.connection() as conn:
            conn.autocommit = False
            conn.execute("SELECT pg_current_xact_id()")
            pid = conn.info.backend_pid

            def gone() -> bool:
                with psycopg.connect(url) as admin:
                    row = admin.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)
                    ).fetchone()
                return row is not None and row[0] == 0

            wait_for(gone, timeout=30)
            with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
                conn.execute("SELECT 1")
    finally:
        ledger.close()


def test_the_timeouts_are_set_on_the_ledgers_connections(database_url: str) -> None:
    ledger = build_ledger(
        database_url,
        settings=Settings(pool_size=1, idle_in_transaction_timeout_s=7, transaction_timeout_s=90),
    )
    try:
        with ledger.credentials_pool.connection() as conn:
            idle = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
            assert idle == ("7s",)
            if conn.info.server_version >= 170000:
                total = conn.execute("SHOW transaction_timeout").fetchone()
                assert total == ("90s",)
        with ledger.recorder.datastore.get_connection() as library:
            row = library.execute("SHOW idle_in_transaction_session_timeout").fetchone()
            assert row is not None
            assert list(row.values()) == ["7s"]
    finally:
        ledger.close()


def test_log_reads_order_by_the_table_columns_not_their_casts(database_url: str) -> None:
    """Every statement that reads the log in its order sorts, if at all, by the columns the
    index holds: an output column named ``transaction_id`` (the ``bigint`` cast) would make
    ``ORDER BY`` sort every row by the cast instead of walking the index."""
    table = sql.Identifier("ledger_events")
    statements = [
        (after_horizon_page(table, sql.SQL("originator_id")), (0, 0, 10**12, 10)),
        (newest_below_query(table), (10**12,)),
        (newest_committed_query(table), ()),
    ]
    with psycopg.connect(database_url) as conn:
        for statement, params in statements:
            plan = [row[0] for row in conn.execute("EXPLAIN VERBOSE " + statement, params)]
            sort_keys = [line for line in plan if "Sort Key" in line]
            assert all("::text" not in key for key in sort_keys), plan
