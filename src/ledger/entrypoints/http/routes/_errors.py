"""The error answers each route documents in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from ledger.entrypoints.http.models import ErrorBody


def errors(**statuses: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: ``errors(s401="…", s404="…")``."""
    return {
        int(key.removeprefix("s")): {"model": ErrorBody, "description": text}
        for key, text in statuses.items()
    }


AUTH = {
    "s401": "`missing authorization`, `invalid token`",
    "s503": "`service unavailable`",
}
