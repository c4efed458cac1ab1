"""Install tokens: minted by workspace admins, exchanged (once) by a daemon for a daemon token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from ledger.entrypoints.http.abuse import exchange_guard, remember_presented
from ledger.entrypoints.http.dependencies import LedgerDep, User, WorkspaceId, json_body
from ledger.entrypoints.http.models import ExchangedBody, ExchangeRequest, InstallTokenBody
from ledger.entrypoints.http.openapi import request_body
from ledger.entrypoints.http.routes._errors import AUTH, BODY, errors

router = APIRouter(prefix="/api", tags=["install and daemon tokens"])


@router.post(
    "/workspaces/{workspace_id}/install-tokens",
    status_code=201,
    summary="Mint an install token (owner or admin): 15 minutes, single use",
    responses=errors(
        s400="`invalid workspace id`",
        s403="`insufficient permissions`",
        s404="`workspace not found` (also when the caller is not a member)",
        **AUTH,
    ),
)
def mint_install_token(
    caller: User, workspace_id: WorkspaceId, ledger: LedgerDep
) -> InstallTokenBody:
    minted = ledger.mint_install_token(caller, workspace_id)
    return InstallTokenBody(
        id=minted.id,
        token=minted.token,
        workspace_id=minted.workspace_id,
        expires_at=minted.expires_at,
        created_at=minted.created_at,
    )


@router.post(
    "/install-tokens/exchange",
    summary="Exchange an install token for a daemon token (public: the install token is the "
    "credential)",
    description="The same install token and `daemon_id` again within "
    "`LEDGER_EXCHANGE_RETRY_WINDOW_S` of the exchange answer the same daemon token (a retry of "
    "a lost answer); any other presentation of a used install token is a replay, recorded as "
    "`replay_detected`.",
    openapi_extra=request_body(ExchangeRequest),
    responses=errors(
        s400="`invalid_install_token` (unparseable body, missing or malformed token), "
        "`daemon_id is required`",
        s401="`invalid_install_token` (unknown, expired, revoked), `install_token_already_used` "
        "(also a retry whose daemon token was revoked since)",
        s403="`install token issuer is not a workspace admin`",
        s409="`token limit reached` (the workspace holds its most daemon tokens; the install "
        "token stays unconsumed)",
        **BODY,
        s429="`too many requests`: this client address made too many failed exchanges in the "
        "current minute; `Retry-After` says how many seconds remain",
        s503="`service unavailable`",
    ),
)
def exchange(
    _throttled: Annotated[None, Depends(exchange_guard)],
    request: Request,
    body: Annotated[ExchangeRequest, Depends(json_body(ExchangeRequest))],
    ledger: LedgerDep,
) -> ExchangedBody:
    remember_presented(request, body.token)
    exchanged = ledger.exchange_install_token(body.token, body.daemon_id)
    return ExchangedBody(
        token=exchanged.token,
        workspace_id=exchanged.workspace_id,
        daemon_id=exchanged.daemon_id,
        expires_at=exchanged.expires_at,
    )
