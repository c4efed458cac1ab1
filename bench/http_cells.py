"""HTTP cells: the ledger through ``ledger serve``, driven by a load generator in another process.

For each worker count (1 and 2) the suite starts ``ledger serve --host 127.0.0.1 --port P
--workers N`` with ``LEDGER_DATABASE_URL`` set, waits for ``GET /readyz``, and for every
operation and client count runs a load-generator process (``python -m bench.http_cells --load …``):
client threads with one keep-alive ``http.client`` connection each, timed by the same cell
runner as the Python-API cells. Operations (routes of docs/http.md):

- ``mint``: ``POST /api/tokens`` (bearer: a personal access token) → 201;
- ``exchange``: ``POST /api/install-tokens/exchange`` with a seeded install token → 200;
- ``verify``: ``GET /api/me`` (bearer) → 200: the service's verify, then a user lookup.

The HTTP baseline (``bench.baseline.http_app``: the one-row-per-token store behind FastAPI and
uvicorn, served like ``ledger serve`` with the same worker counts) runs the ``mint`` and
``verify`` cells with the same load generator, so HTTP cells get a ratio (its ``/api/me`` is
the verify alone: the baseline has no users to look up).

Every token or id the service acknowledged is looked up in the store afterwards (missing ones
count as invariant violations). When ``ledger serve --help`` fails (the service is not built yet)
the group reports one skipped row per worker count. ``BENCH_LEDGER_BIN`` names another ``ledger``
executable.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg

from bench.runner import Cell, Exhausted, Op, run_cell
from bench.seed import CredentialSeeder, SeedSpec
from ledger.adapters import migrations
from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain import Credential, TokenKind
from ledger.domain.credential import INSTALL_TOKEN_LIFETIME
from ledger.domain.tokens import hash_token

OPERATIONS = ("mint", "exchange", "verify")
SKIPPED = "skipped: `ledger serve` not available"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
_PRESENT = (
    "SELECT count(*) FROM ledger_credentials c WHERE c.credential_id = ANY(%s) "
    "AND EXISTS (SELECT 1 FROM ledger_events e WHERE e.originator_id = c.credential_id)"
)


def ledger_bin() -> str:
    """The ``ledger`` executable: ``BENCH_LEDGER_BIN``, the one beside this Python, or PATH's."""
    configured = os.environ.get("BENCH_LEDGER_BIN")
    if configured:
        return configured
    beside = Path(sys.executable).parent / "ledger"
    return str(beside) if beside.exists() else (shutil.which("ledger") or "ledger")


