"""The audit trail over HTTP: a credential's history, a workspace's feed, what was valid when.

Query parameters are read as text and checked by the ledger's own rules, so a bad one answers
400 ``invalid query parameter`` (never FastAPI's 422); each route documents them with the exact
schema it enforces (``openapi_extra``), since FastAPI would describe them as plain strings.
Every answer reflects every command that returned before the request arrived (the projections
are caught up to the head first).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from ledger.application import validation
from ledger.application.audit import DEFAULT_LIMIT, MAX_LIMIT
from ledger.domain.errors import InvalidQueryParameter
from ledger.entrypoints.http.dependencies import LedgerDep, User, WorkspaceId
from ledger.entrypoints.http.models import UtcDateTime
from ledger.entrypoints.http.routes._errors import AUTH, errors, path_id
from ledger.projections import EVENT_TYPES, AuditEvent, CredentialState
from ledger.projections.queries import parse_instant

router = APIRouter(prefix="/api", tags=["audit"])

_ADMIN = {
    "s400": "`invalid workspace id`, `invalid query parameter`",
    "s403": "`insufficient permissions`",
    "s404": "`workspace not found` (also when the caller is not a member)",
    **AUTH,
}


class ActorBody(BaseModel):
    type: str = Field(description="`user`, `daemon` or `system`")
    id: str


class AuditEventBody(BaseModel):
    """One event; type-specific fields (``reason``, ``expires_at_before``/``_after``,
    ``daemon_token_id``, ``role``, ...) follow the common ones."""

    model_config = ConfigDict(extra="allow")

    position: int = Field(description="the event's place in the log; also a cursor")
    credential_id: UUID | None = Field(default=None, description="absent on membership events")
    kind: str | None = Field(default=None, description="absent on membership events")
    type: str = Field(description=", ".join(f"`{t}`" for t in EVENT_TYPES))
    at: UtcDateTime
    actor: ActorBody
    workspace_id: UUID | None
    user_id: UUID | None = Field(description="holder, issuer or member the event concerns")


class CredentialStateBody(BaseModel):
    id: UUID
    kind: str
    token_prefix: str
    name: str | None
    user_id: UUID | None
    workspace_id: UUID | None
    daemon_id: str | None
    install_token_id: UUID | None
    created_by: UUID | None
    created_at: UtcDateTime
    expires_at: UtcDateTime | None
    revoked_at: UtcDateTime | None
    revoked_reason: str | None
    consumed_at: UtcDateTime | None
    daemon_token_id: UUID | None
    last_used_at: UtcDateTime | None


class HistoryBody(BaseModel):
    credential: CredentialStateBody
    events: list[AuditEventBody] = Field(description="oldest first")


class AuditPageBody(BaseModel):
    events: list[AuditEventBody] = Field(description="oldest first")
    next_cursor: str | None = Field(description="null: nothing followed this page yet")


def _event(event: AuditEvent) -> AuditEventBody:
    return AuditEventBody.model_validate(event.to_json())


def _state(state: CredentialState) -> CredentialStateBody:
    data: dict[str, Any] = state.to_json()
    return CredentialStateBody.model_validate(data)


# RFC 3339's date-time (section 5.6), the form the schema's `format: date-time` names; Python's
# own parser also takes forms RFC 3339 does not (no seconds, a date alone, week dates, ...).
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:)(\d{2})((\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2}))", re.ASCII
)
_NO_ZONE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?", re.ASCII)
_LEAP_SECOND = "60"


def _instant(value: str | None, field: str) -> Any:
    if value is None:
        return None
    # A query string decodes "+" to a space: "12:00:00+00:00" arrives as "12:00:00 00:00".
    text = value.replace(" ", "+")
    match = _RFC3339.fullmatch(text)
    if match is None and _NO_ZONE.fullmatch(text):
        msg = f"{field} needs a time zone (RFC 3339, e.g. 2026-11-22T12:00:00Z)"
        raise InvalidQueryParameter(msg)
    if match is None:
        msg = f"{field} is not an RFC 3339 timestamp (e.g. 2026-11-22T12:00:00Z)"
        raise InvalidQueryParameter(msg)
    head, second, tail = match.group(1, 2, 3)
    if second != _LEAP_SECOND:
        return parse_instant(text.upper(), field)
    # A leap second (RFC 3339 allows :60) is read as the instant that follows it, as POSIX does.
    before = parse_instant(f"{head}59{tail}".upper(), field)
    try:
        return before + timedelta(seconds=1)
    except OverflowError:
        msg = f"{field} is past the last instant the ledger can represent"
        raise InvalidQueryParameter(msg) from None


def _query(name: str, description: str, schema: dict[str, Any], *, required: bool = False) -> Any:
    """The documentation of one query parameter (the route reads it as text itself)."""
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


_DATE_TIME = {"type": "string", "format": "date-time"}
_FEED_QUERY = {
    "parameters": [
        _query("since", "RFC 3339, inclusive", _DATE_TIME),
        _query("until", "RFC 3339, exclusive", _DATE_TIME),
        _query("type", "one event type", {"type": "string", "enum": list(EVENT_TYPES)}),
        _query(
            "limit",
            f"1..{MAX_LIMIT}, default {DEFAULT_LIMIT}",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        ),
        _query(
            "cursor",
            "`next_cursor` or an event's position (empty: from the start)",
            {"type": "string", "pattern": "^[0-9]{0,18}$"},
        ),
    ]
}
_VALID_AT_QUERY = {
    "parameters": [_query("valid_at", "the instant, RFC 3339", _DATE_TIME, required=True)]
}
_HIDDEN = Query(include_in_schema=False)


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    return validation.bounded_int(value, "limit", 1, MAX_LIMIT, InvalidQueryParameter)


@router.get(
    "/credentials/{credential_id}/history",
    summary="A credential's current state and every event of it, oldest first",
    responses=errors(
        s400="`invalid credential id`",
        s404="`credential not found` (also when the caller may not read it)",
        **AUTH,
    ),
)
def credential_history(
    caller: User,
    credential_id: Annotated[str, path_id("the credential")],
    ledger: LedgerDep,
) -> HistoryBody:
    history = ledger.credential_history(caller, credential_id)
    return HistoryBody(
        credential=_state(history.credential), events=[_event(e) for e in history.events]
    )


@router.get(
    "/workspaces/{workspace_id}/audit",
    summary="The workspace's audit feed, oldest first (owner or admin)",
    responses=errors(**_ADMIN),
    openapi_extra=_FEED_QUERY,
)
def workspace_audit(  # noqa: PLR0917 - the feed's filters
    caller: User,
    workspace_id: WorkspaceId,
    ledger: LedgerDep,
    since: Annotated[str | None, _HIDDEN] = None,
    until: Annotated[str | None, _HIDDEN] = None,
    type: Annotated[str | None, _HIDDEN] = None,  # noqa: A002
    limit: Annotated[str | None, _HIDDEN] = None,
    cursor: Annotated[str | None, _HIDDEN] = None,
) -> AuditPageBody:
    page = ledger.workspace_audit(
        caller,
        workspace_id,
        type=type,
        since=_instant(since, "since"),
        until=_instant(until, "until"),
        cursor=cursor,
        limit=_limit(limit),
    )
    return AuditPageBody(events=[_event(e) for e in page.events], next_cursor=page.next_cursor)


@router.get(
    "/workspaces/{workspace_id}/credentials",
    summary="The workspace's daemon and install tokens usable at `valid_at`, as of then",
    responses=errors(**_ADMIN),
    openapi_extra=_VALID_AT_QUERY,
)
def workspace_valid_at(
    caller: User,
    workspace_id: WorkspaceId,
    ledger: LedgerDep,
    valid_at: Annotated[str | None, _HIDDEN] = None,
) -> list[CredentialStateBody]:
    if valid_at is None:
        msg = "valid_at is required"
        raise InvalidQueryParameter(msg)
    at = _instant(valid_at, "valid_at")
    return [_state(s) for s in ledger.workspace_valid_at(caller, workspace_id, at)]
