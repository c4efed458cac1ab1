"""Bulk revocation, offboarding, the paged and filtered lists, notes and ``user_created``, on
in-memory persistence: what each operation decides."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledger.application import Ledger
from ledger.domain import RevocationReason, Role, TokenKind
from ledger.domain.clock import ManualClock
from ledger.domain.errors import (
    InvalidNote,
    InvalidQueryParameter,
    InvalidToken,
    InvalidUserId,
    UserNotFound,
)
from tests.support.memory import memory_ledger
from tests.support.principals import START, load_credential, new_user


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def ledger(clock: ManualClock) -> Ledger:
    return memory_ledger(clock)


def test_revoke_all_revokes_every_token_of_the_caller_and_no_one_elses(ledger: Ledger) -> None:
    me, token = new_user(ledger)
    other, other_token = new_user(ledger)
    minted = [ledger.mint_personal_access_token(me, f"t{i}") for i in range(3)]
    assert ledger.revoke_all_personal_access_tokens(me) == 4
    for raw in (token, *(m.token for m in minted)):
        with pytest.raises(InvalidToken):
            ledger.verify(raw)
    assert ledger.verify(other_token).user_id == other.user_id
    credential = load_credential(ledger, minted[0].info.id)
    assert credential.revoked_reason is RevocationReason.USER_REQUEST
    assert ledger.list_personal_access_tokens(me) == []


def test_revoke_all_can_keep_the_bearer(ledger: Ledger) -> None:
    me, token = new_user(ledger)
    minted = ledger.mint_personal_access_token(me, "ci")
    assert ledger.revoke_all_personal_access_tokens(me, keep_current=True) == 1
    assert ledger.verify(token).credential_id == me.credential_id
    with pytest.raises(InvalidToken):
        ledger.verify(minted.token)
    assert ledger.revoke_all_personal_access_tokens(me, keep_current=True) == 0


def test_offboarding_revokes_tokens_and_what_the_user_issued_in_every_workspace(
    ledger: Ledger,
) -> None:
    leaver, leaver_token = new_user(ledger)
    stayer, stayer_token = new_user(ledger)
    first = ledger.create_workspace(leaver, "one")
    second = ledger.create_workspace(stayer, "two")
    ledger.add_member(stayer, second.id, leaver.user_id, "admin")
    pat = ledger.mint_personal_access_token(leaver, "laptop")
    unused = ledger.mint_install_token(leaver, first.id)
    used = ledger.mint_install_token(leaver, second.id)
    daemon = ledger.exchange_install_token(used.token, "box")
    others = ledger.mint_install_token(stayer, second.id)
    assert ledger.offboard_user(leaver.user_id, "left the company") == 4
    for credential_id in (leaver.credential_id, pat.info.id, unused.id, daemon.token_id):
        credential = load_credential(ledger, credential_id)
        assert credential.revoked_reason is RevocationReason.OFFBOARDED
    assert load_credential(ledger, used.id).revoked_at is None  # consumed: its daemon is revoked
    assert load_credential(ledger, others.id).revoked_at is None
    assert ledger.verify(stayer_token).user_id == stayer.user_id
    for raw in (leaver_token, pat.token, daemon.token):
        with pytest.raises(InvalidToken):
            ledger.verify(raw)
    history = ledger.audit.history(daemon.token_id)
    revoked = history.events[-1]
    assert (revoked.type, revoked.actor.type) == ("revoked", "system")
    assert revoked.data == {"reason": "offboarded", "note": "left the company"}
    assert ledger.offboard_user(leaver.user_id) == 0  # nothing left


def test_offboarding_an_unknown_user_is_refused(ledger: Ledger) -> None:
    with pytest.raises(UserNotFound):
        ledger.offboard_user("00000000-0000-0000-0000-000000000001")
    with pytest.raises(InvalidUserId):
        ledger.offboard_user("not-a-uuid")


def test_pages_cover_every_token_newest_first_without_repeats(
    ledger: Ledger, clock: ManualClock
) -> None:
    me, _ = new_user(ledger)
    for i in range(6):
        clock.advance(timedelta(seconds=1 if i % 2 else 0))  # pairs share an instant
        ledger.mint_personal_access_token(me, f"t{i}")
    everything = [t.id for t in ledger.list_personal_access_tokens(me)]
    seen = []
    cursor = None
    pages = 0
    while True:
        page = ledger.page_personal_access_tokens(me, limit=3, cursor=cursor)
        seen += [t.id for t in page.tokens]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == everything
    assert pages == 3  # 7 tokens, pages of 3


def test_the_expiring_filter_keeps_only_tokens_expiring_within_the_days(
    ledger: Ledger, clock: ManualClock
) -> None:
    me, _ = new_user(ledger)  # initial token: 90 days
    soon = ledger.mint_personal_access_token(me, "soon", 3)
    ledger.mint_personal_access_token(me, "never")
    expired = ledger.mint_personal_access_token(me, "expired", 1)
    clock.advance(timedelta(days=1))  # "expired" expires exactly now: not after now
    page = ledger.page_personal_access_tokens(me, expiring_within_days=2)
    assert [t.id for t in page.tokens] == [soon.info.id]
    assert expired.info.id not in [t.id for t in page.tokens]
    assert ledger.page_personal_access_tokens(me, expiring_within_days=0).tokens == []
    assert len(ledger.page_personal_access_tokens(me, expiring_within_days=89).tokens) == 2


@pytest.mark.parametrize(
    ("limit", "cursor", "days"),
    [(0, None, None), (1001, None, None), (10, "garbage!", None), (10, "", -1), (10, None, 3651)],
)
def test_bad_list_parameters_are_refused(
    ledger: Ledger, limit: int, cursor: str | None, days: int | None
) -> None:
    me, _ = new_user(ledger)
    with pytest.raises(InvalidQueryParameter):
        ledger.page_personal_access_tokens(
            me, limit=limit, cursor=cursor, expiring_within_days=days
        )


def test_the_workspace_list_has_the_callers_role_and_forgets_a_workspace_they_left(
    ledger: Ledger, clock: ManualClock
) -> None:
    owner, _ = new_user(ledger)
    me, _ = new_user(ledger)
    mine = ledger.create_workspace(me, "mine")
    clock.advance(timedelta(seconds=1))  # listed oldest first
    theirs = ledger.create_workspace(owner, "theirs")
    clock.advance(timedelta(seconds=1))
    left = ledger.create_workspace(owner, "left")
    ledger.add_member(owner, theirs.id, me.user_id, "member")
    ledger.change_role(owner, theirs.id, me.user_id, "admin")
    ledger.add_member(owner, left.id, me.user_id, "member")
    ledger.leave_workspace(me, left.id)
    listed = [(w.id, w.name, w.role) for w in ledger.list_workspaces(me)]
    assert listed == [(mine.id, "mine", Role.OWNER), (theirs.id, "theirs", Role.ADMIN)]
    assert [w.id for w in ledger.list_workspaces(owner)] == [theirs.id, left.id]


def test_the_expiring_report_names_each_holder(ledger: Ledger, clock: ManualClock) -> None:
    created = ledger.create_user("ada")
    ada = ledger.verify(created.token)
    workspace = ledger.create_workspace(ada, "acme")
    install = ledger.mint_install_token(ada, workspace.id)
    ledger.mint_personal_access_token(ada, "later", 30)
    found = ledger.expiring_credentials(7)
    assert [(e.id, e.kind, e.holder_name) for e in found] == [
        (install.id, TokenKind.INSTALL_TOKEN.value, "ada")
    ]
    assert found[0].holder_id == created.user_id
    assert [e.id for e in ledger.expiring_credentials(90, workspace.id)] == [install.id]
    clock.advance(timedelta(days=60))
    assert [e.name for e in ledger.expiring_credentials(30)] == ["initial token"]


def test_a_revocation_note_is_recorded_and_checked(ledger: Ledger) -> None:
    me, _ = new_user(ledger)
    minted = ledger.mint_personal_access_token(me, "ci")
    for bad in ("", "   ", "line\nbreak", "x" * 201):
        with pytest.raises(InvalidNote):
            ledger.revoke_personal_access_token(me, minted.info.id, bad)
    assert load_credential(ledger, minted.info.id).revoked_at is None  # nothing written
    ledger.revoke_personal_access_token(me, minted.info.id, "  leaked in a CI log  ")
    revoked = ledger.audit.history(minted.info.id).events[-1]
    assert revoked.data == {"reason": "user_request", "note": "leaked in a CI log"}


def test_an_admin_revocation_of_a_daemon_token_carries_its_note(ledger: Ledger) -> None:
    owner, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "acme")
    install = ledger.mint_install_token(owner, workspace.id)
    daemon = ledger.exchange_install_token(install.token, "box")
    ledger.revoke_daemon_token(owner, workspace.id, daemon.token_id, "box retired")
    revoked = ledger.audit.history(daemon.token_id).events[-1]
    assert revoked.data == {"reason": "admin", "note": "box retired"}


def test_user_creation_is_in_the_audit_trail(ledger: Ledger) -> None:
    created = ledger.create_user("ada", "ada@example.org")
    page = ledger.audit.events(type="user_created")
    [event] = [e for e in page.events if e.user_id == created.user_id]
    assert (event.actor.type, event.actor.id) == ("system", "operator")
    assert (event.credential_id, event.workspace_id) == (None, None)
    assert event.data == {"name": "ada", "email": "ada@example.org"}
