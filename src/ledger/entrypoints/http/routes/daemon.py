"""Daemon tokens: listed and revoked by workspace admins; ``/api/daemon/`` is for daemons."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ledger.entrypoints.http.dependencies import Daemon, LedgerDep, User, WorkspaceId
from ledger.entrypoints.http.models import DaemonTokenBody, WhoamiBody, from_view
from ledger.entrypoints.http.routes._errors import AUTH, NOTE_QUERY, errors, path_id

router = APIRouter(prefix="/api", tags=["install and daemon tokens"])

_ADMIN_ERRORS = {
    "s403": "`insufficient permissions`",
    **AUTH,
}


@router.get(
    "/workspaces/{workspace_id}/daemon-tokens",
    summary="The workspace's daemon tokens, revoked ones included (owner or admin)",
    responses=errors(
        s400="`invalid workspace id`",
        s404="`workspace not found` (also when the caller is not a member)",
        **_ADMIN_ERRORS,
    ),
)
def list_daemon_tokens(
    caller: User, workspace_id: WorkspaceId, ledger: LedgerDep
) -> list[DaemonTokenBody]:
    return [from_view(DaemonTokenBody, t) for t in ledger.list_daemon_tokens(caller, workspace_id)]


@router.delete(
    "/workspaces/{workspace_id}/daemon-tokens/{token_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke a daemon token of the workspace (owner or admin; 204 when already revoked)",
    responses=errors(
        s400="`invalid workspace id`, `invalid token id`, `invalid note`",
        s404="`workspace not found`, `daemon token not found`",
        **_ADMIN_ERRORS,
    ),
    openapi_extra={"parameters": [NOTE_QUERY]},
)
def revoke_daemon_token(
    caller: User,
    workspace_id: WorkspaceId,
    token_id: Annotated[str, path_id("the daemon token")],
    ledger: LedgerDep,
    note: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> Response:
    ledger.revoke_daemon_token(caller, workspace_id, token_id, note)
    return Response(status_code=204)


@router.get(
    "/daemon/whoami",
    summary="The calling daemon (daemon tokens only)",
    responses=errors(**AUTH),
)
def whoami(caller: Daemon) -> WhoamiBody:
    return WhoamiBody(
        token_id=caller.credential_id,
        workspace_id=caller.workspace_id,
        daemon_id=caller.daemon_id,
    )
