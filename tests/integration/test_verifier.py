"""The cached verifier across processes: another process refuses a revoked token soon after."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from ledger.adapters.invalidation import CacheInvalidator
from ledger.application.verify import VerifierCache
from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain.errors import InvalidToken
from tests.support.principals import new_user

FOLLOWER = Path(__file__).with_name("verify_follower.py")


def test_a_revocation_in_one_process_is_seen_by_a_verifier_in_another(
    wall_clock_ledger: PostgresLedger, database_url: str
) -> None:
    ledger = wall_clock_ledger
    me, _ = new_user(ledger)
    minted = ledger.mint_personal_access_token(me, "watched", None)
    with subprocess.Popen(
        [sys.executable, str(FOLLOWER), database_url, minted.token],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as follower:
        try:
            assert follower.stdout is not None
            assert follower.stdout.readline().strip() == "cached"  # its cache holds the token
            ledger.revoke_personal_access_token(me, minted.info.id)
            # The follower prints "refused" when its verifier refuses the token; it gives up
            # (and prints "still accepted") after 30 s, far beyond the propagation bound.
            assert follower.stdout.readline().strip() == "refused"
            assert follower.wait(timeout=30) == 0
        finally:
            if follower.poll() is None:
                follower.kill()


def test_the_invalidator_survives_a_dropped_connection(
    wall_clock_ledger: PostgresLedger, database_url: str
) -> None:
    ledger = wall_clock_ledger
    me, _ = new_user(ledger)
    minted = ledger.mint_personal_access_token(me, "t", None)
    other = build_ledger(database_url, settings=Settings(pool_size=1))
    try:
        assert other.verify(minted.token).credential_id == minted.info.id
        with psycopg.connect(database_url, autocommit=True) as admin:
            # Cut every LISTENing session: the invalidators' connections.
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()"
            )
        # While the invalidator reconnects, the token is cached again and then revoked: the
        # invalidator must catch up from where it was, not from the log's end.
        other.verify(minted.token)
        ledger.revoke_personal_access_token(me, minted.info.id)
        deadline = time.monotonic() + 30
        while True:
            try:
                other.verify(minted.token)
            except InvalidToken:
                break
            assert time.monotonic() < deadline, "revocation never reached the other verifier"
            time.sleep(0.01)
    finally:
        other.close()


def test_the_invalidator_reads_for_other_processes_batches_not_its_own(
    wall_clock_ledger: PostgresLedger, database_url: str
) -> None:
    ledger = wall_clock_ledger
    me, _ = new_user(ledger)
    cache = VerifierCache(max_ttl=timedelta(seconds=60), max_entries=10)
    recorder = ledger.recorder
    invalidator = CacheInvalidator(
        database_url,
        cache,
        events_table=recorder.events_table_name,
        channel=recorder.channel_name,
        own_origin=recorder.origin,
        poll_s=3600,  # no periodic read within the test: only notifications start one
    )
    reads = 0
    real_catch_up = invalidator._catch_up

    def counting_catch_up(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        nonlocal reads
        reads += 1
        real_catch_up(conn)

    invalidator._catch_up = counting_catch_up  # type: ignore[method-assign]
    other = build_ledger(database_url, settings=Settings(pool_size=1))
    try:
        invalidator.start()
        reads = 0  # the first read at connection time
        ledger.mint_personal_access_token(me, "own", None)  # this process's batch: no read
        theirs = other.mint_personal_access_token(me, "theirs", None)  # another's: one read
        deadline = time.monotonic() + 30
        while invalidator.position is None or invalidator.position < head(database_url):
            assert time.monotonic() < deadline, "the other process's batch was never read"
            time.sleep(0.01)
        assert reads == 1
        assert theirs.info.id is not None
    finally:
        invalidator.stop()
        other.close()


def head(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT max(notification_id) FROM ledger_events").fetchone()
        assert row is not None
        return int(row[0])
