"""Personal access tokens: ``/api/tokens``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import TypeAdapter
from starlette.convertors import Convertor, register_url_convertor

from ledger.application import paging, validation
from ledger.domain.errors import InvalidQueryParameter
from ledger.entrypoints.fastapi import bearer_token
from ledger.entrypoints.http.dependencies import LedgerDep, User, json_body, read_body
from ledger.entrypoints.http.models import (
    CreatedTokenBody,
    CreateTokenRequest,
    RenewalBody,
    RevokeAllRequest,
    RevokedCountBody,
    TokenBody,
    UtcDateTime,
    from_view,
)
from ledger.entrypoints.http.openapi import request_body
from ledger.entrypoints.http.routes._errors import (
    AUTH,
    BODY,
    NOTE_QUERY,
    errors,
    path_id,
    query_param,
)

router = APIRouter(prefix="/api/tokens", tags=["personal access tokens"])


class _TokenId(Convertor[str]):
    """A token id in a path: any segment but ``revoke-all``, which is a route of its own (so
    that ``DELETE /api/tokens/revoke-all`` is 405, not an attempt to revoke a token by that
    id). A malformed id still reaches the route, which answers 400 ``invalid token id``."""

    regex = "(?!revoke-all$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("token_id", _TokenId())
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


_LIST_QUERY = {
    "parameters": [
        query_param(
            "limit",
            f"1..{paging.MAX_LIMIT}, default {paging.DEFAULT_LIMIT}",
            {"type": "integer", "minimum": 1, "maximum": paging.MAX_LIMIT},
        ),
        query_param(
            "cursor",
            'opaque: take it from the `Link: <…>; rel="next"` header of the page before',
            {"type": "string", "maxLength": 100, "pattern": "^[A-Za-z0-9_-]*$"},
        ),
        query_param(
            "expiring_within_days",
            "only tokens whose `expires_at` is after now and at most this many days from now",
            {"type": "integer", "minimum": 0, "maximum": paging.MAX_DAYS},
        ),
    ]
}
_HIDDEN = Query(include_in_schema=False)


def _number(value: str | None, field: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    return validation.bounded_int(value, field, low, high, InvalidQueryParameter)


@router.get(
    "",
    summary="The caller's tokens that are not revoked (expired included), newest first, a page "
    "at a time",
    description='When more tokens follow, the answer has a `Link: <URL>; rel="next"` header '
    "whose URL returns the next page; the last page has none.",
    responses={
        **errors(s400="`invalid query parameter`", **AUTH),
        200: {
            "description": "a page of tokens",
            "headers": {
                "Link": {
                    "description": '`<URL>; rel="next"` when another page follows',
                    "schema": {"type": "string"},
                }
            },
        },
    },
    openapi_extra=_LIST_QUERY,
)
def list_tokens(  # noqa: PLR0917 - the listing's query parameters
    caller: User,
    ledger: LedgerDep,
    response: Response,
    limit: Annotated[str | None, _HIDDEN] = None,
    cursor: Annotated[str | None, _HIDDEN] = None,
    expiring_within_days: Annotated[str | None, _HIDDEN] = None,
) -> list[TokenBody]:
    size = _number(limit, "limit", 1, paging.MAX_LIMIT)
    days = _number(expiring_within_days, "expiring_within_days", 0, paging.MAX_DAYS)
    page = ledger.page_personal_access_tokens(
        caller,
        limit=paging.DEFAULT_LIMIT if size is None else size,
        cursor=cursor,
        expiring_within_days=days,
    )
    if page.next_cursor is not None:
        query = {"limit": limit, "cursor": page.next_cursor, "expiring_within_days": days}
        given = urlencode({k: v for k, v in query.items() if v is not None})
        response.headers["Link"] = f'<{router.prefix}?{given}>; rel="next"'
    return [from_view(TokenBody, info) for info in page.tokens]


async def _revoke_all_body(request: Request) -> RevokeAllRequest:
    # The body is optional: none at all keeps every default.
    raw = await read_body(request)
    return RevokeAllRequest.parse(raw) if raw.strip() else RevokeAllRequest()


@router.post(
    "/revoke-all",
    summary="Revoke every token of the caller in one commit (optionally keeping the bearer)",
    openapi_extra={
        **request_body(RevokeAllRequest),
        "requestBody": {**request_body(RevokeAllRequest)["requestBody"], "required": False},
    },
    responses=errors(s400="`invalid request body`, `invalid note`", **BODY, **AUTH),
)
def revoke_all(
    caller: User,
    body: Annotated[RevokeAllRequest, Depends(_revoke_all_body)],
    ledger: LedgerDep,
) -> RevokedCountBody:
    revoked = ledger.revoke_all_personal_access_tokens(
        caller, keep_current=bool(body.keep_current), note=body.note
    )
    return RevokedCountBody(revoked=revoked)


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
    "/{token_id:token_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke one of the caller's tokens (also 204 when already revoked)",
    responses=errors(s400="`invalid token id`, `invalid note`", s404="`token not found`", **AUTH),
    openapi_extra={"parameters": [NOTE_QUERY]},
)
def revoke_token(
    caller: User,
    token_id: Annotated[str, path_id("the token")],
    ledger: LedgerDep,
    note: Annotated[str | None, _HIDDEN] = None,
) -> Response:
    ledger.revoke_personal_access_token(caller, token_id, note)
    return Response(status_code=204)