def serve_available() -> bool:
    """Whether ``ledger serve --help`` exits 0."""
    try:
        done = subprocess.run(  # noqa: PLW1510 - the exit code is the answer
            [ledger_bin(), "serve", "--help"], capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(slots=True)
class Server:
    """One ``ledger serve`` process (its own process group, stopped by us)."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @classmethod
    def start(cls, database_url: str, workers: int, log_dir: Path) -> Server:
        port = _free_port()
        command = [ledger_bin(), "serve", "--host", "127.0.0.1", "--port", str(port)]
        env = {**os.environ, "LEDGER_DATABASE_URL": database_url}
        return cls._start([*command, "--workers", str(workers)], env, port, log_dir / "serve")

    @classmethod
    def start_baseline(cls, database_url: str, workers: int, log_dir: Path) -> Server:
        port = _free_port()
        command = [sys.executable, "-m", "bench.baseline.http_app", "--port", str(port)]
        env = {
            **os.environ,
            "BENCH_BASELINE_URL": database_url,
            "PYTHONPATH": str(Path(__file__).parents[1]),
        }
        return cls._start(
            [*command, "--workers", str(workers)], env, port, log_dir / f"baseline-{workers}w"
        )

    @classmethod
    def _start(cls, command: list[str], env: dict[str, str], port: int, name: Path) -> Server:
        log = name.with_suffix(".log")
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        server = cls(process, port, log)
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = f"ledger serve exited with {self.process.returncode}: {self.tail()}"
                raise RuntimeError(msg)
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status in (200, 404):  # the baseline has no /readyz
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.1)
        msg = f"ledger serve not ready within {READY_TIMEOUT_S:.0f} s: {self.tail()}"
        raise RuntimeError(msg)

    def tail(self) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-3:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        with _suppress_lookup():
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with _suppress_lookup():
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT_S)


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, ProcessLookupError)


# ------------------------------------------------------------------------ the suite side


@dataclass(frozen=True, slots=True)
class Fixture:
    """What the load generators present: a user's token, and install tokens to exchange."""

    database_url: str
    pat: str
    ledger: PostgresLedger
    seeder: CredentialSeeder
    user_id: UUID
    workspace_id: UUID

    def install_tokens(self, count: int, path: Path) -> Path:
        from datetime import UTC, datetime, timedelta  # noqa: PLC0415

        at = datetime.now(UTC) - timedelta(seconds=1)
        seeded = self.seeder.seed(
            SeedSpec(
                kind=TokenKind.INSTALL_TOKEN,
                count=count,
                at=at,
                expires_at=at + INSTALL_TOKEN_LIFETIME,
                workspace_id=self.workspace_id,
                issuer_id=self.user_id,
                raw_every=1,
            )
        )
        path.write_text("\n".join(seeded.raw) + "\n")
        return path


def run_group(
    *,
    database_url: str,
    baseline_url: str,
    workers: Sequence[int],
    clients: Sequence[int],
    seconds: float,
    warmup: float,
    progress: Callable[[str], None],
) -> tuple[list[Cell], int]:
    """Every HTTP cell; the cells and how many acknowledged writes are missing from the store."""
    if not serve_available():
        progress(f"  {SKIPPED}")
        return [Cell("http", "all", f"ledger-http-{n}w", 0, skipped=SKIPPED) for n in workers], 0
    migrations.upgrade(database_url)
    ledger = build_ledger(database_url, settings=Settings(pool_size=2))
    cells: list[Cell] = []
    missing = 0
    with tempfile.TemporaryDirectory(prefix="ledger-bench-http-") as tmp:
        work = Path(tmp)
        try:
            user = ledger.create_user("bench-http")
            principal = ledger.verify(user.token)
            workspace = ledger.create_workspace(principal, "bench-http")
            fixture = Fixture(
                database_url=database_url,
                pat=user.token,
                ledger=ledger,
                seeder=CredentialSeeder(ledger, database_url),
                user_id=user.user_id,
                workspace_id=workspace.id,
            )
            for count in workers:
                implementation = f"ledger-http-{count}w"
                try:
                    server = Server.start(database_url, count, work)
                except RuntimeError as error:
                    progress(f"  {implementation}: {error}")
                    cells.append(Cell("http", "all", implementation, 0, skipped=str(error)))
                    continue
                try:
                    for operation in OPERATIONS:
                        for n in clients:
                            progress(f"  http / {operation} / {implementation} / {n} clients")
                            cell, acknowledged = _load(
                                fixture=fixture,
                                port=server.port,
                                operation=operation,
                                clients=n,
                                seconds=seconds,
                                warmup=warmup,
                                work=work,
                            )
                            cell.implementation = implementation
                            cells.append(cell)
                            missing += len(acknowledged) - _present(database_url, acknowledged)
                finally:
                    server.stop()
            baseline_cells, baseline_missing = _baseline_group(
                database_url=baseline_url,
                workers=workers,
                clients=clients,
                seconds=seconds,
                warmup=warmup,
                work=work,
                progress=progress,
            )
            cells += baseline_cells
            missing += baseline_missing
        finally:
            ledger.close()
    return cells, missing


BASELINE_OPERATIONS = ("mint", "verify")


def _baseline_group(
    *,
    database_url: str,
    workers: Sequence[int],
    clients: Sequence[int],
    seconds: float,
    warmup: float,
    work: Path,
    progress: Callable[[str], None],
) -> tuple[list[Cell], int]:
    from datetime import timedelta  # noqa: PLC0415

    from bench.baseline.store import BaselineStore  # noqa: PLC0415

    store = BaselineStore(database_url, pool_size=1)
    try:
        store.create_schema()
        pat = store.insert_personal_access_tokens(uuid4(), 1, timedelta(days=30)).raw[0]
    finally:
        store.close()
    cells: list[Cell] = []
    missing = 0
    for count in workers:
        implementation = f"baseline-http-{count}w"
        try:
            server = Server.start_baseline(database_url, count, work)
        except RuntimeError as error:
            progress(f"  {implementation}: {error}")
            cells.append(Cell("http", "all", implementation, 0, skipped=str(error)))
            continue
        try:
            for operation in BASELINE_OPERATIONS:
                for n in clients:
                    progress(f"  http / {operation} / {implementation} / {n} clients")
                    cell, acknowledged = _run_load(
                        port=server.port,
                        operation=operation,
                        clients=n,
                        seconds=seconds,
                        warmup=warmup,
                        pat=pat,
                        inputs=None,
                    )
                    cell.implementation = implementation
                    cells.append(cell)
                    missing += len(acknowledged) - _baseline_present(database_url, acknowledged)
        finally:
            server.stop()
    return cells, missing


def _baseline_present(database_url: str, hashes: Sequence[str]) -> int:
    if not hashes:
        return 0
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM tokens WHERE token_hash = ANY(%s)", (list(hashes),)
        ).fetchone()
    return int(row[0]) if row else 0


