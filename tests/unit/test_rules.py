"""The rules that span a credential and its workspace, on aggregates alone (no store)."""

from __future__ import annotations

from uuid import uuid4

import pytest

from ledger.domain import Role, rules
from ledger.domain.credential_row import CredentialRow
from ledger.domain.errors import (
    CredentialNotFound,
    DaemonTokenNotFound,
    InvalidInstallToken,
    IssuerNotAdmin,
    TokenNotFound,
)
from tests.support.builders import (
    T0,
    daemon_token,
    install_token,
    personal_access_token,
    workspace_with,
)

# ------------------------------------------------------------------- issuer still admin


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_an_install_token_of_an_owner_or_admin_may_be_exchanged(role: Role) -> None:
    workspace, (_, issuer) = workspace_with(role)
    rules.check_issuer_still_admin(install_token(workspace.id, issuer), workspace)


def test_an_issuer_demoted_to_member_may_no_longer_have_tokens_exchanged() -> None:
    workspace, (owner, issuer) = workspace_with(Role.ADMIN)
    token = install_token(workspace.id, issuer)
    workspace.change_role(by=owner, user_id=issuer, role=Role.MEMBER, at=T0)
    with pytest.raises(IssuerNotAdmin):
        rules.check_issuer_still_admin(token, workspace)


def test_an_issuer_who_left_may_no_longer_have_tokens_exchanged() -> None:
    workspace, (_, issuer) = workspace_with(Role.ADMIN)
    token = install_token(workspace.id, issuer)
    workspace.leave(user_id=issuer, at=T0)
    with pytest.raises(IssuerNotAdmin):
        rules.check_issuer_still_admin(token, workspace)


def test_an_install_token_without_its_workspace_is_invalid() -> None:
    workspace, (owner,) = workspace_with()
    with pytest.raises(InvalidInstallToken):
        rules.check_issuer_still_admin(install_token(workspace.id, owner), None)
    other, _ = workspace_with()
    with pytest.raises(InvalidInstallToken):
        rules.check_issuer_still_admin(install_token(workspace.id, owner), other)


# ---------------------------------------------------------------------------- ownership


def test_only_the_holder_owns_a_personal_access_token() -> None:
    holder, stranger = uuid4(), uuid4()
    token = personal_access_token(holder)
    rules.check_personal_token_owner(token, holder)
    with pytest.raises(TokenNotFound):
        rules.check_personal_token_owner(token, stranger)


def test_no_other_kind_is_a_personal_access_token() -> None:
    workspace, (owner,) = workspace_with()
    with pytest.raises(TokenNotFound):
        rules.check_personal_token_owner(install_token(workspace.id, owner), owner)


def test_a_daemon_token_belongs_to_its_workspace_only() -> None:
    workspace, (owner,) = workspace_with()
    daemon = daemon_token(install_token(workspace.id, owner))
    rules.check_daemon_token_of(daemon, workspace.id)
    with pytest.raises(DaemonTokenNotFound):
        rules.check_daemon_token_of(daemon, uuid4())
    with pytest.raises(DaemonTokenNotFound):
        rules.check_daemon_token_of(install_token(workspace.id, owner), workspace.id)


# ----------------------------------------------------------------- who reads a history


def test_a_personal_access_tokens_history_is_for_its_holder_only() -> None:
    holder, stranger = uuid4(), uuid4()
    row = CredentialRow.of(personal_access_token(holder))
    assert rules.history_workspace(row) is None
    rules.check_may_read_history(row, holder, None)
    with pytest.raises(CredentialNotFound):
        rules.check_may_read_history(row, stranger, None)


@pytest.mark.parametrize(
    ("role", "allowed"), [(Role.OWNER, True), (Role.ADMIN, True), (Role.MEMBER, False)]
)
def test_a_workspace_tokens_history_is_for_its_owners_and_admins(role: Role, allowed: bool) -> None:
    workspace, (owner, reader) = workspace_with(role)
    row = CredentialRow.of(daemon_token(install_token(workspace.id, owner)))
    assert rules.history_workspace(row) == workspace.id
    if allowed:
        rules.check_may_read_history(row, reader, workspace)
    else:
        with pytest.raises(CredentialNotFound):
            rules.check_may_read_history(row, reader, workspace)


def test_a_workspace_tokens_history_is_hidden_from_non_members_and_other_workspaces() -> None:
    workspace, (owner,) = workspace_with()
    row = CredentialRow.of(install_token(workspace.id, owner))
    with pytest.raises(CredentialNotFound):
        rules.check_may_read_history(row, uuid4(), workspace)
    other, (other_owner,) = workspace_with()
    with pytest.raises(CredentialNotFound):
        rules.check_may_read_history(row, other_owner, other)
    with pytest.raises(CredentialNotFound):
        rules.check_may_read_history(row, owner, None)
