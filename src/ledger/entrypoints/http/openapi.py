"""Request bodies in the OpenAPI document, and no 422 in it.

Routes read their bodies after authentication (``dependencies.json_body``), so FastAPI does not
see them as body parameters; ``request_body`` declares each one on its route and
``finish_openapi`` adds their schemas to the document's components. FastAPI documents a 422
answer for every route with parameters; the service never gives one (``errors``),
so ``finish_openapi`` removes it. It also adds the document's links (``LINKS``): which answer
gives the id another route takes, so that clients and schema-driven fuzzers can follow them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ledger.entrypoints.http.models import REQUEST_MODELS, RequestModel

_REF = "#/components/schemas/{model}"

_WS = "/api/workspaces/{workspace_id}"
_WORKSPACE_FROM_BODY = {"workspace_id": "$response.body#/id"}
_SAME_WORKSPACE = "$request.path.workspace_id"

LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, Any]]]] = {
    ("/api/workspaces", "post", "201"): {
        "ListMembers": (f"{_WS}/members", "get", {"parameters": _WORKSPACE_FROM_BODY}),
        "MintInstallToken": (f"{_WS}/install-tokens", "post", {"parameters": _WORKSPACE_FROM_BODY}),
        "ListDaemonTokens": (f"{_WS}/daemon-tokens", "get", {"parameters": _WORKSPACE_FROM_BODY}),
        "AuditFeed": (f"{_WS}/audit", "get", {"parameters": _WORKSPACE_FROM_BODY}),
        "ValidAt": (f"{_WS}/credentials", "get", {"parameters": _WORKSPACE_FROM_BODY}),
        "Leave": (f"{_WS}/leave", "post", {"parameters": _WORKSPACE_FROM_BODY}),
    },
    ("/api/tokens", "post", "201"): {
        "RevokeToken": (
            "/api/tokens/{token_id}",
            "delete",
            {"parameters": {"token_id": "$response.body#/id"}},
        ),
        "TokenHistory": (
            "/api/credentials/{credential_id}/history",
            "get",
            {"parameters": {"credential_id": "$response.body#/id"}},
        ),
    },
    (f"{_WS}/install-tokens", "post", "201"): {
        "Exchange": (
            "/api/install-tokens/exchange",
            "post",
            {"requestBody": {"token": "$response.body#/token", "daemon_id": "linked-daemon"}},
        ),
        "InstallTokenHistory": (
            "/api/credentials/{credential_id}/history",
            "get",
            {"parameters": {"credential_id": "$response.body#/id"}},
        ),
    },
    (f"{_WS}/daemon-tokens", "get", "200"): {
        "RevokeDaemonToken": (
            f"{_WS}/daemon-tokens/{{token_id}}",
            "delete",
            {"parameters": {"workspace_id": _SAME_WORKSPACE, "token_id": "$response.body#/0/id"}},
        ),
    },
    (f"{_WS}/members", "get", "200"): {
        "ChangeRole": (
            f"{_WS}/members/{{user_id}}",
            "patch",
            {
                "parameters": {
                    "workspace_id": _SAME_WORKSPACE,
                    "user_id": "$response.body#/0/user_id",
                }
            },
        ),
        "RemoveMember": (
            f"{_WS}/members/{{user_id}}",
            "delete",
            {
                "parameters": {
                    "workspace_id": _SAME_WORKSPACE,
                    "user_id": "$response.body#/0/user_id",
                }
            },
        ),
    },
    (f"{_WS}/members", "post", "201"): {
        "ChangeAddedRole": (
            f"{_WS}/members/{{user_id}}",
            "patch",
            {"parameters": {"workspace_id": _SAME_WORKSPACE, "user_id": "$response.body#/user_id"}},
        ),
        "RemoveAdded": (
            f"{_WS}/members/{{user_id}}",
            "delete",
            {"parameters": {"workspace_id": _SAME_WORKSPACE, "user_id": "$response.body#/user_id"}},
        ),
    },
}
"""(path, method, status) of an answer -> its links: name -> (path, method, what it fills in)."""


def _add_links(paths: dict[str, Any]) -> None:
    for (path, method, status), links in LINKS.items():
        response = paths[path][method]["responses"][status]
        response["links"] = {
            name: {"operationId": paths[target][target_method]["operationId"], **fills}
            for name, (target, target_method, fills) in links.items()
        }


def request_body(model: type[RequestModel]) -> dict[str, Any]:
    """``openapi_extra=`` of a route whose JSON body is ``model``."""
    schema = {"$ref": _REF.format(model=model.__name__)}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }


def finish_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` document every request model and no 422 answer."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        _add_links(schema["paths"])
        for model in REQUEST_MODELS:
            model_schema = model.model_json_schema(ref_template=_REF)
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
