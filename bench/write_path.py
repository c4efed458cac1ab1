"""Write-path benchmark: the ledger's mint and exchange against a one-row-per-token baseline.

Run from the repository root::

    .venv/bin/python -m bench.write_path [--seconds 5] [--warmup 1] [--clients 1,8]

One embedded PostgreSQL server (in a temporary directory, stopped at the end) holds two
databases: ``ledger_bench`` (the ledger's migrated schema) and ``baseline_bench`` (the baseline's
``tokens`` table). Every cell (operation x implementation x client count) runs its client threads
for a warm-up, then for the timed window; per-operation latencies of operations started in the
window are kept. Results are printed and written to ``bench/results/write_path.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg

from bench.baseline import BaselineStore
from ledger import migrations
from ledger.adapters.postgres import embedded_server, ensure_database, with_database
from ledger.application import Ledger, Principal
from ledger.config import Settings

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "write_path.json"
LEDGER_DATABASE = "ledger_bench"
BASELINE_DATABASE = "baseline_bench"
POOL_SIZE = 16
PAT_DAYS = 30
OPERATIONS = ("mint", "exchange")
IMPLEMENTATIONS = ("baseline", "ledger")
# Install tokens made ready for an exchange cell: the mint rate of the same implementation and
# client count (exchange does more work than mint on both sides) times this, plus a margin.
PREMINT_FACTOR = 1.5
PREMINT_MARGIN_PER_CLIENT = 100
PREMINT_THREADS = 8
SERVER_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "wal_sync_method",
    "shared_buffers",
    "max_connections",
)

Op = Callable[[int], None]
"""One operation of one client: called with the client's number; raises on failure."""


class Exhausted(Exception):
    """No pre-minted install token is left for an exchange."""


# ------------------------------------------------------------------------------------ cells


@dataclass(slots=True)
class _Window:
    start_ns: int = 0
    end_ns: int = 0


@dataclass(slots=True)
class _Client:
    latencies_ns: list[int] = field(default_factory=list)
    successes: int = 0
    errors: int = 0
    first_error: str | None = None
    exhausted: bool = False


@dataclass(frozen=True, slots=True)
class WriterDelta:
    """The ledger's group-commit counters over one cell's timed window."""

    batches: int
    commands: int
    conflicts: int
    largest_batch: int

    @property
    def mean_batch(self) -> float:
        return self.commands / self.batches if self.batches else 0.0


@dataclass(slots=True)
class Cell:
    """The outcome of one operation x implementation x client count."""

    operation: str
    implementation: str
    clients: int
    seconds: float
    ops: int
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    successes: int
    errors: int
    exhausted: bool
    client_cpu_pct: float
    first_error: str | None = None
    ratio: float | None = None
    writer: WriterDelta | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.writer is not None:
            data["writer"]["mean_batch"] = round(self.writer.mean_batch, 2)
        return data


