"""The baseline behind HTTP: the one-row-per-token store served the way ``ledger serve`` serves
the ledger (FastAPI, synchronous routes, uvicorn with the same protocol class, workers and
logging off), so that the HTTP cells get a ratio too.

Routes (the two the HTTP ratios need, with the contract's status codes):

- ``POST /api/tokens`` (bearer: a personal access token) → 201 ``{"id", "token"}``: verify the
  bearer (one indexed ``SELECT``), then mint (one ``INSERT``);
- ``GET /api/me`` (bearer) → 200 ``{"id", "kind"}``: verify the bearer (one ``SELECT``).

Run by ``bench.http_cells`` as ``python -m bench.baseline.http_app --port P --workers N`` with
``BENCH_BASELINE_URL`` set to the database holding the ``tokens`` table.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

from bench.baseline.store import BaselinePrincipal, BaselineStore
from ledger.entrypoints.http.server import NoDelayH11Protocol

URL_ENV = "BENCH_BASELINE_URL"
POOL_SIZE = 8


class MintBody(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


def create_app(store: BaselineStore) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    def principal(authorization: str | None) -> BaselinePrincipal:
        if authorization is None or not authorization.startswith("Bearer "):
            raise HTTPException(401, "invalid_token")
        found = store.verify(authorization.removeprefix("Bearer "))
        if found is None:
            raise HTTPException(401, "invalid_token")
        return found

    @app.post("/api/tokens", status_code=201)
    def mint(
        body: MintBody, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, Any]:
        who = principal(authorization)
        if who.kind != "pat" or who.user_id is None:
            raise HTTPException(401, "invalid_token")
        token = store.mint_personal_access_token(who.user_id, body.expires_in_days or 90)
        return {"id": token.token_hash, "token": token.raw}

    @app.get("/api/me")
    def me(authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        who = principal(authorization)
        return {"id": str(who.user_id), "kind": who.kind}

    return app


def worker_app() -> FastAPI:
    """The uvicorn app factory, called once in each worker process."""
    return create_app(BaselineStore(os.environ[URL_ENV], pool_size=POOL_SIZE))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline.http_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    uvicorn.run(
        "bench.baseline.http_app:worker_app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        http=NoDelayH11Protocol,
        log_level="warning",
        access_log=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
