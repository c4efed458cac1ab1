"""``GET /api/me``."""

from __future__ import annotations

from fastapi import APIRouter

from ledger.entrypoints.http.dependencies import LedgerDep, User
from ledger.entrypoints.http.models import UserBody
from ledger.entrypoints.http.routes._errors import AUTH, errors

router = APIRouter(prefix="/api", tags=["users"])


@router.get("/me", summary="The calling user", responses=errors(**AUTH))
def me(caller: User, ledger: LedgerDep) -> UserBody:
    assert caller.user_id is not None
    user = ledger.get_user(caller.user_id)
    return UserBody(user_id=user.user_id, name=user.name)
