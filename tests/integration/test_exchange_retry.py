"""Retries of a lost exchange answer and replays of a used install token, on PostgreSQL, with
real parallel clients across two ledgers (ADR 0020)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from ledger.application import ExchangedDaemonToken
from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain.errors import InstallTokenAlreadyUsed, InvalidToken
from tests.clocks import TickingClock
from tests.integration.races import race
from tests.support.principals import START, new_user

ROUNDS = 20
RACERS = 16


@pytest.fixture
def pair(database_url: str) -> Iterator[tuple[PostgresLedger, PostgresLedger]]:
    settings = Settings(pool_size=8, lock_timeout_s=30, replay_revokes=True)
    clock = TickingClock(START)
    first = build_ledger(database_url, settings=settings, clock=clock)
    second = build_ledger(database_url, settings=settings, clock=clock)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def exchange_with(
    ledgers: tuple[PostgresLedger, ...], token: str, racer: int
) -> ExchangedDaemonToken:
    return ledgers[racer % 2].exchange_install_token(token, "the-box")


def test_16_concurrent_identical_exchanges_all_get_the_one_daemon_token(
    pair: tuple[PostgresLedger, PostgresLedger],
) -> None:
    first, second = pair
    owner, _ = new_user(first)
    workspace = first.create_workspace(owner, "retries")
    with ThreadPoolExecutor(RACERS) as pool:
        for round_ in range(ROUNDS):
            install = first.mint_install_token(owner, workspace.id)
            results = race(pool, RACERS, functools.partial(exchange_with, pair, install.token))
            assert all(isinstance(r, ExchangedDaemonToken) for r in results), (round_, results)
            assert len(set(results)) == 1, (round_, results)  # the very same answer, token too
            events = list(first.events.get(install.id))
            assert [type(e).__name__ for e in events] == ["Minted", "Consumed"]
            [answer] = set(results)
            assert isinstance(answer, ExchangedDaemonToken)
            assert events[1].daemon_token_id == answer.token_id  # type: ignore[attr-defined]
            assert second.verify(answer.token).credential_id == answer.token_id
    assert len(first.list_daemon_tokens(owner, workspace.id)) == ROUNDS


def test_a_replay_from_another_process_is_recorded_and_revokes_the_daemon_token(
    pair: tuple[PostgresLedger, PostgresLedger],
) -> None:
    first, second = pair
    owner, _ = new_user(first)
    workspace = first.create_workspace(owner, "replays")
    install = first.mint_install_token(owner, workspace.id)
    daemon = first.exchange_install_token(install.token, "the-box")
    assert second.exchange_install_token(install.token, "the-box") == daemon  # a retry
    with pytest.raises(InstallTokenAlreadyUsed):
        second.exchange_install_token(install.token, "someone-else")
    row = first.credentials.get(daemon.token_id)
    assert row is not None and row.revoked_reason == "replay_detected"
    with pytest.raises(InvalidToken):
        second.verify(daemon.token)
    with pytest.raises(InstallTokenAlreadyUsed):  # the daemon's own retry: revoked since
        first.exchange_install_token(install.token, "the-box")
    feed = first.workspace_audit(owner, workspace.id, type="replay_detected")
    assert [(e.credential_id, e.data) for e in feed.events] == [
        (install.id, {"daemon_id": "someone-else", "replays": 1})
    ]
    history = first.credential_history(owner, daemon.token_id)
    assert [(e.type, e.data.get("reason")) for e in history.events][-1] == (
        "revoked",
        "replay_detected",
    )


def replay_with(ledgers: tuple[PostgresLedger, ...], token: str, racer: int) -> object:
    return ledgers[racer % 2].exchange_install_token(token, f"intruder-{racer}")


def test_16_concurrent_replays_record_one_event(
    pair: tuple[PostgresLedger, PostgresLedger],
) -> None:
    first, _ = pair
    owner, _ = new_user(first)
    workspace = first.create_workspace(owner, "replay storm")
    install = first.mint_install_token(owner, workspace.id)
    first.exchange_install_token(install.token, "the-box")
    with ThreadPoolExecutor(RACERS) as pool:
        results = race(pool, RACERS, functools.partial(replay_with, pair, install.token))
    assert all(isinstance(r, InstallTokenAlreadyUsed) for r in results), results
    events = [type(e).__name__ for e in first.events.get(install.id)]
    assert events == ["Minted", "Consumed", "ReplayDetected"]
