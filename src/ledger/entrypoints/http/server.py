"""``ledger serve``: the service under uvicorn, with one ``Ledger`` per worker process.

The parent process prepares what every worker shares, once, before any worker starts:

1. the database — with ``LEDGER_DATABASE_URL`` unset, it starts the embedded PostgreSQL under
   ``LEDGER_DATA_DIR`` and migrates it; a configured server is only *checked* (no DDL: that is
   ``ledger migrate``), and a schema that is not at head stops start-up with a clear message;
2. the workers' environment: ``LEDGER_DATABASE_URL`` (the embedded server's URL) and
   ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary directory, ADR 0011).

Each worker (``worker_app``) opens its own ``Ledger`` — its own pool, group-commit writer,
verify cache and cache invalidator — so that several workers share one PostgreSQL exactly as
several processes do (ADR 0011). On SIGTERM or SIGINT uvicorn stops accepting connections and
lets in-flight requests finish; each worker's lifespan then exits its hooks, which closes the
``Ledger`` (the writer writes what is queued, ``last_used_at`` is flushed); the parent then stops
the embedded server and removes the metrics directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.config
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from ledger.bootstrap import build_ledger, check_schema, prepared_database
from ledger.config import Settings
from ledger.entrypoints.http.logs import log_config
from ledger.entrypoints.http.read_timeouts import ReadTimeoutH11Protocol

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ledger.bootstrap import PostgresLedger
    from ledger.entrypoints.http.app import Hook

log = logging.getLogger("ledger.http.server")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
GRACEFUL_SHUTDOWN_S = 30
"""Longest SIGTERM waits for in-flight requests before closing their connections."""


@contextlib.contextmanager
def _metrics_hook(ledger: PostgresLedger) -> Iterator[None]:
    from ledger.entrypoints.http import metrics  # noqa: PLC0415 - imported once PROMETHEUS_MULTIPROC_DIR is set

    ledger.observe_writes(metrics.observe_batch)
    sync = metrics.CacheStatsSync(ledger)
    sync.start()
    try:
        yield
    finally:
        sync.stop()
        ledger.observe_writes(None)


@contextlib.contextmanager
def _projections_hook(ledger: PostgresLedger) -> Iterator[None]:
    """The projection runner, in every worker unless ``LEDGER_RUN_PROJECTIONS=false`` (workers
    take turns on the tracking rows' locks: ADR 0009), and its lag as a metric."""
    from ledger.entrypoints.http import metrics  # noqa: PLC0415 - see _metrics_hook

    if ledger.settings.run_projections:
        ledger.projections.start()
    reporter = metrics.ProjectionLagSync(ledger)
    reporter.start()
    try:
        yield
    finally:
        reporter.stop()
        ledger.projections.stop()


@contextlib.contextmanager
def _audit_hook(ledger: PostgresLedger) -> Iterator[None]:
    """Scheduled checkpoints and background verify passes, when configured (ADR 0019)."""
    from ledger.entrypoints.http import metrics  # noqa: PLC0415 - see _metrics_hook

    watch = ledger.audit_watch(on_problems=metrics.TAMPER_PROBLEMS.set)
    watch.start()
    try:
        yield
    finally:
        watch.stop()


WORKER_HEALTHCHECK_S = 30
"""How long the supervisor waits for a worker's answer to its health check."""

HOOKS: list[Hook] = [_metrics_hook, _projections_hook, _audit_hook]
"""What runs beside each worker's app, entered in order at start-up, exited in reverse."""


def worker_app() -> FastAPI:
    """The uvicorn app factory, called once in each worker process."""
    from ledger.entrypoints.http.app import create_app  # noqa: PLC0415

    settings = Settings()
    url = settings.database_url
    if url is None:
        msg = "worker_app needs LEDGER_DATABASE_URL (ledger serve sets it)"
        raise RuntimeError(msg)
    check_schema(url)
    ReadTimeoutH11Protocol.configure(settings)
    ledger = build_ledger(url, settings=settings)
    return create_app(ledger, hooks=[contextlib.closing, *HOOKS])


class NoDelayH11Protocol(ReadTimeoutH11Protocol):
    """uvicorn's HTTP/1.1 protocol with ``TCP_NODELAY`` on every connection (and the header
    and body read deadlines of ``ReadTimeoutH11Protocol``).

    asyncio turns Nagle's algorithm off only for sockets whose ``proto`` is ``IPPROTO_TCP``;
    the listening socket uvicorn binds for ``--workers N`` (N > 1) has ``proto`` 0, so accepted
    connections kept Nagle on, and an answer written in two parts (head, then body) waited for
    the client's delayed ACK: ~40 ms per request instead of ~2 ms (measured on ``whoami``).
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


@contextlib.contextmanager
def _exit_signals_recorded() -> Iterator[list[int]]:
    """SIGTERM/SIGINT only noted while this is open.

    After a graceful shutdown caused by a signal, uvicorn restores the previous handlers and
    raises the signal again; with the default handlers that would kill the process before the
    embedded server is stopped. Noting it instead lets ``serve`` finish its clean-up.
    """
    received: list[int] = []

    def note(signum: int, _: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(
    settings: Settings,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = 1,
) -> None:
    """Run the service until SIGTERM or SIGINT; raises ``SchemaMissing`` before listening if
    the configured database is not migrated."""
    level = settings.log_level_or("INFO")
    logging.config.dictConfig(log_config(level))
    if "prometheus_client" in sys.modules:  # pragma: no cover - an embedding mistake
        log.warning("prometheus_client was imported before serve(): metrics are per worker")
    with _exit_signals_recorded(), prepared_database(settings) as url:
        with tempfile.TemporaryDirectory(prefix="ledger-metrics-") as metrics_dir:
            os.environ["LEDGER_DATABASE_URL"] = url
            os.environ[MULTIPROC_ENV] = metrics_dir
            log.info(
                "ledger serving",
                extra={"url": f"http://{host}:{port}", "workers": workers},
            )
            uvicorn.run(
                "ledger.entrypoints.http.server:worker_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                http=NoDelayH11Protocol,
                log_config=log_config(level),
                log_level=level.lower(),
                access_log=False,
                server_header=False,
                # The client address is the socket's unless LEDGER_TRUSTED_PROXY_HEADER says
                # otherwise (ledger.entrypoints.http.abuse): uvicorn must not rewrite it.
                proxy_headers=False,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
                # A worker answers the supervisor's health check only once its imports are
                # done; on a loaded host that takes longer than uvicorn's 5 s, and the
                # supervisor would kill and restart every worker before it ever served.
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
            )
        log.info("ledger stopped; stopping the database")
