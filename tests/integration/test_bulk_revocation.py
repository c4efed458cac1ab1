"""Revoke-all and offboarding on PostgreSQL: one commit each, exact under racing mints and
renewals, and refused by another process's verifier once they return."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest

from ledger.application.views import MintedToken
from ledger.bootstrap import PostgresLedger
from ledger.domain import RevocationReason
from ledger.domain.clock import ManualClock
from ledger.domain.credential import RenewalOutcome
from ledger.domain.errors import InvalidToken, LedgerError, TokenNoLongerValid
from tests.integration.races import race
from tests.support.principals import UserPrincipal, load_credential, new_user

FOLLOWER = Path(__file__).with_name("verify_follower.py")
ROUNDS = 4
MINTERS = 8
RENEWERS = 8


def test_revoke_all_racing_mints_and_renewals_leaves_nothing_half_done(
    ledger: PostgresLedger, clock: ManualClock
) -> None:
    for _ in range(ROUNDS):
        me, _ = new_user(ledger)
        # Renewable tokens (5 days left) that racing renewals and the revoke-all both write.
        before = [ledger.mint_personal_access_token(me, f"old-{i}", 5) for i in range(RENEWERS)]
        clock.advance(timedelta(seconds=1))

        def act(
            i: int,
            me: UserPrincipal = me,
            before: list[MintedToken] = before,
        ) -> int | MintedToken | RenewalOutcome:
            if i == 0:
                return ledger.revoke_all_personal_access_tokens(me)
            if i <= MINTERS:
                return ledger.mint_personal_access_token(me, f"new-{i}", 5)
            return ledger.renew_personal_access_token(before[i - MINTERS - 1].token)

        with ThreadPoolExecutor(1 + MINTERS + RENEWERS) as pool:
            results = race(pool, 1 + MINTERS + RENEWERS, act)
        revoked_count = results[0]
        assert isinstance(revoked_count, int), revoked_count
        for outcome in results[1:]:
            # A renewal that lost to the revocation finds the token no longer valid.
            assert not isinstance(outcome, LedgerError) or isinstance(
                outcome, TokenNoLongerValid
            ), outcome
        minted_now = [r for r in results[1 : MINTERS + 1] if isinstance(r, MintedToken)]
        assert len(minted_now) == MINTERS
        # Every token that existed before the call is revoked, whatever the renewals did.
        for token in before:
            credential = load_credential(ledger, token.info.id)
            assert credential.revoked_reason is RevocationReason.USER_REQUEST
            with pytest.raises(InvalidToken):
                ledger.verify(token.token)
        # One commit: exactly the tokens it counted carry its revocation, all at one instant;
        # a token minted during the call is either among them or untouched and usable.
        revoked_at = {
            load_credential(ledger, cid).revoked_at
            for cid in [me.credential_id, *(t.info.id for t in before)]
        }
        assert len(revoked_at) == 1
        revoked_new = 0
        for token in minted_now:
            credential = load_credential(ledger, token.info.id)
            if credential.revoked_at is None:
                assert ledger.verify(token.token).credential_id == token.info.id
            else:
                assert {credential.revoked_at} == revoked_at
                revoked_new += 1
        assert revoked_count == 1 + RENEWERS + revoked_new
        assert {t.id for t in ledger.list_personal_access_tokens(me)} == {
            t.info.id for t in minted_now if load_credential(ledger, t.info.id).revoked_at is None
        }


def test_offboarding_racing_exchanges_revokes_each_daemon_token_that_commits(
    ledger: PostgresLedger,
) -> None:
    owner, _ = new_user(ledger)
    leaver, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "acme")
    ledger.add_member(owner, workspace.id, leaver.user_id, "admin")
    installs = [ledger.mint_install_token(leaver, workspace.id) for _ in range(8)]

    def act(i: int) -> object:
        if i == 0:
            return ledger.offboard_user(leaver.user_id)
        return ledger.exchange_install_token(installs[i - 1].token, f"box-{i}")

    with ThreadPoolExecutor(len(installs) + 1) as pool:
        results = race(pool, len(installs) + 1, act)
    assert isinstance(results[0], int), results[0]
    # Whatever the order, nothing the leaver issued is usable afterwards.
    for install, outcome in zip(installs, results[1:], strict=True):
        credential = load_credential(ledger, install.id)
        if credential.consumed_at is None:
            assert credential.revoked_reason is RevocationReason.OFFBOARDED
            assert isinstance(outcome, LedgerError), outcome
        else:
            assert credential.daemon_token_id is not None
            daemon = load_credential(ledger, credential.daemon_token_id)
            assert daemon.revoked_reason is RevocationReason.OFFBOARDED
    assert ledger.offboard_user(leaver.user_id) == 0


def test_offboarding_is_seen_by_a_verifier_in_another_process(
    wall_clock_ledger: PostgresLedger, database_url: str
) -> None:
    ledger = wall_clock_ledger
    created = ledger.create_user("leaver")
    with subprocess.Popen(
        [sys.executable, str(FOLLOWER), database_url, created.token],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as follower:
        try:
            assert follower.stdout is not None
            assert follower.stdout.readline().strip() == "cached"
            assert ledger.offboard_user(created.user_id) == 1
            assert follower.stdout.readline().strip() == "refused"
            assert follower.wait(timeout=30) == 0
        finally:
            if follower.poll() is None:
                follower.kill()


def test_the_lists_read_postgresql_as_the_contract_says(
    ledger: PostgresLedger, clock: ManualClock
) -> None:
    me, _ = new_user(ledger)
    minted = []
    for i in range(5):
        minted.append(ledger.mint_personal_access_token(me, f"t{i}", 3 if i % 2 else None))
        if i % 2:
            clock.advance(timedelta(seconds=1))  # some tokens share an instant
    everything = [t.id for t in ledger.list_personal_access_tokens(me)]
    seen: list[UUID] = []
    cursor = None
    while True:
        page = ledger.page_personal_access_tokens(me, limit=2, cursor=cursor)
        seen += [t.id for t in page.tokens]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == everything and len(seen) == 6
    expiring = ledger.page_personal_access_tokens(me, expiring_within_days=7).tokens
    assert {t.id for t in expiring} == {minted[1].info.id, minted[3].info.id}
    found = ledger.expiring_credentials(7)
    assert {minted[1].info.id, minted[3].info.id} <= {e.id for e in found}
    assert all(e.holder_id == me.user_id for e in found if e.id == minted[1].info.id)
    assert (
        ledger.credentials.count_expiring(clock.now(), clock.now() + timedelta(days=7)).get(
            "personal_access_token", 0
        )
        >= 2
    )
    workspace = ledger.create_workspace(me, "acme")
    assert [(w.id, w.role.value) for w in ledger.list_workspaces(me)] == [(workspace.id, "owner")]
