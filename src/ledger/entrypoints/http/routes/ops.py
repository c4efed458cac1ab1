"""Operations: liveness, readiness, metrics. Public (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from ledger.entrypoints.http import metrics
from ledger.entrypoints.http.dependencies import LedgerDep
from ledger.entrypoints.http.models import ErrorBody, StatusBody

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> StatusBody:
    return StatusBody(status="ok")


@router.get(
    "/readyz",
    summary="The store answers",
    responses={503: {"model": ErrorBody, "description": "`service unavailable`"}},
)
def readyz(ledger: LedgerDep) -> StatusBody:
    ledger.ready()
    return StatusBody(status="ok")


@router.get(
    "/metrics",
    summary="Prometheus metrics of every worker",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def prometheus(request: Request) -> Response:
    sync: metrics.CacheStatsSync | None = getattr(request.app.state, "metrics_sync", None)
    if sync is not None:
        sync.sync()
    extra = getattr(request.app.state, "expiring_soon", None)
    collectors = (extra,) if isinstance(extra, metrics.ExpiringSoon) else ()
    return Response(metrics.render(*collectors), media_type=CONTENT_TYPE_LATEST)
