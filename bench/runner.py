"""Timed cells: N client threads repeat one operation; latencies of the timed window are kept.

A *cell* is one operation x implementation x client count. Its threads start together, run a
warm-up, then the timed window; only operations that *start* inside the window are measured.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ledger.adapters.writer import GroupCommitWriter

Op = Callable[[int], None]
"""One operation of one client: called with the client's number; raises on failure."""


class Exhausted(Exception):
    """The cell's prepared inputs (install tokens, renewable tokens …) ran out."""


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
    """The outcome of one cell (or a skipped cell, with ``skipped`` saying why)."""

    group: str
    operation: str
    implementation: str
    clients: int
    seconds: float = 0.0
    ops: int = 0
    ops_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    max_ms: float = 0.0
    successes: int = 0
    errors: int = 0
    exhausted: bool = False
    client_cpu_pct: float = 0.0
    first_error: str | None = None
    ratio: float | None = None
    """ops/s ÷ the baseline's ops/s for the same operation and clients (``None``: no pair)."""
    writer: WriterDelta | None = None
    skipped: str | None = None
    note: str | None = None

    @property
    def key(self) -> str:
        return f"{self.group}/{self.operation}/{self.implementation}/{self.clients}"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.writer is not None:
            data["writer"]["mean_batch"] = round(self.writer.mean_batch, 2)
        return data


def percentile(sorted_values: Sequence[int | float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0 when there are none)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


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
    latencies = result.latencies_ns
    clock = time.perf_counter_ns
    while not stop.is_set():
        began = clock()
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
            latencies.append(clock() - began)


def run_cell(
    *,
    group: str,
    operation: str,
    implementation: str,
    clients: int,
    op: Op,
    warmup_s: float,
    seconds: float,
    writer: GroupCommitWriter | None = None,
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
    before: tuple[int, int, int] | None = None
    try:
        now = time.perf_counter_ns()
        window.start_ns = now + int(warmup_s * 1e9)
        window.end_ns = window.start_ns + int(seconds * 1e9)
        barrier.wait()
        sleep_until(window.start_ns)
        cpu_start = time.process_time()
        wall_start = time.perf_counter()
        if writer is not None:
            stats = writer.stats
            before = (stats.batches, stats.commands, stats.conflicts)
            stats.largest_batch = 0  # a maximum cannot be diffed: restart it for this window
        sleep_until(window.end_ns)
        cpu_pct = 100 * (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
        for thread in threads:
            thread.join()
    finally:
        stop.set()
        barrier.abort()
        for thread in threads:
            thread.join(timeout=30)

    delta = None
    if writer is not None and before is not None:
        stats = writer.stats
        delta = WriterDelta(
            batches=stats.batches - before[0],
            commands=stats.commands - before[1],
            conflicts=stats.conflicts - before[2],
            largest_batch=stats.largest_batch,
        )
    latencies = sorted(ns for r in results for ns in r.latencies_ns)
    errors = [r.first_error for r in results if r.first_error is not None]
    return Cell(
        group=group,
        operation=operation,
        implementation=implementation,
        clients=clients,
        seconds=seconds,
        ops=len(latencies),
        ops_per_s=round(len(latencies) / seconds, 1),
        p50_ms=round(percentile(latencies, 50) / 1e6, 5),
        p99_ms=round(percentile(latencies, 99) / 1e6, 3),
        mean_ms=round(sum(latencies) / len(latencies) / 1e6, 3) if latencies else 0.0,
        max_ms=round(latencies[-1] / 1e6, 3) if latencies else 0.0,
        successes=sum(r.successes for r in results),
        errors=sum(r.errors for r in results),
        exhausted=any(r.exhausted for r in results),
        client_cpu_pct=round(cpu_pct, 1),
        first_error=errors[0] if errors else None,
        writer=delta,
    )


def sleep_until(deadline_ns: int) -> None:
    while (remaining := deadline_ns - time.perf_counter_ns()) > 0:
        time.sleep(min(remaining / 1e9, 0.25))


def summarize(
    *,
    group: str,
    operation: str,
    implementation: str,
    clients: int,
    seconds: float,
    latencies_ns: list[int],
    successes: int,
    errors: int,
    first_error: str | None = None,
) -> Cell:
    """A cell from latencies measured elsewhere (e.g. by a load-generator process)."""
    latencies = sorted(latencies_ns)
    return Cell(
        group=group,
        operation=operation,
        implementation=implementation,
        clients=clients,
        seconds=seconds,
        ops=len(latencies),
        ops_per_s=round(len(latencies) / seconds, 1) if seconds else 0.0,
        p50_ms=round(percentile(latencies, 50) / 1e6, 5),
        p99_ms=round(percentile(latencies, 99) / 1e6, 3),
        mean_ms=round(sum(latencies) / len(latencies) / 1e6, 3) if latencies else 0.0,
        max_ms=round(latencies[-1] / 1e6, 3) if latencies else 0.0,
        successes=successes,
        errors=errors,
        first_error=first_error,
    )


# ---------------------------------------------------------------------------------- output


def _ratio_text(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.2f}x"


def render_table(cells: Sequence[Cell]) -> str:
    header = ("group", "operation", "impl", "clients", "ops/s", "p50 ms", "p99 ms", "vs base")
    rows = []
    for c in cells:
        if c.skipped is not None:
            rows.append((c.group, c.operation, c.implementation, str(c.clients), "-", "-", "-", ""))
            continue
        flag = " !" if c.errors or c.exhausted else ""
        rows.append(
            (
                c.group,
                c.operation,
                c.implementation,
                str(c.clients),
                f"{c.ops_per_s:,.0f}{flag}",
                f"{c.p50_ms:.3f}",
                f"{c.p99_ms:.3f}",
                _ratio_text(c.ratio),
            )
        )
    return format_rows(header, rows, left=3)


def render_writer(cells: Sequence[Cell]) -> str:
    header = ("group", "operation", "clients", "batches", "commands", "largest", "mean batch")
    rows = [
        (
            c.group,
            c.operation,
            str(c.clients),
            str(c.writer.batches),
            str(c.writer.commands),
            str(c.writer.largest_batch),
            f"{c.writer.mean_batch:.2f}",
        )
        for c in cells
        if c.writer is not None and c.writer.commands
    ]
    return format_rows(header, rows, left=2)


def format_rows(header: Sequence[str], rows: Sequence[Sequence[str]], *, left: int) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if i < left else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])
