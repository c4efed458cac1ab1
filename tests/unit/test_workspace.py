"""Every role rule and the last-owner rule of the workspace aggregate."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from ledger.domain import Role, Workspace
from ledger.domain.errors import (
    AlreadyMember,
    InsufficientPermissions,
    LastOwner,
    LedgerError,
    MemberNotFound,
    WorkspaceNotFound,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def workspace_with(*roles: Role) -> tuple[Workspace, list[UUID]]:
    """A workspace whose first member is its owner, then one member per given role."""
    owner = uuid4()
    workspace = Workspace.create(id=uuid4(), name="acme", owner_id=owner, at=T0)
    ids = [owner]
    for role in roles:
        user = uuid4()
        workspace.add_member(by=owner, user_id=user, role=role, at=T0)
        ids.append(user)
    return workspace, ids


def test_creator_is_the_owner() -> None:
    workspace, (owner,) = workspace_with()
    assert workspace.role_of(owner) is Role.OWNER


# ------------------------------------------------------------------------------------ add

ADD_RULES: list[tuple[Role, Role, type[LedgerError] | None]] = [
    (Role.OWNER, Role.OWNER, None),
    (Role.OWNER, Role.ADMIN, None),
    (Role.OWNER, Role.MEMBER, None),
    (Role.ADMIN, Role.OWNER, InsufficientPermissions),
    (Role.ADMIN, Role.ADMIN, None),
    (Role.ADMIN, Role.MEMBER, None),
    (Role.MEMBER, Role.OWNER, InsufficientPermissions),
    (Role.MEMBER, Role.ADMIN, InsufficientPermissions),
    (Role.MEMBER, Role.MEMBER, InsufficientPermissions),
]


@pytest.mark.parametrize(("actor_role", "new_role", "error"), ADD_RULES)
def test_add_member_rules(
    actor_role: Role, new_role: Role, error: type[LedgerError] | None
) -> None:
    workspace, ids = workspace_with(Role.ADMIN, Role.MEMBER)
    actor = {Role.OWNER: ids[0], Role.ADMIN: ids[1], Role.MEMBER: ids[2]}[actor_role]
    newcomer = uuid4()
    if error is None:
        member = workspace.add_member(by=actor, user_id=newcomer, role=new_role, at=T0)
        assert member.role is new_role
        assert workspace.role_of(newcomer) is new_role
    else:
        with pytest.raises(error):
            workspace.add_member(by=actor, user_id=newcomer, role=new_role, at=T0)
        assert workspace.role_of(newcomer) is None


def test_non_member_cannot_see_the_workspace() -> None:
    workspace, _ = workspace_with()
    with pytest.raises(WorkspaceNotFound):
        workspace.add_member(by=uuid4(), user_id=uuid4(), role=Role.MEMBER, at=T0)


def test_adding_an_existing_member_conflicts() -> None:
    workspace, (owner, admin) = workspace_with(Role.ADMIN)
    with pytest.raises(AlreadyMember):
        workspace.add_member(by=owner, user_id=admin, role=Role.MEMBER, at=T0)


# ---------------------------------------------------------------------------- change role

CHANGE_RULES: list[tuple[Role, Role, Role, type[LedgerError] | None]] = [
    # actor, target's role, new role, expected error
    (Role.OWNER, Role.MEMBER, Role.OWNER, None),
    (Role.OWNER, Role.ADMIN, Role.MEMBER, None),
    (Role.ADMIN, Role.MEMBER, Role.ADMIN, None),
    (Role.ADMIN, Role.ADMIN, Role.MEMBER, None),
    (Role.ADMIN, Role.MEMBER, Role.OWNER, InsufficientPermissions),
    (Role.ADMIN, Role.OWNER, Role.MEMBER, InsufficientPermissions),
    (Role.MEMBER, Role.MEMBER, Role.ADMIN, InsufficientPermissions),
]


@pytest.mark.parametrize(("actor_role", "target_role", "new_role", "error"), CHANGE_RULES)
def test_change_role_rules(
    actor_role: Role, target_role: Role, new_role: Role, error: type[LedgerError] | None
) -> None:
    workspace, ids = workspace_with(Role.OWNER, Role.ADMIN, Role.MEMBER, Role.ADMIN, Role.MEMBER)
    # ids: 0 owner (actor), 1 owner (target), 2 admin (actor), 3 member (actor),
    # 4 admin (target), 5 member (target)
    actor = {Role.OWNER: ids[0], Role.ADMIN: ids[2], Role.MEMBER: ids[3]}[actor_role]
    target = {Role.OWNER: ids[1], Role.ADMIN: ids[4], Role.MEMBER: ids[5]}[target_role]
    if error is None:
        workspace.change_role(by=actor, user_id=target, role=new_role, at=T0)
        assert workspace.role_of(target) is new_role
    else:
        with pytest.raises(error):
            workspace.change_role(by=actor, user_id=target, role=new_role, at=T0)
        assert workspace.role_of(target) is target_role


def test_the_last_owner_cannot_be_demoted() -> None:
    workspace, (owner,) = workspace_with()
    with pytest.raises(LastOwner):
        workspace.change_role(by=owner, user_id=owner, role=Role.ADMIN, at=T0)
    assert workspace.role_of(owner) is Role.OWNER


def test_an_owner_can_step_down_when_another_owner_remains() -> None:
    workspace, (owner, other_owner) = workspace_with(Role.OWNER)
    workspace.change_role(by=owner, user_id=owner, role=Role.ADMIN, at=T0)
    assert workspace.role_of(owner) is Role.ADMIN
    assert workspace.role_of(other_owner) is Role.OWNER


def test_changing_to_the_same_role_records_nothing() -> None:
    workspace, (owner, admin) = workspace_with(Role.ADMIN)
    version = workspace.version
    workspace.change_role(by=owner, user_id=admin, role=Role.ADMIN, at=T0)
    assert workspace.version == version


def test_changing_the_role_of_a_non_member_is_member_not_found() -> None:
    workspace, (owner,) = workspace_with()
    with pytest.raises(MemberNotFound):
        workspace.change_role(by=owner, user_id=uuid4(), role=Role.ADMIN, at=T0)


# --------------------------------------------------------------------------------- remove

REMOVE_RULES: list[tuple[Role, Role, type[LedgerError] | None]] = [
    (Role.OWNER, Role.OWNER, None),
    (Role.OWNER, Role.ADMIN, None),
    (Role.OWNER, Role.MEMBER, None),
    (Role.ADMIN, Role.OWNER, InsufficientPermissions),
    (Role.ADMIN, Role.ADMIN, None),
    (Role.ADMIN, Role.MEMBER, None),
    (Role.MEMBER, Role.MEMBER, InsufficientPermissions),
]


@pytest.mark.parametrize(("actor_role", "target_role", "error"), REMOVE_RULES)
def test_remove_member_rules(
    actor_role: Role, target_role: Role, error: type[LedgerError] | None
) -> None:
    workspace, ids = workspace_with(Role.OWNER, Role.ADMIN, Role.MEMBER, Role.ADMIN, Role.MEMBER)
    actor = {Role.OWNER: ids[0], Role.ADMIN: ids[2], Role.MEMBER: ids[3]}[actor_role]
    target = {Role.OWNER: ids[1], Role.ADMIN: ids[4], Role.MEMBER: ids[5]}[target_role]
    if error is None:
        workspace.remove_member(by=actor, user_id=target, at=T0)
        assert workspace.role_of(target) is None
    else:
        with pytest.raises(error):
            workspace.remove_member(by=actor, user_id=target, at=T0)
        assert workspace.role_of(target) is target_role


def test_the_last_owner_cannot_be_removed() -> None:
    workspace, (owner, _admin) = workspace_with(Role.ADMIN)
    with pytest.raises(LastOwner):
        workspace.remove_member(by=owner, user_id=owner, at=T0)


def test_the_last_owner_cannot_leave() -> None:
    workspace, (owner,) = workspace_with()
    with pytest.raises(LastOwner):
        workspace.leave(user_id=owner, at=T0)
    assert workspace.role_of(owner) is Role.OWNER


def test_any_member_can_leave() -> None:
    workspace, (_owner, member) = workspace_with(Role.MEMBER)
    workspace.leave(user_id=member, at=T0)
    assert workspace.role_of(member) is None
    removed = workspace.pending_events[-1]
    assert isinstance(removed, Workspace.MemberRemoved)
    assert removed.left is True


def test_a_non_member_cannot_leave() -> None:
    workspace, _ = workspace_with()
    with pytest.raises(WorkspaceNotFound):
        workspace.leave(user_id=uuid4(), at=T0)


def test_removing_a_non_member_is_member_not_found() -> None:
    workspace, (owner,) = workspace_with()
    with pytest.raises(MemberNotFound):
        workspace.remove_member(by=owner, user_id=uuid4(), at=T0)