def _present(database_url: str, ids: Sequence[str]) -> int:
    if not ids:
        return 0
    with psycopg.connect(database_url) as conn:
        row = conn.execute(_PRESENT, ([UUID(i) for i in ids],)).fetchone()
    return int(row[0]) if row else 0


# Exchanges per second that one HTTP service on this machine cannot exceed: sizes the seed.
_MAX_EXCHANGE_RATE = 3_000


def _load(
    *,
    fixture: Fixture,
    port: int,
    operation: str,
    clients: int,
    seconds: float,
    warmup: float,
    work: Path,
) -> tuple[Cell, list[str]]:
    inputs: Path | None = None
    if operation == "exchange":
        count = int(_MAX_EXCHANGE_RATE * (seconds + warmup)) + 100 * clients
        inputs = fixture.install_tokens(count, work / f"install-{port}-{clients}.txt")
    return _run_load(
        port=port,
        operation=operation,
        clients=clients,
        seconds=seconds,
        warmup=warmup,
        pat=fixture.pat,
        inputs=inputs,
    )


def _run_load(
    *,
    port: int,
    operation: str,
    clients: int,
    seconds: float,
    warmup: float,
    pat: str,
    inputs: Path | None,
) -> tuple[Cell, list[str]]:
    command = [
        sys.executable,
        "-m",
        "bench.http_cells",
        "--load",
        "--port",
        str(port),
        "--operation",
        operation,
        "--clients",
        str(clients),
        "--seconds",
        str(seconds),
        "--warmup",
        str(warmup),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "BENCH_PAT": pat}
    if inputs is not None:
        command += ["--inputs", str(inputs)]
    done = subprocess.run(  # noqa: PLW1510 - checked below
        command, capture_output=True, text=True, timeout=seconds + warmup + 120, env=env
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Cell("http", operation, "", clients, skipped=f"load generator failed: {tail}"), []
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    acknowledged: list[str] = result.pop("acknowledged")
    result.pop("writer", None)
    return Cell(**result), acknowledged


# ----------------------------------------------------------------------- load generator


class _Client:
    """One keep-alive connection per client thread."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=30)
        payload = json.dumps(body).encode() if body is not None else None
        if payload is not None:
            headers = {**headers, "Content-Type": "application/json"}
        try:
            self._conn.request(method, path, body=payload, headers=headers)
            response = self._conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            self._conn = None
            raise


def _operation(
    operation: str, *, port: int, clients: int, pat: str, inputs: list[str], acknowledged: list[str]
) -> Op:
    connections = [_Client(port) for _ in range(clients)]
    auth = {"Authorization": f"Bearer {pat}"}
    lock = threading.Lock()

    def expect(status: int, wanted: int, body: bytes) -> dict[str, Any]:
        if status != wanted:
            msg = f"HTTP {status}: {body[:200]!r}"
            raise RuntimeError(msg)
        data: dict[str, Any] = json.loads(body)
        return data

    def mint(client: int) -> None:
        status, body = connections[client].request(
            "POST", "/api/tokens", {"name": "bench", "expires_in_days": 30}, auth
        )
        acknowledged.append(str(expect(status, 201, body)["id"]))

    def exchange(client: int) -> None:
        with lock:
            if not inputs:
                raise Exhausted
            raw = inputs.pop()
        status, body = connections[client].request(
            "POST", "/api/install-tokens/exchange", {"token": raw, "daemon_id": f"d-{client}"}, {}
        )
        daemon = str(expect(status, 200, body)["token"])
        acknowledged.append(str(Credential.create_id(hash_token(daemon))))

    def verify(client: int) -> None:
        status, body = connections[client].request("GET", "/api/me", None, auth)
        expect(status, 200, body)

    return {"mint": mint, "exchange": exchange, "verify": verify}[operation]


def load(args: argparse.Namespace) -> int:
    """Run as the load generator: one cell, printed as JSON."""
    inputs = Path(args.inputs).read_text().split() if args.inputs else []
    acknowledged: list[str] = []
    op = _operation(
        args.operation,
        port=args.port,
        clients=args.clients,
        pat=os.environ.get("BENCH_PAT", ""),
        inputs=inputs,
        acknowledged=acknowledged,
    )
    cell = run_cell(
        group="http",
        operation=args.operation,
        implementation="ledger-http",
        clients=args.clients,
        op=op,
        warmup_s=args.warmup,
        seconds=args.seconds,
    )
    print(json.dumps({**cell.as_json(), "acknowledged": acknowledged}), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_cells", description=__doc__)
    parser.add_argument("--load", action="store_true", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--operation", choices=OPERATIONS, required=True)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--inputs", help="file of install tokens, one a line (exchange)")
    return load(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
