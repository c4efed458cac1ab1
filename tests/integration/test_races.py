"""Single use and exactly-once renewal under real parallel clients, many times over.

Both properties come from optimistic concurrency on the credential's stream (no row locks, no
advisory locks): racing commands share group-commit batches, all but one lose the version race,
run again on fresh state, and report the winner's outcome.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from ledger.application import ExchangedDaemonToken
from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain import Credential, RenewalOutcome, TokenKind
from ledger.domain.errors import InstallTokenAlreadyUsed, InvalidToken
from tests.clocks import TickingClock
from tests.integration.races import race
from tests.support.principals import START, load_credential, new_user

ROUNDS = 200
EXCHANGERS = 32
RENEWERS = 16


@pytest.fixture
def racing_ledger(database_url: str) -> Iterator[PostgresLedger]:
    app = build_ledger(
        database_url, settings=Settings(pool_size=8, lock_timeout_s=30), clock=TickingClock(START)
    )
    try:
        yield app
    finally:
        app.close()


def exchange_as(
    ledger: PostgresLedger, token: str, round_: int, racer: int
) -> ExchangedDaemonToken:
    return ledger.exchange_install_token(token, f"d{round_}-{racer}")


def renew_as(ledger: PostgresLedger, token: str, _racer: int) -> RenewalOutcome:
    return ledger.renew_personal_access_token(token)


def test_32_concurrent_exchanges_of_one_install_token_yield_exactly_one_daemon_token(
    racing_ledger: PostgresLedger,
) -> None:
    ledger = racing_ledger
    owner, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "race")
    with ThreadPoolExecutor(EXCHANGERS) as pool:
        for round_ in range(ROUNDS):
            install = ledger.mint_install_token(owner, workspace.id)
            exchange = functools.partial(exchange_as, ledger, install.token, round_)
            results = race(pool, EXCHANGERS, exchange)
            winners = [r for r in results if isinstance(r, ExchangedDaemonToken)]
            losers = [r for r in results if not isinstance(r, ExchangedDaemonToken)]
            assert len(winners) == 1, (round_, results)
            assert all(isinstance(r, InstallTokenAlreadyUsed) for r in losers), (round_, losers)

            # The losers' presentations came after the winner's: replays, recorded once (the
            # rest fall within the recording interval).
            events = list(ledger.events.get(install.id))
            assert [type(e).__name__ for e in events] == ["Minted", "Consumed", "ReplayDetected"]
            assert events[1].daemon_token_id == winners[0].token_id  # type: ignore[attr-defined]
            assert ledger.verify(winners[0].token).credential_id == winners[0].token_id

    daemon_tokens = ledger.list_daemon_tokens(owner, workspace.id)
    assert len(daemon_tokens) == ROUNDS
    assert len({d.install_token_id for d in daemon_tokens}) == ROUNDS
    assert ledger.writer.stats.largest_batch > 1  # the racers really did share transactions


def test_16_concurrent_renewals_extend_exactly_once_and_all_report_the_winners_expiry(
    racing_ledger: PostgresLedger,
) -> None:
    ledger = racing_ledger
    me, _ = new_user(ledger)
    with ThreadPoolExecutor(RENEWERS) as pool:
        for round_ in range(ROUNDS):
            token = ledger.mint_personal_access_token(me, f"r{round_}", 5)
            renew = functools.partial(renew_as, ledger, token.token)
            results = race(pool, RENEWERS, renew)
            assert all(isinstance(r, RenewalOutcome) for r in results), (round_, results)
            outcomes = [r for r in results if isinstance(r, RenewalOutcome)]
            winners = [r for r in outcomes if r.renewed]
            assert len(winners) == 1, (round_, outcomes)
            expiry = winners[0].expires_at
            assert expiry is not None
            assert expiry - START > timedelta(days=90)  # now + 90 days, "now" being the race
            assert {r.expires_at for r in outcomes} == {expiry}

            stored = load_credential(ledger, token.info.id)
            assert isinstance(stored, Credential)
            assert stored.expires_at == expiry
            renewals = [
                e for e in ledger.events.get(token.info.id) if isinstance(e, Credential.Renewed)
            ]
            assert len(renewals) == 1
            assert (
                ledger.verify(token.token, {TokenKind.PERSONAL_ACCESS_TOKEN}).expires_at == expiry
            )


def test_revocation_racing_verification_never_lets_a_revoked_token_back(
    racing_ledger: PostgresLedger,
) -> None:
    """Once revoke has returned, no later verify accepts the token."""
    ledger = racing_ledger
    me, _ = new_user(ledger)
    with ThreadPoolExecutor(8) as pool:
        for round_ in range(ROUNDS):
            token = ledger.mint_personal_access_token(me, f"v{round_}", None)

            def act(i: int, t: str = token.token, tid: object = token.info.id) -> str:
                if i == 0:
                    ledger.revoke_personal_access_token(me, tid)  # type: ignore[arg-type]
                    return "revoked"
                ledger.verify(t)
                return "verified"

            race(pool, 8, act)
            with pytest.raises(InvalidToken):
                ledger.verify(token.token)
