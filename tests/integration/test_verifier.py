"""The cached verifier across processes: another process refuses a revoked token soon after."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from uuid import UUID

import psycopg

from ledger.adapters.invalidation import CacheInvalidator
from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain.errors import InvalidToken
from tests.support.principals import new_user

FOLLOWER = Path(__file__).with_name("verify_follower.py")


class RecordingCache:
    """Records what an invalidator evicts."""

    def __init__(self) -> None:
        self.evicted: list[UUID] = []
        self.cleared = 0

    def evict(self, credential_ids: Iterable[UUID]) -> None:
        self.evicted.extend(credential_ids)

    def clear(self) -> None:
        self.cleared += 1


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


def test_announcements_evict_at_once_and_the_log_is_only_the_backstop(
    wall_clock_ledger: PostgresLedger, database_url: str
) -> None:
    ledger = wall_clock_ledger
    me, _ = new_user(ledger)
    minted = ledger.mint_personal_access_token(me, "watched", None)
    cache = RecordingCache()
    recorder = ledger.recorder
    invalidator = CacheInvalidator(
        database_url,
        cache,
        events_table=recorder.events_table_name,
        channel=recorder.channel_name,
        own_origin=recorder.origin,
        poll_s=3600,  # no backstop read within the test: only announcements evict
    )
    other = build_ledger(database_url, settings=Settings(pool_size=1))
    try:
        invalidator.start()
        assert invalidator.backstop_reads == 1  # the first read at connection time
        own = ledger.mint_personal_access_token(me, "own", None)  # this origin: skipped
        other.revoke_personal_access_token(me, minted.info.id)  # announced by another process
        deadline = time.monotonic() + 30
        while invalidator.announced == 0:
            assert time.monotonic() < deadline, "the other process's announcement never came"
            time.sleep(0.01)
        assert invalidator.announced == 1
        assert cache.evicted == [minted.info.id]
        assert own.info.id not in cache.evicted
        assert invalidator.backstop_reads == 1  # evicted on the announcement alone
        assert other.announcer.sent >= 1
    finally:
        invalidator.stop()
        other.close()
