"""Token limits hold exactly under real parallel clients, across two ledgers (two pools, two
group-commit writers: what two processes would be), round after round (ADR 0021)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psycopg
import pytest

from ledger.adapters.recorder import BatchCommand
from ledger.application import ExchangedDaemonToken, MintedToken
from ledger.application.ports import Refused
from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain import Actor, Credential, TokenKind
from ledger.domain.credential_row import CredentialRow
from ledger.domain.errors import TokenLimitReached
from ledger.domain.limits import TokenLimit, counts_toward
from ledger.domain.tokens import issue
from tests.clocks import TickingClock
from tests.integration.races import race
from tests.support.principals import START, UserPrincipal, new_user

ROUNDS = 12
RACERS = 16
LIMIT = 5


@pytest.fixture
def limited(database_url: str) -> Iterator[tuple[PostgresLedger, PostgresLedger]]:
    settings = Settings(
        pool_size=8,
        lock_timeout_s=30,
        max_tokens_per_user=LIMIT,
        max_daemon_tokens_per_workspace=LIMIT,
    )
    clock = TickingClock(START)
    first = build_ledger(database_url, settings=settings, clock=clock)
    second = build_ledger(database_url, settings=settings, clock=clock)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def held(database_url: str, limit: TokenLimit) -> int:
    """How many rows of the auth table count toward ``limit``, by the domain's own rule."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT credential_id, token_hash, kind, token_prefix, name, user_id, workspace_id, "
            "daemon_id, install_token_id, created_by, created_at, expires_at, revoked_at, "
            "revoked_reason, consumed_at, version, last_used_at FROM ledger_credentials "
            "WHERE user_id = %s OR workspace_id = %s",
            (limit.principal, limit.principal),
        ).fetchall()
    return sum(counts_toward(CredentialRow(*row), limit) for row in rows)


def mint_with(ledgers: tuple[PostgresLedger, ...], me: UserPrincipal, racer: int) -> MintedToken:
    return ledgers[racer % 2].mint_personal_access_token(me, f"racer {racer}", 30)


def test_16_concurrent_mints_at_the_boundary_admit_exactly_the_places_left(
    limited: tuple[PostgresLedger, PostgresLedger], database_url: str
) -> None:
    first, _ = limited
    with ThreadPoolExecutor(RACERS) as pool:
        for round_ in range(ROUNDS):
            me, _ = new_user(first)  # holds its initial token
            left = 1 + round_ % (LIMIT - 1)  # 1..4 places left: the boundary, from near to far
            for n in range(LIMIT - 1 - left):
                first.mint_personal_access_token(me, f"before {n}", 30)
            results = race(pool, RACERS, functools.partial(mint_with, limited, me))
            minted = [r for r in results if isinstance(r, MintedToken)]
            refused = [r for r in results if not isinstance(r, MintedToken)]
            assert len(minted) == left, (round_, results)
            assert all(isinstance(r, TokenLimitReached) for r in refused), (round_, refused)
            assert held(database_url, TokenLimit.personal_access_tokens(me.user_id, 0, START)) == (
                LIMIT
            )
            assert len(first.list_personal_access_tokens(me)) == LIMIT
            assert len({m.info.id for m in minted}) == left


def test_revoked_and_expired_tokens_make_room_for_new_ones(
    limited: tuple[PostgresLedger, PostgresLedger],
) -> None:
    ledger, _ = limited
    me, _ = new_user(ledger)
    short = ledger.mint_personal_access_token(me, "short", 1)
    tokens = [ledger.mint_personal_access_token(me, f"t{n}", 30) for n in range(LIMIT - 2)]
    with pytest.raises(TokenLimitReached):
        ledger.mint_personal_access_token(me, "one too many", 30)
    ledger.revoke_personal_access_token(me, tokens[0].info.id)
    ledger.mint_personal_access_token(me, "in the revoked one's place", 30)
    with pytest.raises(TokenLimitReached):
        ledger.mint_personal_access_token(me, "one too many again", 30)
    # An hour past the short token's expiry, by a clock of its own.
    assert short.info.expires_at is not None
    later = build_ledger(
        ledger.database_url,
        settings=ledger.settings,
        clock=TickingClock(short.info.expires_at + timedelta(hours=1)),
    )
    try:
        later.mint_personal_access_token(me, "in the expired one's place", 30)
    finally:
        later.close()


