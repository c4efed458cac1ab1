"""The auditors' queries on real PostgreSQL: pagination under writers, valid_at vs replay."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain import Credential
from ledger.domain.base import LedgerAggregate
from ledger.domain.clock import ManualClock
from ledger.domain.errors import (
    CredentialNotFound,
    InsufficientPermissions,
    InvalidCredentialId,
    InvalidQueryParameter,
    WorkspaceNotFound,
)
from ledger.projections import AuditEvent
from tests.integration.workload import run_workload
from tests.support.principals import START, new_user


def drain(ledger: PostgresLedger, user: UUID, after: str | None, limit: int) -> list[AuditEvent]:
    """Every event of ``user`` after ``after``, page by page."""
    events: list[AuditEvent] = []
    cursor = after
    while True:
        page = ledger.audit.events(user=user, cursor=cursor, limit=limit)
        events += page.events
        if page.next_cursor is None:
            return events
        cursor = page.next_cursor


def test_pagination_misses_and_repeats_nothing_while_writers_run(ledger: PostgresLedger) -> None:
    user, _ = new_user(ledger)
    done = threading.Event()

    def write(n: int) -> None:
        for i in range(n):
            minted = ledger.mint_personal_access_token(user, f"w{i}")
            if i % 3 == 0:
                ledger.revoke_personal_access_token(user, minted.info.id)

    writers = [threading.Thread(target=write, args=(60,)) for _ in range(4)]
    for w in writers:
        w.start()
    seen: list[AuditEvent] = []
    cursor: str | None = None
    pages = 0
    while not done.is_set():
        done_now = not any(w.is_alive() for w in writers)
        page = ledger.audit.events(user=user.user_id, cursor=cursor, limit=7)
        pages += 1
        seen += page.events
        if page.events:
            # An event's position resumes the feed after it, like next_cursor.
            cursor = page.next_cursor or str(page.events[-1].position)
        if done_now and page.next_cursor is None:
            done.set()
    for w in writers:
        w.join()
    positions = [e.position for e in seen]
    assert positions == sorted(set(positions))  # in order, nothing twice
    everything = drain(ledger, user.user_id, None, 1000)
    assert [e.position for e in everything] == positions  # nothing missed
    assert len(everything) == 1 + 1 + 240 + 80  # user_created, initial token, mints, revocations
    assert pages > 10


def test_events_filters_by_type_and_time_window(ledger: PostgresLedger, clock: ManualClock) -> None:
    user, _ = new_user(ledger)
    t0 = clock.now()
    ids = []
    for _ in range(3):
        clock.advance(timedelta(minutes=10))
        ids.append(ledger.mint_personal_access_token(user, "t").info.id)
    for token_id in ids:
        ledger.revoke_personal_access_token(user, token_id)
    revoked = ledger.audit.events(user=user.user_id, type="revoked").events
    assert [e.credential_id for e in revoked] == ids
    window = ledger.audit.events(
        user=user.user_id,
        type="minted",
        since=t0 + timedelta(minutes=10),
        until=t0 + timedelta(minutes=30),
    ).events
    assert [e.credential_id for e in window] == ids[:2]  # since inclusive, until exclusive


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"limit": 1001},
        {"type": "exploded"},
        {"cursor": "abc"},
        {"cursor": "-1"},
        {"since": datetime(2026, 1, 1)},  # noqa: DTZ001 - a naive instant must be refused
    ],
)
def test_invalid_feed_parameters_are_refused(
    ledger: PostgresLedger, kwargs: dict[str, object]
) -> None:
    with pytest.raises(InvalidQueryParameter):
        ledger.audit.events(**kwargs)  # type: ignore[arg-type]


def test_valid_at_needs_a_workspace_or_a_user(ledger: PostgresLedger) -> None:
    with pytest.raises(InvalidQueryParameter):
        ledger.audit.valid_at(START)


# ------------------------------------------------------------------- valid_at vs replay


def replay_as_of(ledger: PostgresLedger, credential_id: UUID, at: datetime) -> Credential | None:
    """Brute force: the credential's aggregate folded from its stored events up to ``at``."""
    aggregate: Credential | None = None
    for event in ledger.events.get(credential_id):
        assert isinstance(event, LedgerAggregate.Event)
        if event.timestamp <= at:
            aggregate = event.mutate(aggregate)
    return aggregate


