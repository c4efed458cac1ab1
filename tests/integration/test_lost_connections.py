"""Connections whose backend went away are found before a caller uses them.

``pg_terminate_backend`` does to one backend what a server restart does to all of them: the
backend sends its farewell and closes the socket, while the client's connection sits idle in a
pool (or held by the writer). Each test uses a database of its own, so that terminating every
backend on it touches no other test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from ledger.adapters.postgres import LivenessCheck, connection_is_dead, connection_pool
from ledger.adapters.recorder import LedgerRecorder
from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain import TokenKind
from ledger.domain.clock import ManualClock
from ledger.domain.errors import InvalidToken
from ledger.domain.tokens import issue
from tests.acceptance.service import wait_until
from tests.support.databases import fresh_database

ALL_KINDS = {TokenKind.PERSONAL_ACCESS_TOKEN, TokenKind.DAEMON_TOKEN, TokenKind.INSTALL_TOKEN}


@pytest.fixture
def own_database(server_url: str) -> str:
    return fresh_database(server_url)


def terminate_backends(database_url: str) -> int:
    """Terminate every other backend connected to the database; how many there were."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        pids = [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
        conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        # pg_terminate_backend only signals: wait until those backends are gone (new ones,
        # from reconnecting clients, may already be there).
        wait_until(
            lambda: (
                conn.execute(
                    "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = ANY(%s))", (pids,)
                ).fetchone()
                == (True,)
            ),
            timeout=30,
            what="the terminated backends to exit",
        )
    return len(pids)


def test_connection_is_dead_tells_a_live_connection_from_a_terminated_one(
    own_database: str,
) -> None:
    with psycopg.connect(own_database, autocommit=True) as live:
        assert not connection_is_dead(live)
        assert not live.closed
        assert terminate_backends(own_database) == 1
        assert connection_is_dead(live)
        assert live.closed  # a dead connection is closed, so a pool discards it


def test_a_notice_on_an_idle_connection_does_not_make_it_dead(own_database: str) -> None:
    """Something arriving on an idle connection is confirmed with a query, not trusted."""
    with (
        psycopg.connect(own_database, autocommit=True) as listener,
        psycopg.connect(own_database, autocommit=True) as sender,
    ):
        listener.execute("LISTEN liveness_test")
        sender.execute("NOTIFY liveness_test")
        assert not connection_is_dead(listener)
        assert listener.execute("SELECT 1").fetchone() == (1,)


def test_the_pool_replaces_every_dead_connection_at_the_first_checkout(
    own_database: str,
) -> None:
    pool = connection_pool(own_database, Settings(pool_size=4), name="test-liveness")
    try:
        # Four connections, all idle in the pool.
        held = [pool.getconn() for _ in range(4)]
        for conn in held:
            pool.putconn(conn)
        assert terminate_backends(own_database) == 4
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        # The first checkout found all four dead, not one per caller.
        assert pool.get_stats().get("connections_lost", 0) >= 3
        for _ in range(4):
            with pool.connection() as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pool.close()


@pytest.fixture
def ledger(own_database: str) -> Iterator[PostgresLedger]:
    app = build_ledger(
        own_database,
        settings=Settings(pool_size=2),
        clock=ManualClock(datetime.now(UTC)),
    )
    try:
        yield app
    finally:
        app.close()


def test_the_ledger_survives_its_backends_being_terminated(
    ledger: PostgresLedger, own_database: str
) -> None:
    recorder = ledger.recorder
    assert isinstance(recorder, LedgerRecorder)
    assert isinstance(recorder.datastore.pool._check, LivenessCheck)
    created = ledger.create_user("before")
    principal = ledger.verify(created.token, ALL_KINDS)
    with pytest.raises(InvalidToken):
        ledger.verify(issue(TokenKind.PERSONAL_ACCESS_TOKEN).raw, ALL_KINDS)

    # The read pool's connection and the writer's held one, at least.
    assert terminate_backends(own_database) >= 2

    # A write (the writer's held connection), verify misses (the read pool) and an aggregate
    # load (the read pool) all succeed at the first try.
    again = ledger.create_user("after")
    minted = ledger.mint_personal_access_token(principal, "after restart")
    with pytest.raises(InvalidToken):
        ledger.verify(issue(TokenKind.PERSONAL_ACCESS_TOKEN).raw, ALL_KINDS)
    assert ledger.verify(again.token, ALL_KINDS).user_id == again.user_id
    assert ledger.verify(minted.token, ALL_KINDS).user_id == principal.user_id