def percentile(sorted_values: Sequence[int], pct: float) -> int:
    """Nearest-rank percentile of already sorted values (0 when there are none)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _run_client(
    *,
    number: int,
    op: Op,
    window: _Window,
    barrier: threading.Barrier,
    stop: threading.Event,
    result: _Client,
) -> None:
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        return
    start, end = window.start_ns, window.end_ns
    while not stop.is_set():
        began = time.perf_counter_ns()
        if began >= end:
            return
        try:
            op(number)
        except Exhausted:
            result.exhausted = True
            return
        except Exception as error:  # noqa: BLE001 - counted and reported; the cell goes on
            result.errors += 1
            if result.first_error is None:
                result.first_error = f"{type(error).__name__}: {error}"
            continue
        result.successes += 1
        if began >= start:
            result.latencies_ns.append(time.perf_counter_ns() - began)


def run_cell(
    *,
    operation: str,
    implementation: str,
    clients: int,
    op: Op,
    warmup_s: float,
    seconds: float,
    ledger: Ledger | None = None,
) -> Cell:
    """Run ``clients`` threads doing ``op`` for ``warmup_s`` + ``seconds``; measure the window."""
    window = _Window()
    barrier = threading.Barrier(clients + 1)
    stop = threading.Event()
    results = [_Client() for _ in range(clients)]
    threads = [
        threading.Thread(
            target=_run_client,
            kwargs={
                "number": n,
                "op": op,
                "window": window,
                "barrier": barrier,
                "stop": stop,
                "result": results[n],
            },
            name=f"bench-client-{n}",
            daemon=True,
        )
        for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    try:
        now = time.perf_counter_ns()
        window.start_ns = now + int(warmup_s * 1e9)
        window.end_ns = window.start_ns + int(seconds * 1e9)
        barrier.wait()
        _sleep_until(window.start_ns)
        cpu_start = time.process_time()
        wall_start = time.perf_counter()
        before = None
        if ledger is not None:
            stats = ledger.writer.stats
            before = (stats.batches, stats.commands, stats.conflicts)
            stats.largest_batch = 0  # a maximum cannot be diffed: restart it for this window
        _sleep_until(window.end_ns)
        for thread in threads:
            thread.join()
        cpu_pct = 100 * (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
    finally:
        stop.set()
        barrier.abort()
        for thread in threads:
            thread.join(timeout=30)

    writer = None
    if ledger is not None and before is not None:
        stats = ledger.writer.stats
        writer = WriterDelta(
            batches=stats.batches - before[0],
            commands=stats.commands - before[1],
            conflicts=stats.conflicts - before[2],
            largest_batch=stats.largest_batch,
        )
    latencies = sorted(ns for r in results for ns in r.latencies_ns)
    errors = [r.first_error for r in results if r.first_error is not None]
    return Cell(
        operation=operation,
        implementation=implementation,
        clients=clients,
        seconds=seconds,
        ops=len(latencies),
        ops_per_s=round(len(latencies) / seconds, 1),
        p50_ms=round(percentile(latencies, 50) / 1e6, 3),
        p99_ms=round(percentile(latencies, 99) / 1e6, 3),
        mean_ms=round(sum(latencies) / len(latencies) / 1e6, 3) if latencies else 0.0,
        max_ms=round(latencies[-1] / 1e6, 3) if latencies else 0.0,
        successes=sum(r.successes for r in results),
        errors=sum(r.errors for r in results),
        exhausted=any(r.exhausted for r in results),
        client_cpu_pct=round(cpu_pct, 1),
        first_error=errors[0] if errors else None,
        writer=writer,
    )


def _sleep_until(deadline_ns: int) -> None:
    while (remaining := deadline_ns - time.perf_counter_ns()) > 0:
        time.sleep(min(remaining / 1e9, 0.25))


# ----------------------------------------------------------------------- the two systems


@dataclass(slots=True)
class LedgerSide:
    """The ledger under test, with the user and workspace every operation acts for."""

    ledger: Ledger
    principal: Principal
    workspace_id: UUID

    @classmethod
    def start(cls, database_url: str) -> LedgerSide:
        migrations.upgrade(database_url)
        ledger = Ledger(database_url, settings=Settings(pool_size=POOL_SIZE))
        created = ledger.create_user("bench")
        principal = ledger.verify(created.token)
        workspace = ledger.create_workspace(principal, "bench")
        return cls(ledger=ledger, principal=principal, workspace_id=workspace.id)

    def mint(self, _: int) -> None:
        self.ledger.mint_personal_access_token(self.principal, "bench", PAT_DAYS)

    def premint_install_tokens(self, count: int) -> deque[str]:
        def one(_: int) -> str:
            return self.ledger.mint_install_token(self.principal, self.workspace_id).token

        pool = ThreadPoolExecutor(PREMINT_THREADS, thread_name_prefix="bench-premint")
        try:
            return deque(pool.map(one, range(count)))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def exchanger(self, tokens: deque[str]) -> Op:
        def exchange(client: int) -> None:
            try:
                raw = tokens.popleft()
            except IndexError:
                raise Exhausted from None
            self.ledger.exchange_install_token(raw, f"daemon-{client}")

        return exchange


@dataclass(slots=True)
class BaselineSide:
    """The baseline store, with the user and workspace every operation acts for."""

    store: BaselineStore
    user_id: UUID = field(default_factory=uuid4)
    workspace_id: UUID = field(default_factory=uuid4)

    def mint(self, _: int) -> None:
        self.store.mint_personal_access_token(self.user_id, PAT_DAYS)

    def premint_install_tokens(self, count: int) -> deque[str]:
        return deque(self.store.insert_install_tokens(self.workspace_id, count))

    def exchanger(self, tokens: deque[str]) -> Op:
        def exchange(client: int) -> None:
            try:
                raw = tokens.popleft()
            except IndexError:
                raise Exhausted from None
            if self.store.exchange_install_token(raw, f"daemon-{client}") is None:
                msg = "install token refused"
                raise RuntimeError(msg)

        return exchange


# ------------------------------------------------------------------------------ invariants


_LEDGER_EXCHANGE_CHECK = """
WITH daemons AS (
    SELECT install_token_id, count(*) AS n FROM ledger_credentials
    WHERE kind = 'daemon_token' GROUP BY install_token_id
), consumed AS (
    SELECT credential_id FROM ledger_credentials
    WHERE kind = 'install_token' AND consumed_at IS NOT NULL
)
SELECT
    (SELECT count(*) FROM consumed),
    (SELECT coalesce(sum(n), 0) FROM daemons),
    (SELECT count(*) FROM consumed c FULL JOIN daemons d ON d.install_token_id = c.credential_id
     WHERE c.credential_id IS NULL OR d.n IS DISTINCT FROM 1)