def credential_ids(url: str, column: str, value: UUID) -> list[UUID]:
    with psycopg.connect(url) as conn:
        return [
            r[0]
            for r in conn.execute(
                f"SELECT credential_id FROM ledger_credentials WHERE {column} = %s",
                (value,),
            ).fetchall()
        ]


@hypothesis_settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32),
    offsets=st.lists(st.sampled_from([-1, 0, 1]), min_size=6, max_size=6),
)
def test_valid_at_matches_a_brute_force_replay(
    database_url: str, settings: Settings, seed: int, offsets: list[int]
) -> None:
    clock = ManualClock(START)
    ledger = build_ledger(database_url, settings=settings, clock=clock)
    try:
        rng = random.Random(seed)
        workload = run_workload(ledger, clock, rng, 60)
        # Probe the instants events happened at, and a microsecond either side of them.
        probes = [
            rng.choice(workload.instants) + timedelta(microseconds=offset) for offset in offsets
        ]
        for at in probes:
            for workspace in workload.workspaces:
                expected = {
                    cid: replay_as_of(ledger, cid, at)
                    for cid in credential_ids(database_url, "workspace_id", workspace)
                }
                got = ledger.audit.valid_at(at, workspace=workspace)
                usable = {
                    cid for cid, agg in expected.items() if agg is not None and agg.is_usable(at)
                }
                assert {s.credential_id for s in got} == usable
                for state in got:
                    aggregate = expected[state.credential_id]
                    assert aggregate is not None
                    assert state.expires_at == aggregate.expires_at
            for user in workload.users:
                pats = credential_ids(database_url, "user_id", user.user_id)
                issued = credential_ids(database_url, "created_by", user.user_id)
                candidates = {cid: replay_as_of(ledger, cid, at) for cid in {*pats, *issued}}
                usable = {
                    cid for cid, agg in candidates.items() if agg is not None and agg.is_usable(at)
                }
                got_user = ledger.audit.valid_at(at, user=user.user_id)
                assert {s.credential_id for s in got_user} == usable
    finally:
        ledger.close()


# ---------------------------------------------------------------- who may read the trail


def test_history_is_readable_by_the_holder_and_workspace_administrators_only(
    ledger: PostgresLedger,
) -> None:
    owner, _ = new_user(ledger)
    admin, _ = new_user(ledger)
    member, _ = new_user(ledger)
    stranger, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "ws").id
    ledger.add_member(owner, workspace, admin.user_id, "admin")
    ledger.add_member(owner, workspace, member.user_id, "member")
    install = ledger.mint_install_token(admin, workspace)
    pat = ledger.mint_personal_access_token(member, "mine")

    assert ledger.credential_history(owner, install.id).credential.credential_id == install.id
    assert ledger.credential_history(admin, str(install.id)).events[0].type == "minted"
    assert ledger.credential_history(member, pat.info.id).credential.name == "mine"
    for reader, credential in [
        (member, install.id),
        (stranger, install.id),
        (owner, pat.info.id),  # account-wide: not the workspace's
        (stranger, uuid4()),
    ]:
        with pytest.raises(CredentialNotFound):
            ledger.credential_history(reader, credential)
    with pytest.raises(InvalidCredentialId):
        ledger.credential_history(owner, "not-a-uuid")


def test_workspace_feed_and_valid_at_need_an_administrator(
    ledger: PostgresLedger, clock: ManualClock
) -> None:
    owner, _ = new_user(ledger)
    member, _ = new_user(ledger)
    stranger, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "ws").id
    ledger.add_member(owner, workspace, member.user_id, "member")
    install = ledger.mint_install_token(owner, workspace)
    clock.advance(timedelta(minutes=1))
    daemon = ledger.exchange_install_token(install.token, "host")

    page = ledger.workspace_audit(owner, workspace, type="minted", limit=1)
    assert [e.credential_id for e in page.events] == [install.id]
    assert page.next_cursor is not None
    rest = ledger.workspace_audit(owner, workspace, type="minted", cursor=page.next_cursor)
    assert [e.credential_id for e in rest.events] == [daemon.token_id]
    before = ledger.workspace_valid_at(owner, workspace, install.created_at)
    assert [s.credential_id for s in before] == [install.id]
    after = ledger.workspace_valid_at(owner, workspace, clock.now())
    assert [s.credential_id for s in after] == [daemon.token_id]  # the install token is used up
    with pytest.raises(InsufficientPermissions):
        ledger.workspace_audit(member, workspace)
    with pytest.raises(WorkspaceNotFound):
        ledger.workspace_valid_at(stranger, workspace, clock.now())
