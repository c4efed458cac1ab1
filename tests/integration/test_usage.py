"""last_used_at through the ledger: written in batches, read by the list operations."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta
from uuid import UUID

import psycopg

from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.domain import TokenKind
from ledger.domain.clock import ManualClock
from tests.support.principals import START, new_user


def test_a_verified_token_shows_when_it_was_last_used_once_flushed(
    ledger: PostgresLedger, clock: ManualClock
) -> None:
    me, _ = new_user(ledger)
    minted = ledger.mint_personal_access_token(me, "cli", None)
    clock.advance(timedelta(minutes=3))
    for _ in range(50):
        ledger.verify(minted.token)
    [listed] = [t for t in ledger.list_personal_access_tokens(me) if t.id == minted.info.id]
    assert listed.last_used_at is None  # approximate: not written per request
    ledger.usage.flush()
    [listed] = [t for t in ledger.list_personal_access_tokens(me) if t.id == minted.info.id]
    assert listed.last_used_at == START + timedelta(minutes=3)


def test_daemon_tokens_show_their_last_use(ledger: PostgresLedger, clock: ManualClock) -> None:
    owner, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "w")
    daemon = ledger.exchange_install_token(
        ledger.mint_install_token(owner, workspace.id).token, "d"
    )
    clock.advance(timedelta(seconds=42))
    ledger.verify(daemon.token, {TokenKind.DAEMON_TOKEN})
    ledger.usage.flush()
    [listed] = ledger.list_daemon_tokens(owner, workspace.id)
    assert listed.last_used_at == START + timedelta(seconds=42)


def test_last_used_at_never_moves_backwards(ledger: PostgresLedger, clock: ManualClock) -> None:
    me, _ = new_user(ledger)
    minted = ledger.mint_personal_access_token(me, "t", None)
    clock.advance(timedelta(hours=1))
    ledger.verify(minted.token)
    ledger.usage.flush()
    clock.set(START + timedelta(minutes=1))  # another process, with an older use
    ledger.verifier.cache.clear()
    ledger.verify(minted.token)
    ledger.usage.flush()
    [listed] = [t for t in ledger.list_personal_access_tokens(me) if t.id == minted.info.id]
    assert listed.last_used_at == START + timedelta(hours=1)


def test_a_later_mutation_does_not_erase_last_used_at(
    ledger: PostgresLedger, clock: ManualClock
) -> None:
    me, _ = new_user(ledger)
    minted = ledger.mint_personal_access_token(me, "t", 3)
    clock.advance(timedelta(minutes=1))
    ledger.verify(minted.token)
    ledger.usage.flush()
    ledger.renew_personal_access_token(minted.token)  # rewrites the row's mutable columns
    [listed] = [t for t in ledger.list_personal_access_tokens(me) if t.id == minted.info.id]
    assert listed.last_used_at == START + timedelta(minutes=1)


def test_closing_the_ledger_writes_the_buffer(
    database_url: str, ledger: PostgresLedger, clock: ManualClock
) -> None:
    me, _ = new_user(ledger)
    minted = ledger.mint_personal_access_token(me, "t", None)
    other = build_ledger(database_url, clock=clock)
    other.verify(minted.token)
    other.close()
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT last_used_at FROM ledger_credentials WHERE credential_id = %s",
            (minted.info.id,),
        ).fetchone()
    assert row is not None
    assert row[0] == START


def test_flushes_and_write_batches_on_the_same_rows_never_deadlock(
    ledger: PostgresLedger, clock: ManualClock
) -> None:
    """A flush locks auth rows in credential-id order, as write batches upsert them: with
    renewals of many tokens (batched by the writer) racing flushes that name the same rows in
    reverse and shuffled order, neither side ever fails."""
    me, _ = new_user(ledger)
    failures: list[BaseException] = []
    for round_ in range(10):
        minted = [ledger.mint_personal_access_token(me, f"r{round_}-{i}", 3) for i in range(32)]
        ids = [m.info.id for m in minted]
        at = clock.now()
        orders = [sorted(ids, reverse=True), random.sample(ids, len(ids))]
        start = threading.Barrier(9)

        def flush(order: list[UUID], start: threading.Barrier, at: datetime) -> None:
            start.wait()
            try:
                for step in range(10):
                    uses = {
                        credential_id: at + timedelta(microseconds=step) for credential_id in order
                    }
                    ledger.credentials.record_last_used(uses)
            except BaseException as error:  # noqa: BLE001 - collected and asserted below
                failures.append(error)

        def renew(tokens: list[str], start: threading.Barrier) -> None:
            start.wait()
            try:
                for token in tokens:
                    assert ledger.renew_personal_access_token(token).renewed
            except BaseException as error:  # noqa: BLE001 - collected and asserted below
                failures.append(error)

        threads = [threading.Thread(target=flush, args=(order, start, at)) for order in orders]
        tokens = [m.token for m in minted]
        threads += [threading.Thread(target=renew, args=(tokens[i::7], start)) for i in range(7)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
