"""The audit trail over HTTP: a credential's history, a workspace's feed, what was valid when.

Query parameters are read as text and checked by the ledger's own rules, so a bad one answers
400 ``invalid query parameter`` (never FastAPI's 422). Every answer reflects every command that
returned before the request arrived (the projections are caught up to the head first).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from ledger.application.audit import DEFAULT_LIMIT, MAX_LIMIT
from ledger.domain.errors import InvalidQueryParameter
from ledger.entrypoints.http.dependencies import LedgerDep, User, WorkspaceId
from ledger.entrypoints.http.models import UtcDateTime
from ledger.entrypoints.http.routes._errors import AUTH, errors
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


def _instant(value: str | None, field: str) -> Any:
    # A query string decodes "+" to a space: "12:00:00+00:00" arrives as "12:00:00 00:00".
    return None if value is None else parse_instant(value.replace(" ", "+"), field)


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        msg = f"limit must be 1..{MAX_LIMIT}"
        raise InvalidQueryParameter(msg)
    return int(value)


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
    credential_id: Annotated[str, Path(description="the credential's id (UUID)")],
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
)
def workspace_audit(  # noqa: PLR0917 - the feed's filters
    caller: User,
    workspace_id: WorkspaceId,
    ledger: LedgerDep,
    since: Annotated[str | None, Query(description="RFC 3339, inclusive")] = None,
    until: Annotated[str | None, Query(description="RFC 3339, exclusive")] = None,
    type: Annotated[str | None, Query(description="one event type")] = None,  # noqa: A002
    limit: Annotated[str | None, Query(description=f"1..{MAX_LIMIT}, default 100")] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` or an event's position")] = None,
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
)
def workspace_valid_at(
    caller: User,
    workspace_id: WorkspaceId,
    ledger: LedgerDep,
    valid_at: Annotated[str | None, Query(description="the instant, RFC 3339")] = None,
) -> list[CredentialStateBody]:
    if valid_at is None:
        msg = "valid_at is required"
        raise InvalidQueryParameter(msg)
    at = _instant(valid_at, "valid_at")
    return [_state(s) for s in ledger.workspace_valid_at(caller, workspace_id, at)]