"""


@dataclass(frozen=True, slots=True)
class InvariantCheck:
    """Every successful exchange consumed one install token and minted exactly one daemon token."""

    reported_exchanges: int
    used_install_tokens: int
    daemon_tokens: int
    unpaired_tokens: int

    @property
    def violations(self) -> int:
        return (
            abs(self.used_install_tokens - self.daemon_tokens)
            + abs(self.reported_exchanges - self.daemon_tokens)
            + self.unpaired_tokens
        )

    def as_json(self) -> dict[str, int]:
        return {**asdict(self), "violations": self.violations}


def check_ledger(database_url: str, reported: int) -> InvariantCheck:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(_LEDGER_EXCHANGE_CHECK).fetchone()
    assert row is not None
    used, daemons, unpaired = (int(v) for v in row)
    return InvariantCheck(reported, used, daemons, unpaired)


def check_baseline(store: BaselineStore, reported: int) -> InvariantCheck:
    # The baseline's rows do not link a daemon token to its install token: counts only.
    counts = store.exchange_counts()
    return InvariantCheck(reported, counts.used_install_tokens, counts.daemon_tokens, 0)


# ---------------------------------------------------------------------------------- output


def _ratio_text(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.2f}x"


def render_table(cells: Sequence[Cell]) -> str:
    header = ("operation", "implementation", "clients", "ops/s", "p50 ms", "p99 ms", "ledger/base")
    rows = [
        (
            c.operation,
            c.implementation,
            str(c.clients),
            f"{c.ops_per_s:.0f}",
            f"{c.p50_ms:.2f}",
            f"{c.p99_ms:.2f}",
            _ratio_text(c.ratio),
        )
        for c in cells
    ]
    return _format(header, rows, left=2)


def render_writer(cells: Sequence[Cell]) -> str:
    header = ("operation", "clients", "batches", "commands", "largest_batch", "mean batch")
    rows = [
        (
            c.operation,
            str(c.clients),
            str(c.writer.batches),
            str(c.writer.commands),
            str(c.writer.largest_batch),
            f"{c.writer.mean_batch:.2f}",
        )
        for c in cells
        if c.writer is not None
    ]
    return _format(header, rows, left=1)


def _format(header: Sequence[str], rows: Sequence[Sequence[str]], *, left: int) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if i < left else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


# ------------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.write_path", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per cell")
    parser.add_argument(
        "--clients",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 8],
        help="comma-separated client (thread) counts (default 1,8)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="JSON results file")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or not args.clients or min(args.clients) < 1:
        parser.error("--seconds must be > 0, --warmup >= 0, --clients >= 1")
    return args


def machine_busy_pct(seconds: float = 1.0) -> float | None:
    """How busy all CPUs were over ``seconds`` (from ``/proc/stat``; ``None`` elsewhere)."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return round(100 * (total - (idle1 - idle0)) / total, 1) if total else None


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace, server_url: str, stack: contextlib.ExitStack) -> dict[str, Any]:
    """Every cell on the server at ``server_url``; the JSON document of the results."""
    busy_before = machine_busy_pct()
    ensure_database(server_url, LEDGER_DATABASE)
    ensure_database(server_url, BASELINE_DATABASE)
    ledger_url = with_database(server_url, LEDGER_DATABASE)
    baseline_url = with_database(server_url, BASELINE_DATABASE)

    led = LedgerSide.start(ledger_url)
    stack.callback(led.ledger.close)
    store = BaselineStore(baseline_url, pool_size=POOL_SIZE)
    stack.callback(store.close)
    store.create_schema()
    base = BaselineSide(store)
    sides: dict[str, LedgerSide | BaselineSide] = {"baseline": base, "ledger": led}

    cells: list[Cell] = []
    mint_rate: dict[tuple[str, int], float] = {}
    for clients in args.clients:
        for operation in OPERATIONS:
            for implementation in IMPLEMENTATIONS:
                side = sides[implementation]
                if operation == "mint":
                    op: Op = side.mint
                else:
                    rate = mint_rate[implementation, clients]
                    count = int(rate * (args.warmup + args.seconds) * PREMINT_FACTOR)
                    count += PREMINT_MARGIN_PER_CLIENT * clients
                    _progress(f"pre-minting {count} install tokens for {implementation} ...")
                    op = side.exchanger(side.premint_install_tokens(count))
                _progress(f"{operation} / {implementation} / {clients} clients ...")
                cell = run_cell(
                    operation=operation,
                    implementation=implementation,
                    clients=clients,
                    op=op,
                    warmup_s=args.warmup,
                    seconds=args.seconds,
                    ledger=led.ledger if implementation == "ledger" else None,
                )
                if operation == "mint":
                    mint_rate[implementation, clients] = cell.ops_per_s
                cells.append(cell)

    by_key = {(c.operation, c.implementation, c.clients): c for c in cells}
    ratios: dict[str, float | None] = {}
    for cell in cells:
        if cell.implementation == "ledger":
            baseline = by_key[cell.operation, "baseline", cell.clients]
            cell.ratio = (
                round(cell.ops_per_s / baseline.ops_per_s, 3) if baseline.ops_per_s else None
            )
            ratios[f"write_ratio_{cell.operation}_{cell.clients}"] = cell.ratio

    def reported(implementation: str) -> int:
        return sum(
            c.successes
            for c in cells
            if c.operation == "exchange" and c.implementation == implementation
        )

    invariants = {
        "ledger": check_ledger(ledger_url, reported("ledger")),
        "baseline": check_baseline(store, reported("baseline")),
    }

    print()
    print(render_table(cells))
    print()
    print("ledger group commit (timed window of each cell)")
    print(render_writer(cells))
    print()
    for name, check in invariants.items():
        print(
            f"invariant ({name}): {check.reported_exchanges} exchanges reported, "
            f"{check.used_install_tokens} install tokens used, {check.daemon_tokens} daemon "
            f"tokens, {check.unpaired_tokens} unpaired -> {check.violations} violations"
        )
    for cell in cells:
        if cell.errors or cell.exhausted:
            print(
                f"warning: {cell.operation}/{cell.implementation}/{cell.clients}: "
                f"{cell.errors} errors (first: {cell.first_error}), exhausted={cell.exhausted}"
            )

    server = store.server_settings(SERVER_SETTINGS)
    return {
        "benchmark": "write_path",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # Other work on the machine skews a run: how busy its CPUs were just before it.
            "cpu_busy_pct_before_run": busy_before,
            "postgresql": server["server_version"],
            "postgresql_settings": server,
        },
        "settings": {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "clients": args.clients,
            "pool_size": POOL_SIZE,
            "ledger_max_batch": led.ledger.settings.max_batch,
        },
        **ratios,
        "invariant_violations": sum(c.violations for c in invariants.values()),
        "invariants": {name: check.as_json() for name, check in invariants.items()},
        "errors": sum(c.errors for c in cells),
        "results": [c.as_json() for c in cells],
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    try:
        _progress(f"starting PostgreSQL under {data_dir} ...")
        with embedded_server(data_dir) as server_url, contextlib.ExitStack() as stack:
            document = run(args, server_url, stack)
    except KeyboardInterrupt:
        _progress("interrupted; PostgreSQL stopped")
        return 130
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nresults written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
