"""Request bodies in the OpenAPI document, and no 422 in it.

Routes read their bodies after authentication (``dependencies.json_body``), so FastAPI does not
see them as body parameters; ``request_body`` declares each one on its route and
``finish_openapi`` adds their schemas to the document's components. FastAPI documents a 422
answer for every route with parameters; the service never gives one (``errors``),
so ``finish_openapi`` removes it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ledger.entrypoints.http.models import REQUEST_MODELS, RequestModel

_REF = "#/components/schemas/{model}"


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
        for model in REQUEST_MODELS:
            model_schema = model.model_json_schema(ref_template=_REF)
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