def exchange_with(
    ledgers: tuple[PostgresLedger, ...], tokens: list[str], racer: int
) -> ExchangedDaemonToken:
    return ledgers[racer % 2].exchange_install_token(tokens[racer], f"box-{racer}")


def test_16_concurrent_exchanges_fill_a_workspace_exactly_and_leave_the_rest_unconsumed(
    limited: tuple[PostgresLedger, PostgresLedger], database_url: str
) -> None:
    first, _ = limited
    with ThreadPoolExecutor(RACERS) as pool:
        for round_ in range(ROUNDS // 2):
            owner, _ = new_user(first)
            workspace = first.create_workspace(owner, f"full {round_}")
            installs = [first.mint_install_token(owner, workspace.id) for _ in range(RACERS)]
            tokens = [i.token for i in installs]
            results = race(pool, RACERS, functools.partial(exchange_with, limited, tokens))
            exchanged = [r for r in results if isinstance(r, ExchangedDaemonToken)]
            refused = [i for i, r in zip(installs, results, strict=True) if r not in exchanged]
            assert len(exchanged) == LIMIT, (round_, results)
            others = [r for r in results if r not in exchanged]
            assert all(isinstance(r, TokenLimitReached) for r in others), others
            for install in refused:
                row = first.credentials.get(install.id)
                assert row is not None and row.consumed_at is None and row.version == 1
            limit = TokenLimit.daemon_tokens(workspace.id, 0, START)
            assert held(database_url, limit) == LIMIT
            assert len(first.list_daemon_tokens(owner, workspace.id)) == LIMIT


def test_a_member_removal_revoking_many_daemon_tokens_frees_their_places(
    limited: tuple[PostgresLedger, PostgresLedger],
) -> None:
    ledger, _ = limited
    owner, _ = new_user(ledger)
    admin, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "cascade")
    ledger.add_member(owner, workspace.id, admin.user_id, "admin")
    for n in range(LIMIT):
        install = ledger.mint_install_token(admin, workspace.id)
        ledger.exchange_install_token(install.token, f"admin-box-{n}")
    spare = ledger.mint_install_token(owner, workspace.id)
    with pytest.raises(TokenLimitReached):
        ledger.exchange_install_token(spare.token, "owner-box")
    assert ledger.remove_member(owner, workspace.id, admin.user_id) == LIMIT
    assert ledger.exchange_install_token(spare.token, "owner-box").daemon_id == "owner-box"


def test_one_batch_admits_its_limited_commands_up_to_the_maximum_in_batch_order(
    limited: tuple[PostgresLedger, PostgresLedger],
) -> None:
    ledger, _ = limited
    me, _ = new_user(ledger)  # one place taken
    other, _ = new_user(ledger)
    commands = []
    for owner in (me, me, other, me, me, me, me):
        issued = issue(TokenKind.PERSONAL_ACCESS_TOKEN)
        credential = Credential.mint_personal_access_token(
            token_hash=issued.token_hash,
            token_prefix=issued.display_prefix,
            name="batched",
            user_id=owner.user_id,
            expires_at=None,
            at=START,
            actor=Actor.user(owner.user_id),
        )
        stored = [ledger.mapper.to_stored_event(e) for e in credential.collect_events()]
        limit = TokenLimit.personal_access_tokens(owner.user_id, LIMIT, START)
        commands.append(BatchCommand(stored, [CredentialRow.of(credential)], limit))
    outcomes = ledger.recorder.insert_batch(commands)
    admitted = [isinstance(o, list) for o in outcomes]
    assert admitted == [True, True, True, True, True, False, False]
    assert outcomes[-1] is Refused.LIMIT_REACHED
    assert len(ledger.list_personal_access_tokens(me)) == LIMIT
