"""The API's interactive docs, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served offline.

FastAPI's own pages load their scripts, stylesheets and favicon from a CDN, so they are blank on
a machine without internet access. These pages load them from the service itself
(``/docs/assets/…``): the files come from pinned npm packages that ``make setup`` vendors into
``docs_assets/`` beside this module (``scripts/vendor_docs_assets.py``, which checks each
tarball's SHA-256 and keeps the packages' licence files). The pages and ``/openapi.json`` are
routes of the API's own kind (FastAPI records the matched route only for those; the ones it adds
itself are plain Starlette routes), so their requests are counted and logged under their own
path, never as ``<unmatched>``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

ASSETS_DIR = Path(__file__).resolve().parent.parent / "docs_assets"
ASSETS_PATH = "/docs/assets"
OPENAPI_PATH = "/openapi.json"

ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "LICENSE.swagger-ui-dist": "text/plain; charset=utf-8",
    "NOTICE.swagger-ui-dist": "text/plain; charset=utf-8",
    "LICENSE.redoc": "text/plain; charset=utf-8",
    "MANIFEST.json": "application/json",
}
"""Every file the service serves under ``ASSETS_PATH``, with its media type (no other)."""

router = APIRouter(include_in_schema=False)


@router.get(OPENAPI_PATH)
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=OPENAPI_PATH,
        title=f"{request.app.title} — Swagger UI",
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
        # Swagger UI would otherwise ask an online validator for a badge.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=OPENAPI_PATH,
        title=f"{request.app.title} — ReDoc",
        redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
        with_google_fonts=False,
    )


@router.get(ASSETS_PATH + "/{name}")
def asset(name: str) -> FileResponse:
    """One vendored file; 404 for any other name (no path is ever built from the request)."""
    media_type = ASSETS.get(name)
    path = ASSETS_DIR / name
    if media_type is None or not path.is_file():
        raise HTTPException(status_code=404)
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "max-age=86400"})
