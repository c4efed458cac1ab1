"""The application's commands and queries on in-memory persistence (``tests.support.memory``).

Fast and store-free: what each operation decides and returns. PostgreSQL-only behaviour
(races, SQL, migrations, other processes) is tested in tests/integration.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from ledger.application import Ledger
from ledger.domain import RevocationReason, Role, TokenKind, User
from ledger.domain.base import LedgerAggregate
from ledger.domain.clock import ManualClock
from ledger.domain.errors import (
    CredentialNotFound,
    InstallTokenAlreadyUsed,
    InsufficientPermissions,
    InvalidToken,
    IssuerNotAdmin,
    TokenNotFound,
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


def test_a_new_users_token_verifies_to_them(ledger: Ledger) -> None:
    created = ledger.create_user("ada", "ada@example.org")
    principal = ledger.verify(created.token)
    assert principal.kind is TokenKind.PERSONAL_ACCESS_TOKEN
    assert principal.user_id == created.user_id
    assert created.expires_at == START + timedelta(days=90)
    assert ledger.get_user(created.user_id).email == "ada@example.org"


def test_a_user_is_read_once_then_answered_from_memory(ledger: Ledger) -> None:
    """``get_user`` keeps its answers because a user never changes after ``Created``: a new
    event class on ``User`` must end that (this test fails first)."""
    created = ledger.create_user("ada", "ada@example.org")
    assert ledger.cached_user(created.user_id) is None
    first = ledger.get_user(created.user_id)
    assert ledger.cached_user(created.user_id) == first
    events = [
        value
        for value in vars(User).values()
        if isinstance(value, type) and issubclass(value, LedgerAggregate.Event)
    ]
    assert set(events) == {User.Event, User.Created}  # the base the library adds, and Created
    with pytest.raises(UserNotFound):
        ledger.get_user(uuid4())
    assert ledger.get_user(created.user_id) is first


def test_mint_list_revoke_and_ownership(ledger: Ledger, clock: ManualClock) -> None:
    me, _ = new_user(ledger)
    other, _ = new_user(ledger)
    clock.advance(timedelta(seconds=1))  # listed newest first
    minted = ledger.mint_personal_access_token(me, "ci", 30)
    assert [t.name for t in ledger.list_personal_access_tokens(me)] == ["ci", "initial token"]
    with pytest.raises(TokenNotFound):
        ledger.revoke_personal_access_token(other, minted.info.id)
    ledger.revoke_personal_access_token(me, minted.info.id)
    ledger.revoke_personal_access_token(me, minted.info.id)  # idempotent
    with pytest.raises(InvalidToken):
        ledger.verify(minted.token)
    assert [t.name for t in ledger.list_personal_access_tokens(me)] == ["initial token"]


def test_expiry_is_exact_on_the_injected_clock(ledger: Ledger, clock: ManualClock) -> None:
    me, _ = new_user(ledger)
    minted = ledger.mint_personal_access_token(me, "short", 1)
    clock.advance(timedelta(days=1) - timedelta(microseconds=1))
    assert ledger.verify(minted.token).credential_id == minted.info.id
    clock.advance(timedelta(microseconds=1))
    with pytest.raises(InvalidToken):
        ledger.verify(minted.token)


def test_renewal_inside_the_window_only(ledger: Ledger, clock: ManualClock) -> None:
    created = ledger.create_user("ada")
    assert not ledger.renew_personal_access_token(created.token).renewed
    clock.advance(timedelta(days=84))
    outcome = ledger.renew_personal_access_token(created.token)
    assert outcome.renewed
    assert outcome.expires_at == clock.now() + timedelta(days=90)


def test_install_token_exchange_is_single_use(ledger: Ledger) -> None:
    owner, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "acme")
    install = ledger.mint_install_token(owner, workspace.id)
    exchanged = ledger.exchange_install_token(install.token, "host-1")
    daemon = ledger.verify(exchanged.token, {TokenKind.DAEMON_TOKEN})
    assert (daemon.workspace_id, daemon.daemon_id) == (workspace.id, "host-1")
    with pytest.raises(InstallTokenAlreadyUsed):
        ledger.exchange_install_token(install.token, "host-2")
    listed = ledger.list_daemon_tokens(owner, workspace.id)
    assert [(d.id, d.install_token_id) for d in listed] == [(exchanged.token_id, install.id)]


def test_an_issuer_demoted_before_the_exchange_is_refused(ledger: Ledger) -> None:
    owner, _ = new_user(ledger)
    admin, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "acme")
    ledger.add_member(owner, workspace.id, admin.user_id, "admin")
    install = ledger.mint_install_token(admin, workspace.id)
    ledger.change_role(owner, workspace.id, admin.user_id, "member")
    with pytest.raises(IssuerNotAdmin):
        ledger.exchange_install_token(install.token, "host-1")


def test_removing_a_member_revokes_what_they_issued(ledger: Ledger) -> None:
    owner, _ = new_user(ledger)
    admin, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "acme")
    ledger.add_member(owner, workspace.id, admin.user_id, "admin")
    unused = ledger.mint_install_token(admin, workspace.id)
    used = ledger.mint_install_token(admin, workspace.id)
    daemon = ledger.exchange_install_token(used.token, "host-1")
    assert ledger.remove_member(owner, workspace.id, admin.user_id) == 2
    for credential_id in (unused.id, daemon.token_id):
        credential = load_credential(ledger, credential_id)
        assert credential.revoked_reason is RevocationReason.MEMBER_REMOVED
    with pytest.raises(InvalidToken):
        ledger.verify(daemon.token)


def test_members_cannot_administer(ledger: Ledger) -> None:
    owner, _ = new_user(ledger)
    member, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "acme")
    ledger.add_member(owner, workspace.id, member.user_id, "member")
    assert [m.role for m in ledger.list_members(member, workspace.id)] == [Role.OWNER, Role.MEMBER]
    with pytest.raises(InsufficientPermissions):
        ledger.mint_install_token(member, workspace.id)


def test_who_may_read_a_credentials_history(ledger: Ledger) -> None:
    owner, _ = new_user(ledger)
    member, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "acme")
    ledger.add_member(owner, workspace.id, member.user_id, "member")
    install = ledger.mint_install_token(owner, workspace.id)
    history = ledger.credential_history(owner, install.id)
    assert [e.type for e in history.events] == ["minted"]
    assert history.credential.credential_id == install.id
    with pytest.raises(CredentialNotFound):
        ledger.credential_history(member, install.id)
    mine = ledger.mint_personal_access_token(member, "mine", None)
    assert ledger.credential_history(member, mine.info.id).credential.name == "mine"
    with pytest.raises(CredentialNotFound):
        ledger.credential_history(owner, mine.info.id)


def test_the_workspace_feed_and_what_was_valid_when(ledger: Ledger, clock: ManualClock) -> None:
    owner, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "acme")
    install = ledger.mint_install_token(owner, workspace.id)
    before_exchange = clock.advance(timedelta(minutes=1))
    clock.advance(timedelta(minutes=1))
    ledger.exchange_install_token(install.token, "host-1")
    page = ledger.workspace_audit(owner, workspace.id, type="consumed")
    assert [(e.type, e.credential_id) for e in page.events] == [("consumed", install.id)]
    valid = ledger.workspace_valid_at(owner, workspace.id, before_exchange)
    assert [s.credential_id for s in valid] == [install.id]
