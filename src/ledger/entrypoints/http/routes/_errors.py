"""The error answers each route documents in the OpenAPI schema, and its path ids."""

from __future__ import annotations

from typing import Any

from fastapi import Path

from ledger.entrypoints.http.models import TEXT_PATTERN, ErrorBody


def path_id(what: str) -> Any:
    """A path parameter holding ``what``'s id: documented as ``format: uuid``; read as text so
    that a malformed one answers the route's own 400 code (``invalid token id``, ...)."""
    return Path(description=f"{what}'s id (UUID)", json_schema_extra={"format": "uuid"})


def errors(**statuses: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: ``errors(s401="…", s404="…")``."""
    return {
        int(key.removeprefix("s")): {"model": ErrorBody, "description": text}
        for key, text in statuses.items()
    }


BODY = {"s413": "`request body too large` (over 64 KiB)"}
"""What a route that reads a body adds to its errors."""

AUTH = {
    "s401": "`missing authorization`, `invalid token`",
    "s503": "`service unavailable`",
}


def query_param(
    name: str, description: str, schema: dict[str, Any], *, required: bool = False
) -> dict[str, Any]:
    """The documentation of one query parameter that a route reads as text itself (so that a
    bad value answers the contract's 400 code, never FastAPI's 422)."""
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


NOTE_QUERY = query_param(
    "note",
    "why, in the revoker's words, recorded in the `revoked` event: 1..200 characters, not "
    "blank, no control character; otherwise 400 `invalid note`",
    {"type": "string", "minLength": 1, "maxLength": 200, "pattern": TEXT_PATTERN},
)
"""The optional ``note`` of a revoking route."""
