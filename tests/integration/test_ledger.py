"""Every core operation of the contract on real PostgreSQL, one call each."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from uuid import uuid4

import pytest

from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain import Credential, Role, TokenKind, verify_chain
from ledger.domain.clock import ManualClock
from ledger.domain.errors import (
    AlreadyMember,
    DaemonIdRequired,
    DaemonTokenNotFound,
    InstallTokenAlreadyUsed,
    InsufficientPermissions,
    InvalidExpiresInDays,
    InvalidInstallToken,
    InvalidRole,
    InvalidToken,
    InvalidTokenId,
    IssuerNotAdmin,
    LastOwner,
    MalformedInstallToken,
    MemberNotFound,
    NameRequired,
    NotRenewable,
    ServiceUnavailable,
    TokenNoLongerValid,
    TokenNotFound,
    UserNotFound,
    WorkspaceNotFound,
)
from ledger.domain.tokens import issue
from tests.support.principals import START, load_credential, new_user

PAT = {TokenKind.PERSONAL_ACCESS_TOKEN}
DAEMON = {TokenKind.DAEMON_TOKEN}


# ---------------------------------------------------------------------------------- users


def test_created_user_has_a_90_day_token_that_verifies(ledger: PostgresLedger) -> None:
    created = ledger.create_user("Ada", "ada@example.com")
    assert created.expires_at == START + timedelta(days=90)
    assert created.token_prefix == created.token[:12]
    principal = ledger.verify(created.token, PAT)
    assert principal.user_id == created.user_id
    info = ledger.get_user(created.user_id)
    assert (info.name, info.email) == ("Ada", "ada@example.com")


def test_unknown_user_is_not_found(ledger: PostgresLedger) -> None:
    with pytest.raises(UserNotFound):
        ledger.get_user(uuid4())


def test_a_credential_id_is_not_a_user(ledger: PostgresLedger) -> None:
    created = ledger.create_user("Ada")
    principal = ledger.verify(created.token)
    with pytest.raises(UserNotFound):
        ledger.get_user(principal.credential_id)


# ------------------------------------------------------------------- personal access tokens


def test_mint_list_and_revoke_personal_access_tokens(
    ledger: PostgresLedger, clock: ManualClock
) -> None:
    me, _ = new_user(ledger)
    clock.advance(timedelta(seconds=1))
    first = ledger.mint_personal_access_token(me, "laptop", 30)
    clock.advance(timedelta(seconds=1))
    second = ledger.mint_personal_access_token(me, "  ci  ", None)
    assert first.info.expires_at == START + timedelta(days=30, seconds=1)
    assert second.info.expires_at is None
    assert second.info.name == "ci"
    assert first.info.token_prefix == first.token[:12]

    listed = ledger.list_personal_access_tokens(me)
    # newest first, then the initial token of the user
    assert [t.id for t in listed] == [second.info.id, first.info.id, me.credential_id]
    assert all(not hasattr(t, "token") for t in listed)

    ledger.revoke_personal_access_token(me, str(first.info.id))
    ledger.revoke_personal_access_token(me, first.info.id)  # idempotent
    assert first.info.id not in [t.id for t in ledger.list_personal_access_tokens(me)]
    with pytest.raises(InvalidToken):
        ledger.verify(first.token)


def test_expired_tokens_are_listed_but_do_not_verify(
    ledger: PostgresLedger, clock: ManualClock
) -> None:
    me, _ = new_user(ledger)
    minted = ledger.mint_personal_access_token(me, "short", 1)
    clock.advance(timedelta(days=1))
    assert minted.info.id in [t.id for t in ledger.list_personal_access_tokens(me)]
    with pytest.raises(InvalidToken):
        ledger.verify(minted.token)
    clock.set(START)
    assert ledger.verify(minted.token).credential_id == minted.info.id


@pytest.mark.parametrize("days", [0, 3651, -5, True, "7"])
def test_invalid_expiry_is_refused(ledger: PostgresLedger, days: object) -> None:
    me, _ = new_user(ledger)
    with pytest.raises(InvalidExpiresInDays):
        ledger.mint_personal_access_token(me, "x", days)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "   ", "n" * 101])
def test_blank_or_long_token_name_is_refused(ledger: PostgresLedger, name: str) -> None:
    me, _ = new_user(ledger)
    with pytest.raises(NameRequired):
        ledger.mint_personal_access_token(me, name, None)


def test_revoking_someone_elses_token_is_not_found(ledger: PostgresLedger) -> None:
    me, _ = new_user(ledger)
    other, other_token = new_user(ledger)
    with pytest.raises(TokenNotFound):
        ledger.revoke_personal_access_token(me, other.credential_id)
    with pytest.raises(TokenNotFound):
        ledger.revoke_personal_access_token(me, uuid4())
    with pytest.raises(InvalidTokenId):
        ledger.revoke_personal_access_token(me, "not-a-uuid")
    assert ledger.verify(other_token).user_id == other.user_id


def test_renewal_window(ledger: PostgresLedger, clock: ManualClock) -> None:
    me, _ = new_user(ledger)
    token = ledger.mint_personal_access_token(me, "cli", 30).token
    not_yet = ledger.renew_personal_access_token(token)
    assert (not_yet.renewed, not_yet.expires_at) == (False, START + timedelta(days=30))

    clock.advance(timedelta(days=23))  # exactly 7 days left
    renewed = ledger.renew_personal_access_token(token)
    assert renewed.renewed
    assert renewed.expires_at == clock.now() + timedelta(days=90)
    assert ledger.verify(token).expires_at == renewed.expires_at

    never = ledger.mint_personal_access_token(me, "forever", None).token
    outcome = ledger.renew_personal_access_token(never)
    assert (outcome.renewed, outcome.expires_at) == (False, None)


def test_renewal_refusals(ledger: PostgresLedger, clock: ManualClock) -> None:
    me, _ = new_user(ledger)
    workspace = ledger.create_workspace(me, "w")
    install = ledger.mint_install_token(me, workspace.id).token
    daemon = ledger.exchange_install_token(
        ledger.mint_install_token(me, workspace.id).token, "box"
    ).token
    for not_a_pat in [None, "", "garbage", install, daemon]:
        with pytest.raises(NotRenewable):
            ledger.renew_personal_access_token(not_a_pat)

    unknown = issue(TokenKind.PERSONAL_ACCESS_TOKEN).raw
    revoked = ledger.mint_personal_access_token(me, "r", 3)
    ledger.revoke_personal_access_token(me, revoked.info.id)
    expired = ledger.mint_personal_access_token(me, "e", 1).token
    clock.advance(timedelta(days=1))
    for dead in [unknown, unknown[:-1] + "x", revoked.token, expired]:
        with pytest.raises(TokenNoLongerValid):
            ledger.renew_personal_access_token(dead)


# -------------------------------------------------------------------------------- verify


def test_verify_checks_kind_and_format_first(ledger: PostgresLedger) -> None:
    me, token = new_user(ledger)
    with pytest.raises(InvalidToken):
        ledger.verify(token, DAEMON)
    for bad in ["", "mul_x", token[:-1] + ("A" if token[-1] != "A" else "B"), None]:
        with pytest.raises(InvalidToken):
            ledger.verify(bad)  # type: ignore[arg-type]
    assert asdict(ledger.verify(token, PAT)) == asdict(me)


def test_an_install_token_is_never_a_bearer(ledger: PostgresLedger) -> None:
    me, _ = new_user(ledger)
    workspace = ledger.create_workspace(me, "w")
    install = ledger.mint_install_token(me, workspace.id)
    with pytest.raises(InvalidToken):
        ledger.verify(install.token, PAT | DAEMON)


def test_a_revocation_is_refused_at_once_by_the_process_that_made_it(
    ledger: PostgresLedger,
) -> None:
    me, _ = new_user(ledger)
    minted = ledger.mint_personal_access_token(me, "t", None)
    assert ledger.verify(minted.token).credential_id == minted.info.id  # now cached
    ledger.revoke_personal_access_token(me, minted.info.id)
    with pytest.raises(InvalidToken):
        ledger.verify(minted.token)


def test_without_a_cache_every_process_is_exact(
    ledger: PostgresLedger, database_url: str, clock: ManualClock
) -> None:
    me, _ = new_user(ledger)
    minted = ledger.mint_personal_access_token(me, "t", None)
    exact = build_ledger(
        database_url, settings=Settings(pool_size=1, verify_cache_max_ttl_s=0), clock=clock
    )
    try:
        assert exact.verify(minted.token).credential_id == minted.info.id
        ledger.revoke_personal_access_token(me, minted.info.id)
        with pytest.raises(InvalidToken):
            exact.verify(minted.token)
    finally:
        exact.close()


# ----------------------------------------------------------------------------- workspaces


def test_workspace_membership_through_the_ledger(
    ledger: PostgresLedger, clock: ManualClock
) -> None:
    owner, _ = new_user(ledger)
    admin, _ = new_user(ledger)
    member, _ = new_user(ledger)
    outsider, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "acme")
    assert ledger.get_workspace(owner, workspace.id).name == "acme"
    ledger.add_member(owner, workspace.id, admin.user_id, "admin")
    clock.advance(timedelta(seconds=1))
    added = ledger.add_member(admin, workspace.id, member.user_id, "member")
    assert added.role is Role.MEMBER
    assert added.joined_at == clock.now()

    members = ledger.list_members(member, workspace.id)
    assert [(m.user_id, m.role) for m in members] == [
        (owner.user_id, Role.OWNER),
        (admin.user_id, Role.ADMIN),
        (member.user_id, Role.MEMBER),
    ]
    with pytest.raises(WorkspaceNotFound):
        ledger.list_members(outsider, workspace.id)
    with pytest.raises(WorkspaceNotFound):
        ledger.list_members(owner, uuid4())
    with pytest.raises(InvalidRole):
        ledger.add_member(owner, workspace.id, outsider.user_id, "root")
    with pytest.raises(UserNotFound):
        ledger.add_member(owner, workspace.id, uuid4(), "member")
    with pytest.raises(AlreadyMember):
        ledger.add_member(owner, workspace.id, member.user_id, "admin")
    with pytest.raises(InsufficientPermissions):
        ledger.add_member(admin, workspace.id, outsider.user_id, "owner")
    with pytest.raises(InsufficientPermissions):
        ledger.add_member(member, workspace.id, outsider.user_id, "member")

    changed = ledger.change_role(owner, workspace.id, member.user_id, "admin")
    assert changed.role is Role.ADMIN
    with pytest.raises(LastOwner):
        ledger.change_role(owner, workspace.id, owner.user_id, "member")
    with pytest.raises(MemberNotFound):
        ledger.change_role(owner, workspace.id, outsider.user_id, "member")
    with pytest.raises(LastOwner):
        ledger.leave_workspace(owner, workspace.id)
    ledger.leave_workspace(member, workspace.id)
    with pytest.raises(WorkspaceNotFound):
        ledger.leave_workspace(member, workspace.id)
    ledger.remove_member(owner, workspace.id, admin.user_id)
    with pytest.raises(MemberNotFound):
        ledger.remove_member(owner, workspace.id, admin.user_id)
    assert [m.user_id for m in ledger.list_members(owner, workspace.id)] == [owner.user_id]


# ------------------------------------------------------------------ install and daemon tokens


def test_install_token_exchange_and_daemon_token_lifecycle(
    ledger: PostgresLedger, clock: ManualClock
) -> None:
    owner, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "acme")
    install = ledger.mint_install_token(owner, workspace.id)
    assert install.expires_at == START + timedelta(minutes=15)
    assert install.token.startswith("mit_")

    exchanged = ledger.exchange_install_token(f"  {install.token} ", "  box-1 ")
    assert (exchanged.workspace_id, exchanged.daemon_id, exchanged.expires_at) == (
        workspace.id,
        "box-1",
        None,
    )
    whoami = ledger.verify(exchanged.token, DAEMON)
    assert (whoami.credential_id, whoami.workspace_id, whoami.daemon_id) == (
        exchanged.token_id,
        workspace.id,
        "box-1",
    )
    with pytest.raises(InvalidToken):
        ledger.verify(exchanged.token, PAT)

    [listed] = ledger.list_daemon_tokens(owner, workspace.id)
    assert listed.id == exchanged.token_id
    assert listed.created_by == owner.user_id
    assert listed.install_token_id == install.id
    assert listed.revoked_at is None

    clock.advance(timedelta(minutes=1))
    ledger.revoke_daemon_token(owner, workspace.id, exchanged.token_id)
    ledger.revoke_daemon_token(owner, workspace.id, str(exchanged.token_id))  # idempotent
    [listed] = ledger.list_daemon_tokens(owner, workspace.id)
    assert listed.revoked_at == clock.now()
    with pytest.raises(InvalidToken):
        ledger.verify(exchanged.token, DAEMON)
    with pytest.raises(DaemonTokenNotFound):
        ledger.revoke_daemon_token(owner, workspace.id, uuid4())
    with pytest.raises(DaemonTokenNotFound):
        ledger.revoke_daemon_token(owner, workspace.id, install.id)


def test_daemon_tokens_are_private_to_their_workspace(ledger: PostgresLedger) -> None:
    owner, _ = new_user(ledger)
    first = ledger.create_workspace(owner, "one")
    second = ledger.create_workspace(owner, "two")
    daemon = ledger.exchange_install_token(ledger.mint_install_token(owner, first.id).token, "d")
    with pytest.raises(DaemonTokenNotFound):
        ledger.revoke_daemon_token(owner, second.id, daemon.token_id)
    assert ledger.list_daemon_tokens(owner, second.id) == []


def test_only_administrators_handle_install_and_daemon_tokens(ledger: PostgresLedger) -> None:
    owner, _ = new_user(ledger)
    member, _ = new_user(ledger)
    outsider, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "acme")
    ledger.add_member(owner, workspace.id, member.user_id, "member")
    with pytest.raises(InsufficientPermissions):
        ledger.mint_install_token(member, workspace.id)
    with pytest.raises(WorkspaceNotFound):
        ledger.mint_install_token(outsider, workspace.id)
    with pytest.raises(InsufficientPermissions):
        ledger.list_daemon_tokens(member, workspace.id)
    with pytest.raises(InsufficientPermissions):
        ledger.revoke_daemon_token(member, workspace.id, uuid4())


def test_exchange_error_table(ledger: PostgresLedger, clock: ManualClock) -> None:
    owner, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "acme")
    pat = ledger.mint_personal_access_token(owner, "p", None).token
    valid = ledger.mint_install_token(owner, workspace.id).token

    for malformed in [
        None,
        "",
        "   ",
        pat,
        valid[:-1] + "0" if valid[-1] != "0" else valid[:-1] + "1",
    ]:
        with pytest.raises(MalformedInstallToken):
            ledger.exchange_install_token(malformed, "box")
    for blank in [None, "", "  ", "x" * 129]:
        with pytest.raises(DaemonIdRequired):
            ledger.exchange_install_token(valid, blank)
    with pytest.raises(InvalidInstallToken):
        ledger.exchange_install_token(issue(TokenKind.INSTALL_TOKEN).raw, "box")

    used = ledger.mint_install_token(owner, workspace.id).token
    ledger.exchange_install_token(used, "box")
    expiring = ledger.mint_install_token(owner, workspace.id).token
    clock.advance(timedelta(minutes=15))
    with pytest.raises(InvalidInstallToken):
        ledger.exchange_install_token(expiring, "box")
    with pytest.raises(InstallTokenAlreadyUsed):
        ledger.exchange_install_token(used, "box")  # used and expired: still "already used"


def test_exchange_refused_when_issuer_lost_admin_leaves_token_unconsumed(
    ledger: PostgresLedger,
) -> None:
    owner, _ = new_user(ledger)
    admin, _ = new_user(ledger)
    workspace = ledger.create_workspace(owner, "acme")
    ledger.add_member(owner, workspace.id, admin.user_id, "admin")
    install = ledger.mint_install_token(admin, workspace.id)
    ledger.change_role(owner, workspace.id, admin.user_id, "member")
    with pytest.raises(IssuerNotAdmin):
        ledger.exchange_install_token(install.token, "box")
    ledger.change_role(owner, workspace.id, admin.user_id, "admin")
    assert ledger.exchange_install_token(install.token, "box").daemon_id == "box"


# ------------------------------------------------------------------------------- the store


def test_stored_streams_form_hash_chains(ledger: PostgresLedger) -> None:
    me, _ = new_user(ledger)
    token = ledger.mint_personal_access_token(me, "t", 3)
    ledger.renew_personal_access_token(token.token)
    ledger.revoke_personal_access_token(me, token.info.id)
    events = list(ledger.events.get(token.info.id))
    assert [type(e).__name__ for e in events] == ["Minted", "Renewed", "Revoked"]
    assert verify_chain(events) == load_credential(ledger, token.info.id).chain_hash
    assert all(e.actor.type == "user" for e in events)  # type: ignore[attr-defined]
    assert isinstance(load_credential(ledger, token.info.id), Credential)


def test_unreachable_store_answers_service_unavailable() -> None:
    with pytest.raises(ServiceUnavailable):
        build_ledger("postgresql://postgres@127.0.0.1:1/ledger", settings=Settings(pool_size=1))
