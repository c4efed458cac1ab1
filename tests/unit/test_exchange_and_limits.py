"""Retries of a lost exchange answer, replays of a used install token, and token limits, through
the application on in-memory persistence. Races and the store's own limit check are in
tests/integration/test_exchange_retry.py and test_limits.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from uuid import UUID

import pytest

from ledger.application import Ledger
from ledger.domain import TokenKind
from ledger.domain.clock import ManualClock
from ledger.domain.errors import InstallTokenAlreadyUsed, InvalidToken, TokenLimitReached
from ledger.domain.exchange import REPLAY_RECORD_INTERVAL, ExchangePolicy
from ledger.domain.limits import LimitSettings
from tests.support.memory import memory_ledger
from tests.support.principals import START, UserPrincipal, load_credential, new_user


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def ledger(clock: ManualClock) -> Ledger:
    return memory_ledger(clock)


def workspace_admin(ledger: Ledger) -> tuple[UserPrincipal, UUID]:
    owner, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "ws")
    return owner, workspace.id


def types_of(ledger: Ledger, owner: UserPrincipal, credential_id: UUID) -> list[str]:
    history = ledger.credential_history(owner, str(credential_id))
    return [e.type for e in history.events]


def test_a_retry_within_the_window_answers_the_same_token(
    ledger: Ledger, clock: ManualClock
) -> None:
    owner, workspace_id = workspace_admin(ledger)
    install = ledger.mint_install_token(owner, workspace_id)
    first = ledger.exchange_install_token(install.token, "box")
    clock.advance(timedelta(seconds=60))
    again = ledger.exchange_install_token(f"  {install.token} ", " box ")
    assert again == first
    assert [t.daemon_id for t in ledger.list_daemon_tokens(owner, workspace_id)] == ["box"]
    assert ledger.verify(again.token, {TokenKind.DAEMON_TOKEN}).daemon_id == "box"
    assert types_of(ledger, owner, install.id) == ["minted", "consumed"]


def test_a_retry_after_the_window_is_a_replay(ledger: Ledger, clock: ManualClock) -> None:
    owner, workspace_id = workspace_admin(ledger)
    install = ledger.mint_install_token(owner, workspace_id)
    ledger.exchange_install_token(install.token, "box")
    clock.advance(timedelta(seconds=60, microseconds=1))
    with pytest.raises(InstallTokenAlreadyUsed):
        ledger.exchange_install_token(install.token, "box")
    assert types_of(ledger, owner, install.id) == ["minted", "consumed", "replay_detected"]


def test_a_retry_of_a_revoked_daemon_token_is_refused_and_not_a_replay(ledger: Ledger) -> None:
    owner, workspace_id = workspace_admin(ledger)
    install = ledger.mint_install_token(owner, workspace_id)
    daemon = ledger.exchange_install_token(install.token, "box")
    ledger.revoke_daemon_token(owner, workspace_id, daemon.token_id)
    with pytest.raises(InstallTokenAlreadyUsed):
        ledger.exchange_install_token(install.token, "box")
    assert types_of(ledger, owner, install.id) == ["minted", "consumed"]


def test_retries_are_off_with_a_zero_window(clock: ManualClock) -> None:
    ledger = memory_ledger(clock, exchange_policy=ExchangePolicy(retry_window=timedelta(0)))
    owner, workspace_id = workspace_admin(ledger)
    install = ledger.mint_install_token(owner, workspace_id)
    ledger.exchange_install_token(install.token, "box")
    with pytest.raises(InstallTokenAlreadyUsed):
        ledger.exchange_install_token(install.token, "box")


def test_a_retry_under_a_rotated_key_answers_the_token_of_the_old_key(clock: ManualClock) -> None:
    old_key, new_key = bytes([7]) * 32, bytes([8]) * 32
    ledger = memory_ledger(clock, exchange_key=old_key)
    owner, workspace_id = workspace_admin(ledger)
    install = ledger.mint_install_token(owner, workspace_id)
    first = ledger.exchange_install_token(install.token, "box")
    # The same store, the keys rotated: a new key first, the old one kept for retries.
    ledger._ports = replace(ledger._ports, exchange_keys=(new_key, old_key))
    assert ledger.exchange_install_token(install.token, "box").token == first.token
    ledger._ports = replace(ledger._ports, exchange_keys=(new_key,))  # the old one retired
    with pytest.raises(InstallTokenAlreadyUsed):
        ledger.exchange_install_token(install.token, "box")


def test_a_replay_is_recorded_with_the_daemon_id_presented(ledger: Ledger) -> None:
    owner, workspace_id = workspace_admin(ledger)
    install = ledger.mint_install_token(owner, workspace_id)
    daemon = ledger.exchange_install_token(install.token, "box")
    with pytest.raises(InstallTokenAlreadyUsed):
        ledger.exchange_install_token(install.token, "intruder")
    feed = ledger.workspace_audit(owner, workspace_id, type="replay_detected")
    [replay] = feed.events
    assert replay.credential_id == install.id
    assert replay.data == {"daemon_id": "intruder", "replays": 1}
    assert replay.actor.type == "system"
    ledger.verify(daemon.token)  # the policy is off by default: the daemon token still works


def test_replays_are_recorded_at_most_once_per_interval(ledger: Ledger, clock: ManualClock) -> None:
    owner, workspace_id = workspace_admin(ledger)
    install = ledger.mint_install_token(owner, workspace_id)
    ledger.exchange_install_token(install.token, "box")
    for _ in range(5):
        with pytest.raises(InstallTokenAlreadyUsed):
            ledger.exchange_install_token(install.token, "intruder")
    clock.advance(REPLAY_RECORD_INTERVAL)
    with pytest.raises(InstallTokenAlreadyUsed):
        ledger.exchange_install_token(install.token, "intruder")
    assert types_of(ledger, owner, install.id).count("replay_detected") == 2


def test_with_replay_revokes_a_replay_revokes_the_daemon_token(clock: ManualClock) -> None:
    ledger = memory_ledger(clock, exchange_policy=ExchangePolicy(replay_revokes=True))
    owner, workspace_id = workspace_admin(ledger)
    install = ledger.mint_install_token(owner, workspace_id)
    daemon = ledger.exchange_install_token(install.token, "box")
    with pytest.raises(InstallTokenAlreadyUsed):
        ledger.exchange_install_token(install.token, "intruder")
    with pytest.raises(InvalidToken):
        ledger.verify(daemon.token)
    revoked = load_credential(ledger, daemon.token_id)
    assert revoked.revoked_reason is not None and revoked.revoked_reason.value == "replay_detected"
    # The replay event and the revocation are one commit: they share the instant.
    assert revoked.revoked_at == load_credential(ledger, install.id).last_replay_at
    # The legitimate daemon's retry no longer gets the revoked token back.
    with pytest.raises(InstallTokenAlreadyUsed):
        ledger.exchange_install_token(install.token, "box")


def test_a_user_mints_up_to_the_limit_and_no_further(clock: ManualClock) -> None:
    ledger = memory_ledger(clock, limits=LimitSettings(personal_access_tokens_per_user=3))
    me, _ = new_user(ledger)  # the initial token is one of the three
    ledger.mint_personal_access_token(me, "a")
    ledger.mint_personal_access_token(me, "b", 1)
    with pytest.raises(TokenLimitReached):
        ledger.mint_personal_access_token(me, "c")
    assert len(ledger.list_personal_access_tokens(me)) == 3
    other, _ = new_user(ledger)
    ledger.mint_personal_access_token(other, "theirs")  # another user's limit is their own


def test_revoked_and_expired_tokens_free_their_place(clock: ManualClock) -> None:
    ledger = memory_ledger(clock, limits=LimitSettings(personal_access_tokens_per_user=3))
    me, _ = new_user(ledger)
    short = ledger.mint_personal_access_token(me, "short", 1)
    spare = ledger.mint_personal_access_token(me, "spare")
    ledger.revoke_personal_access_token(me, spare.info.id)
    ledger.mint_personal_access_token(me, "in its place")
    with pytest.raises(TokenLimitReached):
        ledger.mint_personal_access_token(me, "one too many")
    clock.advance(timedelta(days=1))  # "short" expires
    assert short.info.expires_at == clock.now()
    ledger.mint_personal_access_token(me, "after the expiry")


def test_an_exchange_past_the_workspace_limit_leaves_the_install_token_unconsumed(
    clock: ManualClock,
) -> None:
    ledger = memory_ledger(clock, limits=LimitSettings(daemon_tokens_per_workspace=1))
    owner, workspace_id = workspace_admin(ledger)
    first = ledger.mint_install_token(owner, workspace_id)
    second = ledger.mint_install_token(owner, workspace_id)
    daemon = ledger.exchange_install_token(first.token, "one")
    with pytest.raises(TokenLimitReached):
        ledger.exchange_install_token(second.token, "two")
    assert load_credential(ledger, second.id).consumed_at is None
    ledger.revoke_daemon_token(owner, workspace_id, daemon.token_id)
    assert ledger.exchange_install_token(second.token, "two").daemon_id == "two"
