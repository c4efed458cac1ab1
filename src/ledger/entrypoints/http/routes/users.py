"""``GET /api/me``."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ledger.entrypoints.http.dependencies import LedgerDep, User
from ledger.entrypoints.http.models import UserBody
from ledger.entrypoints.http.routes._errors import AUTH, errors

router = APIRouter(prefix="/api", tags=["users"])


@router.get("/me", summary="The calling user", responses=errors(**AUTH))
async def me(caller: User, ledger: LedgerDep) -> UserBody:
    # On the event loop when the caller and the user were seen before (no I/O); a first
    # sight reads the store in the thread pool.
    assert caller.user_id is not None
    user = ledger.cached_user(caller.user_id)
    if user is None:
        user = await run_in_threadpool(ledger.get_user, caller.user_id)
    return UserBody(user_id=user.user_id, name=user.name)
