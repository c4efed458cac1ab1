"""What routes depend on: the caller (``ledger.entrypoints.fastapi``), ids from the path, and
JSON bodies read after authentication.

Dependencies run in the order a route declares them, and every route declares the caller
first: an unauthenticated request is answered 401 whatever its path or body hold.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar, cast
from uuid import UUID

from fastapi import Depends, Path, Request

from ledger.application import Principal, validation
from ledger.bootstrap import PostgresLedger
from ledger.domain import TokenKind
from ledger.domain.errors import InvalidUserId, InvalidWorkspaceId, RequestTooLarge
from ledger.entrypoints.fastapi import LedgerAuth, ledger_of_app
from ledger.entrypoints.http.models import RequestModel

MAX_BODY_BYTES = 64 * 1024
"""The largest request body the service reads (the contract's bodies are a few hundred bytes)."""

# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in its
# thread pool, a hop there and back on every request.


async def _ledger(request: Request) -> PostgresLedger:
    return cast(PostgresLedger, ledger_of_app(request))


LedgerDep = Annotated[PostgresLedger, Depends(_ledger)]
User = Annotated[Principal, Depends(LedgerAuth({TokenKind.PERSONAL_ACCESS_TOKEN}))]
"""The caller of a user route: personal access tokens only."""
Daemon = Annotated[Principal, Depends(LedgerAuth({TokenKind.DAEMON_TOKEN}))]
"""The caller of a ``/api/daemon/`` route: daemon tokens only."""

M = TypeVar("M", bound=RequestModel)
# Documented as UUIDs, read as text: a malformed one answers the route's own 400 code.
_UUID = {"format": "uuid"}


async def _workspace_id(
    workspace_id: Annotated[
        str, Path(description="the workspace's id (UUID)", json_schema_extra=_UUID)
    ],
) -> UUID:
    return validation.uuid(workspace_id, InvalidWorkspaceId)


async def _user_id(
    user_id: Annotated[
        str, Path(description="the member's user id (UUID)", json_schema_extra=_UUID)
    ],
) -> UUID:
    return validation.uuid(user_id, InvalidUserId)


WorkspaceId = Annotated[UUID, Depends(_workspace_id)]
"""A workspace id from the path; not a canonical UUID: 400 ``invalid workspace id``."""
UserId = Annotated[UUID, Depends(_user_id)]
"""A user id from the path; not a canonical UUID: 400 ``invalid user id``."""


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, or ``RequestTooLarge`` as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def json_body(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency: the request's JSON body as ``model`` (errors are the model's codes)."""

    async def parse(request: Request) -> M:
        return model.parse(await read_body(request))

    return parse
