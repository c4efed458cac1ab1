"""Workspaces and their members: ``/api/workspaces``.

Roles are the ledger's to check: a non-member gets 404 ``workspace not found``, a member without
the role 403 ``insufficient permissions``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from ledger.application import validation
from ledger.domain import Member
from ledger.domain.errors import InvalidUserId
from ledger.entrypoints.http.dependencies import LedgerDep, User, UserId, WorkspaceId, json_body
from ledger.entrypoints.http.models import (
    AddMemberRequest,
    ChangeRoleRequest,
    CreateWorkspaceRequest,
    MemberBody,
    MembershipBody,
    WorkspaceBody,
    from_view,
)
from ledger.entrypoints.http.openapi import request_body
from ledger.entrypoints.http.routes._errors import AUTH, BODY, errors

router = APIRouter(prefix="/api/workspaces", tags=["workspaces"])

_NOT_MEMBER = "`workspace not found` (also when the caller is not a member)"


def _member(member: Member) -> MemberBody:
    return MemberBody(user_id=member.user_id, role=member.role, joined_at=member.joined_at)


@router.post(
    "",
    status_code=201,
    summary="Create a workspace; the caller is its owner",
    openapi_extra=request_body(CreateWorkspaceRequest),
    responses=errors(s400="`invalid request body`, `name is required`", **BODY, **AUTH),
)
def create_workspace(
    caller: User,
    body: Annotated[CreateWorkspaceRequest, Depends(json_body(CreateWorkspaceRequest))],
    ledger: LedgerDep,
) -> WorkspaceBody:
    created = ledger.create_workspace(caller, body.name or "")
    return WorkspaceBody(id=created.id, name=created.name, created_at=created.created_at)


@router.get(
    "",
    summary="The caller's workspaces, with the caller's role in each (oldest first)",
    responses=errors(**AUTH),
)
def list_workspaces(caller: User, ledger: LedgerDep) -> list[MembershipBody]:
    return [from_view(MembershipBody, m) for m in ledger.list_workspaces(caller)]


@router.get(
    "/{workspace_id}/members",
    summary="The members (any member may list them)",
    responses=errors(s400="`invalid workspace id`", s404=_NOT_MEMBER, **AUTH),
)
def list_members(caller: User, workspace_id: WorkspaceId, ledger: LedgerDep) -> list[MemberBody]:
    return [_member(m) for m in ledger.list_members(caller, workspace_id)]


@router.post(
    "/{workspace_id}/members",
    status_code=201,
    summary="Add a member (owner or admin; only an owner may add an owner)",
    openapi_extra=request_body(AddMemberRequest),
    responses=errors(
        s400="`invalid request body`, `invalid role`, `invalid user id`, `invalid workspace id`",
        s403="`insufficient permissions`",
        s404=f"{_NOT_MEMBER}, `user not found`",
        s409="`already a member`",
        **BODY,
        **AUTH,
    ),
)
def add_member(
    caller: User,
    workspace_id: WorkspaceId,
    body: Annotated[AddMemberRequest, Depends(json_body(AddMemberRequest))],
    ledger: LedgerDep,
) -> MemberBody:
    user_id = validation.uuid(body.user_id, InvalidUserId)
    return _member(ledger.add_member(caller, workspace_id, user_id, body.role))


@router.patch(
    "/{workspace_id}/members/{user_id}",
    summary="Change a member's role (owner or admin; only an owner may grant or take `owner`)",
    openapi_extra=request_body(ChangeRoleRequest),
    responses=errors(
        s400="`invalid request body`, `invalid role`, `workspace must have at least one owner`, "
        "`invalid workspace id`, `invalid user id`",
        s403="`insufficient permissions`",
        s404=f"{_NOT_MEMBER}, `member not found`",
        **BODY,
        **AUTH,
    ),
)
def change_role(
    caller: User,
    workspace_id: WorkspaceId,
    user_id: UserId,
    body: Annotated[ChangeRoleRequest, Depends(json_body(ChangeRoleRequest))],
    ledger: LedgerDep,
) -> MemberBody:
    return _member(ledger.change_role(caller, workspace_id, user_id, body.role))


@router.delete(
    "/{workspace_id}/members/{user_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a member and, in the same commit, revoke what they issued here",
    responses=errors(
        s400="`workspace must have at least one owner`, `invalid workspace id`, `invalid user id`",
        s403="`insufficient permissions`",
        s404=f"{_NOT_MEMBER}, `member not found`",
        **AUTH,
    ),
)
def remove_member(
    caller: User, workspace_id: WorkspaceId, user_id: UserId, ledger: LedgerDep
) -> Response:
    ledger.remove_member(caller, workspace_id, user_id)
    return Response(status_code=204)


@router.post(
    "/{workspace_id}/leave",
    status_code=204,
    response_class=Response,
    summary="Leave the workspace (same cascade as a removal)",
    responses=errors(
        s400="`workspace must have at least one owner`, `invalid workspace id`",
        s404=_NOT_MEMBER,
        **AUTH,
    ),
)
def leave(caller: User, workspace_id: WorkspaceId, ledger: LedgerDep) -> Response:
    ledger.leave_workspace(caller, workspace_id)
    return Response(status_code=204)
