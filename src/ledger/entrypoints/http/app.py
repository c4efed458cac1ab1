"""The FastAPI application: ``create_app(ledger)`` (no server needed; tests use it directly).

Routes live one module per family in ``routes``; ``ROUTERS`` lists them. Background
work that lives as long as the app (e.g. a projection runner) is a *hook*: a function that takes
the ``Ledger`` and returns a context manager, entered at start-up and exited at shutdown, in
``create_app(..., hooks=[...])`` (``server.HOOKS`` for ``ledger serve``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractContextManager

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool

from ledger.bootstrap import PostgresLedger
from ledger.entrypoints.http import errors, metrics
from ledger.entrypoints.http.abuse import AbuseControls
from ledger.entrypoints.http.dependencies import MAX_BODY_BYTES
from ledger.entrypoints.http.middleware import RequestMiddleware
from ledger.entrypoints.http.openapi import finish_openapi
from ledger.entrypoints.http.routes import (
    audit,
    daemon,
    docs,
    install,
    ops,
    tokens,
    users,
    workspaces,
)

ROUTERS: tuple[APIRouter, ...] = (
    ops.router,
    users.router,
    tokens.router,
    workspaces.router,
    install.router,
    daemon.router,
    audit.router,
    docs.router,
)
"""Every route family of the service, in the order of the OpenAPI document."""

Hook = Callable[[PostgresLedger], AbstractContextManager[object]]
"""Something that runs beside the app: entered at start-up, exited (in reverse) at shutdown."""

DESCRIPTION = """\
The credential ledger's HTTP API: personal access tokens (`mul_`), workspaces and members,
install tokens (`mit_`) exchanged for daemon tokens (`mdt_`).

Authenticate with `Authorization: Bearer <token>`. Every error is `{"error": "<code>"}`, and a
client error may add `"detail"`, one sentence on what was wrong; each answer carries an
`X-Request-ID` header (the client's, if it sent a sane one).
"""


def create_app(ledger: PostgresLedger, *, hooks: Sequence[Hook] = ()) -> FastAPI:
    """The service on ``ledger``. The caller owns the ledger (closes it); hooks are entered
    when the app starts and exited, in reverse order, when it stops."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        with contextlib.ExitStack() as stack:
            for hook in hooks:
                # Hooks may block (they start threads, open connections): not on the loop.
                await run_in_threadpool(stack.enter_context, hook(ledger))
            try:
                yield
            finally:
                await run_in_threadpool(stack.close)

    app = FastAPI(
        title="ledger",
        summary="An event-sourced credential ledger",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
        # Served by ``routes.docs``: the pages from vendored assets (FastAPI's load them from a
        # CDN), and all three as routes that the access log and metrics can name.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ledger = ledger
    app.state.abuse = AbuseControls(ledger.settings, ledger.clock)
    app.state.expiring_soon = metrics.ExpiringSoon(ledger)
    for router in ROUTERS:
        app.include_router(router)
    errors.install(app)
    app.add_middleware(RequestMiddleware, max_body_bytes=MAX_BODY_BYTES)
    finish_openapi(app)
    return app
