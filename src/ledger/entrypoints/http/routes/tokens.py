"""Personal access tokens: ``/api/tokens``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import TypeAdapter

from ledger.entrypoints.fastapi import bearer_token
from ledger.entrypoints.http.dependencies import LedgerDep, User, json_body
from ledger.entrypoints.http.models import (
    CreatedTokenBody,
    CreateTokenRequest,
    RenewalBody,
    TokenBody,
    UtcDateTime,
    from_view,
)
from ledger.entrypoints.http.openapi import request_body
from ledger.entrypoints.http.routes._errors import AUTH, BODY, errors, path_id

router = APIRouter(prefix="/api/tokens", tags=["personal access tokens"])
_instant: TypeAdapter[UtcDateTime] = TypeAdapter(UtcDateTime)


@router.post(
    "",
    status_code=201,
    summary="Mint a personal access token (the secret is in this answer only)",
    openapi_extra=request_body(CreateTokenRequest),
    responses=errors(
        s400="`invalid request body`, `name is required`, `invalid expires_in_days`",
        s409="`token limit reached` (the caller holds its most usable tokens; nothing written)",
        **BODY,
        **AUTH,
    ),
)
def create_token(
    caller: User,
    body: Annotated[CreateTokenRequest, Depends(json_body(CreateTokenRequest))],
    ledger: LedgerDep,
) -> CreatedTokenBody:
    minted = ledger.mint_personal_access_token(caller, body.name or "", body.expires_in_days)
    return from_view(CreatedTokenBody, minted.info, token=minted.token)


@router.get(
    "",
    summary="The caller's tokens that are not revoked, newest first",
    responses=errors(**AUTH),
)
def list_tokens(caller: User, ledger: LedgerDep) -> list[TokenBody]:
    return [from_view(TokenBody, info) for info in ledger.list_personal_access_tokens(caller)]


@router.post(
    "/current/renew",
    summary="Renew the bearer token when 7 days or less remain (body ignored)",
    # The bearer is optional here: without one the answer is 400, not 401 (`{}` in OpenAPI's
    # security list says so).
    openapi_extra={"security": [{}]},
    responses=errors(
        s400="`only personal access tokens can be renewed`",
        s401="`token is no longer valid`",
        **BODY,
        s503="`service unavailable`",
    ),
)
def renew_current(
    raw: Annotated[str | None, Depends(bearer_token)], ledger: LedgerDep
) -> RenewalBody:
    outcome = ledger.renew_personal_access_token(raw)
    expires_at = (
        "" if outcome.expires_at is None else _instant.dump_python(outcome.expires_at, mode="json")
    )
    return RenewalBody(expires_at=expires_at, renewed=outcome.renewed)


@router.delete(
    "/{token_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke one of the caller's tokens (also 204 when already revoked)",
    responses=errors(s400="`invalid token id`", s404="`token not found`", **AUTH),
)
def revoke_token(
    caller: User,
    token_id: Annotated[str, path_id("the token")],
    ledger: LedgerDep,
) -> Response:
    ledger.revoke_personal_access_token(caller, token_id)
    return Response(status_code=204)
