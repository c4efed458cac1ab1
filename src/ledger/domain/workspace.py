"""The workspace aggregate: its members and their roles, with the contract's role rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from ledger.domain.base import LedgerAggregate
from ledger.domain.errors import (
    AlreadyMember,
    InsufficientPermissions,
    LastOwner,
    MemberNotFound,
    WorkspaceNotFound,
)
from ledger.domain.model import Actor, Role


@dataclass(frozen=True, slots=True)
class Member:
    """A user's membership of a workspace."""

    user_id: UUID
    role: Role
    joined_at: datetime


class Workspace(LedgerAggregate):
    """A workspace: who belongs to it and with which role. Always has at least one owner."""

    name: str
    members: dict[UUID, Member]

    def __init__(self) -> None:
        self.members = {}

    class Created(LedgerAggregate.Created):
        name: str
        owner_id: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.name = self.name
            aggregate.members = {
                self.owner_id: Member(self.owner_id, Role.OWNER, self.timestamp),
            }

    class MemberAdded(LedgerAggregate.Event):
        user_id: UUID
        role: str

        def apply(self, aggregate: Any) -> None:
            aggregate.members[self.user_id] = Member(self.user_id, Role(self.role), self.timestamp)

    class MemberRoleChanged(LedgerAggregate.Event):
        user_id: UUID
        role_before: str
        role_after: str

        def apply(self, aggregate: Any) -> None:
            member: Member = aggregate.members[self.user_id]
            aggregate.members[self.user_id] = Member(
                member.user_id, Role(self.role_after), member.joined_at
            )

    class MemberRemoved(LedgerAggregate.Event):
        user_id: UUID
        role: str
        left: bool

        def apply(self, aggregate: Any) -> None:
            del aggregate.members[self.user_id]

    @classmethod
    def create(cls, *, id: UUID, name: str, owner_id: UUID, at: datetime) -> Workspace:  # noqa: A002
        return cls._start(
            cls.Created, id=id, at=at, actor=Actor.user(owner_id), name=name, owner_id=owner_id
        )

    # ----------------------------------------------------------------------------- queries

    def role_of(self, user_id: UUID) -> Role | None:
        member = self.members.get(user_id)
        return member.role if member else None

    def check_member(self, user_id: UUID) -> Role:
        """Raise ``WorkspaceNotFound`` unless ``user_id`` is a member; return the role."""
        role = self.role_of(user_id)
        if role is None:
            raise WorkspaceNotFound
        return role

    def check_administrator(self, user_id: UUID) -> Role:
        """Raise unless ``user_id`` is an owner or admin (404 for non-members, else 403)."""
        role = self.check_member(user_id)
        if not role.can_administer:
            msg = "this needs the owner or admin role in the workspace"
            raise InsufficientPermissions(msg)
        return role

    def _owner_count(self) -> int:
        return sum(1 for m in self.members.values() if m.role is Role.OWNER)

    def _target(self, user_id: UUID) -> Member:
        member = self.members.get(user_id)
        if member is None:
            raise MemberNotFound
        return member

    # ----------------------------------------------------------------------------- commands

    def add_member(self, *, by: UUID, user_id: UUID, role: Role, at: datetime) -> Member:
        actor_role = self.check_administrator(by)
        if role is Role.OWNER and actor_role is not Role.OWNER:
            msg = "only an owner may add an owner"
            raise InsufficientPermissions(msg)
        if user_id in self.members:
            raise AlreadyMember
        self._emit(self.MemberAdded, at=at, actor=Actor.user(by), user_id=user_id, role=role.value)
        return self.members[user_id]

    def change_role(self, *, by: UUID, user_id: UUID, role: Role, at: datetime) -> Member:
        actor_role = self.check_administrator(by)
        target = self._target(user_id)
        touches_owner = Role.OWNER in (role, target.role)
        if touches_owner and actor_role is not Role.OWNER:
            msg = "only an owner may grant or take away the owner role"
            raise InsufficientPermissions(msg)
        if target.role is role:
            return target
        if target.role is Role.OWNER and self._owner_count() == 1:
            raise LastOwner
        self._emit(
            self.MemberRoleChanged,
            at=at,
            actor=Actor.user(by),
            user_id=user_id,
            role_before=target.role.value,
            role_after=role.value,
        )
        return self.members[user_id]

    def remove_member(self, *, by: UUID, user_id: UUID, at: datetime) -> None:
        actor_role = self.check_administrator(by)
        target = self._target(user_id)
        if target.role is Role.OWNER and actor_role is not Role.OWNER:
            msg = "only an owner may remove an owner"
            raise InsufficientPermissions(msg)
        self._remove(target, by=by, at=at, left=False)

    def leave(self, *, user_id: UUID, at: datetime) -> None:
        self.check_member(user_id)
        self._remove(self.members[user_id], by=user_id, at=at, left=True)

    def _remove(self, target: Member, *, by: UUID, at: datetime, left: bool) -> None:
        if target.role is Role.OWNER and self._owner_count() == 1:
            raise LastOwner
        self._emit(
            self.MemberRemoved,
            at=at,
            actor=Actor.user(by),
            user_id=target.user_id,
            role=target.role.value,
            left=left,
        )
