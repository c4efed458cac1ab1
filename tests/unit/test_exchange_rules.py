"""The exchange's rules for a used install token presented again: retry window edges, replay
recording policy, and the derivation of daemon tokens. Pure domain, no store."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from ledger.domain import Actor, Credential
from ledger.domain.errors import InvalidInstallToken
from ledger.domain.exchange import (
    REPLAY_RECORD_CAP,
    REPLAY_RECORD_INTERVAL,
    ExchangePolicy,
    Presentation,
    daemon_token_for,
    presentation,
    should_record_replay,
)
from ledger.domain.model import TokenKind
from ledger.domain.tokens import issue, parse_kind
from tests.support.principals import START

WINDOW = timedelta(seconds=60)
POLICY = ExchangePolicy(retry_window=WINDOW)


def kind_at(seconds_after: float, daemon_id: str = "box", policy: ExchangePolicy = POLICY) -> str:
    return presentation(
        consumed_at=START,
        consumed_by="box",
        daemon_id=daemon_id,
        at=START + timedelta(seconds=seconds_after),
        policy=policy,
    ).value


def test_same_daemon_id_within_the_window_is_a_retry() -> None:
    assert kind_at(0) == Presentation.RETRY.value
    assert kind_at(30) == Presentation.RETRY.value


def test_the_window_includes_its_last_instant_and_nothing_after() -> None:
    assert kind_at(60) == Presentation.RETRY.value
    assert kind_at(60.000001) == Presentation.REPLAY.value


def test_a_clock_behind_the_exchange_still_counts_as_within_the_window() -> None:
    assert kind_at(-5) == Presentation.RETRY.value


def test_another_daemon_id_is_a_replay_even_at_once() -> None:
    assert kind_at(0, daemon_id="intruder") == Presentation.REPLAY.value


def test_daemon_ids_are_compared_exactly() -> None:
    assert kind_at(1, daemon_id="Box") == Presentation.REPLAY.value


def test_a_zero_window_disables_retries() -> None:
    assert kind_at(0, policy=ExchangePolicy(retry_window=timedelta(0))) == "replay"


def test_an_unknown_consuming_daemon_id_is_never_a_retry() -> None:
    kind = presentation(
        consumed_at=START, consumed_by=None, daemon_id="box", at=START, policy=POLICY
    )
    assert kind is Presentation.REPLAY


def test_the_first_replay_is_recorded() -> None:
    assert should_record_replay(recorded=0, last_recorded_at=None, at=START)


def test_a_replay_within_the_interval_of_the_last_recorded_one_is_not() -> None:
    just_before = START + REPLAY_RECORD_INTERVAL - timedelta(microseconds=1)
    assert not should_record_replay(recorded=1, last_recorded_at=START, at=just_before)


def test_a_replay_one_interval_after_the_last_recorded_one_is() -> None:
    at = START + REPLAY_RECORD_INTERVAL
    assert should_record_replay(recorded=1, last_recorded_at=START, at=at)


def test_no_replay_is_recorded_past_the_cap() -> None:
    late = START + timedelta(days=365)
    assert should_record_replay(recorded=REPLAY_RECORD_CAP - 1, last_recorded_at=START, at=late)
    assert not should_record_replay(recorded=REPLAY_RECORD_CAP, last_recorded_at=START, at=late)


def consumed_install_token() -> Credential:
    issued = issue(TokenKind.INSTALL_TOKEN)
    install = Credential.mint_install_token(
        token_hash=issued.token_hash,
        token_prefix=issued.display_prefix,
        workspace_id=uuid4(),
        issuer_id=uuid4(),
        at=START,
        actor=Actor.system("test"),
    )
    install.consume(daemon_token_id=uuid4(), at=START, actor=Actor.system("test"))
    return install


def test_record_replay_follows_the_policy_and_counts_what_it_records() -> None:
    install = consumed_install_token()
    actor = Actor.system("exchange")
    assert install.record_replay(daemon_id="a", at=START, actor=actor)
    assert not install.record_replay(daemon_id="b", at=START + timedelta(seconds=1), actor=actor)
    later = START + REPLAY_RECORD_INTERVAL
    assert install.record_replay(daemon_id="c", at=later, actor=actor)
    assert install.replays_recorded == 2
    assert install.last_replay_at == later
    events = install.collect_events()
    replays = [e for e in events if isinstance(e, Credential.ReplayDetected)]
    assert [e.daemon_id for e in replays] == ["a", "c"]


def test_every_recorded_replay_stays_under_the_cap_however_many_come() -> None:
    install = consumed_install_token()
    actor = Actor.system("exchange")
    for minute in range(REPLAY_RECORD_CAP * 3):
        install.record_replay(
            daemon_id="x", at=START + minute * REPLAY_RECORD_INTERVAL, actor=actor
        )
    assert install.replays_recorded == REPLAY_RECORD_CAP


def test_an_unconsumed_install_token_has_no_replay() -> None:
    issued = issue(TokenKind.INSTALL_TOKEN)
    install = Credential.mint_install_token(
        token_hash=issued.token_hash,
        token_prefix=issued.display_prefix,
        workspace_id=uuid4(),
        issuer_id=uuid4(),
        at=START,
        actor=Actor.system("test"),
    )
    with pytest.raises(InvalidInstallToken):
        install.record_replay(daemon_id="x", at=START, actor=Actor.system("exchange"))


KEY = bytes(32)
OTHER_KEY = bytes([1]) * 32


def test_a_derived_daemon_token_is_well_formed_and_reproducible() -> None:
    install = issue(TokenKind.INSTALL_TOKEN).raw
    token = daemon_token_for(KEY, install, "box")
    assert parse_kind(token.raw) is TokenKind.DAEMON_TOKEN
    assert daemon_token_for(KEY, install, "box") == token


def test_the_derived_token_depends_on_the_key_the_install_token_and_the_daemon_id() -> None:
    install = issue(TokenKind.INSTALL_TOKEN).raw
    other_install = issue(TokenKind.INSTALL_TOKEN).raw
    token = daemon_token_for(KEY, install, "box").raw
    assert daemon_token_for(OTHER_KEY, install, "box").raw != token
    assert daemon_token_for(KEY, other_install, "box").raw != token
    assert daemon_token_for(KEY, install, "box2").raw != token
