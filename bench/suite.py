"""The benchmark suite (issue 5): ledger (Python API and HTTP) against the one-row-per-token
baseline, in one run on one embedded PostgreSQL, within 10 minutes on a 2-core machine.

    python -m bench [--quick] [--output PATH] [--only GROUPS] [--clients 1,8,32] ...

Groups, in the order they run (``--only`` takes a comma-separated subset):

- ``write``: mint, exchange, renew, revoke; ledger and baseline; every client count;
- ``race``: exchange and renewal races (one token, many clients at once), both systems;
- ``verify``: cached, uncached and unknown-token verify against the baseline's indexed lookup;
- ``revocation``: how long until another process refuses a revoked token (``bench.revocation``);
- ``http``: the ledger through ``ledger serve`` with 1 and 2 workers (``bench.http_cells``);
- ``scale``: verify and mint latency with 10^4 and then 10^6 credentials in the store, and the
  projection rebuild (events/s) over 10^5 and ~10^6 events.

The invariant check (``invariant_violations``) always runs after the write and race groups. Results:
a table on stdout, ``bench/results/latest.json`` (``quick.json`` with ``--quick``) and a PNG chart
beside it when matplotlib is installed (``pip install -e '.[bench]'``, as ``make bench`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench import revocation
from bench.runner import Cell, Op, render_table, render_writer, run_cell
from bench.seed import SeedSpec, users
from bench.sides import (
    PAT_DAYS,
    RENEWABLE_DAYS,
    VERIFY_TOKENS,
    BaselineSide,
    LedgerSide,
    Violations,
)
from ledger.adapters.postgres import embedded_server, ensure_database, with_database
from ledger.config import Settings
from ledger.domain import TokenKind
from ledger.domain.tokens import issue

RESULTS_DIR = Path(__file__).resolve().parent / "results"
GROUPS = ("write", "race", "verify", "revocation", "http", "scale")
WRITE_OPERATIONS = ("mint", "exchange", "renew", "revoke")
LOADED_CLIENTS = 8
"""Writer threads while the loaded revocation propagation is measured."""
BUDGET_S = 570.0
"""The whole run stays under 10 minutes: a group that would not fit is reported as skipped."""
# Inputs prepared for a cell that consumes them: the mint rate of the same implementation and
# client count times the cell's duration times this, plus a margin per client.
PREPARE_FACTOR = 2.0
PREPARE_MARGIN_PER_CLIENT = 200
SERVER_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "wal_sync_method",
    "shared_buffers",
    "max_connections",
)


@dataclass(frozen=True, slots=True)
class Profile:
    """How much of everything a run does (full or ``--quick``)."""

    name: str
    clients: tuple[int, ...]
    seconds: float
    warmup: float
    race_rounds: int
    race_threads: int
    revocation_rounds: int
    http_workers: tuple[int, ...]
    http_clients: tuple[int, ...]
    http_seconds: float
    scales: tuple[int, int]
    """Credentials in the store for the small and the large scale measurement."""
    rebuild_events: int
    """The store grows to at least this many events for the first rebuild measurement."""
    scale_seconds: float


FULL = Profile(
    name="full",
    clients=(1, 8, 32),
    seconds=3.0,
    warmup=1.0,
    race_rounds=50,
    race_threads=8,
    revocation_rounds=200,
    http_workers=(1, 2),
    http_clients=(1, 8, 32),
    http_seconds=3.0,
    scales=(10_000, 1_000_000),
    rebuild_events=100_000,
    scale_seconds=3.0,
)
QUICK = Profile(
    name="quick",
    clients=(1, 8),
    seconds=1.0,
    warmup=0.3,
    race_rounds=10,
    race_threads=8,
    revocation_rounds=30,
    http_workers=(1,),
    http_clients=(8,),
    http_seconds=1.0,
    scales=(1_000, 100_000),
    rebuild_events=10_000,
    scale_seconds=1.0,
)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _exp(n: int) -> str:
    """10_000 -> "1e4" (for key names)."""
    text = f"{n:.0e}"  # "1e+04"
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


@dataclass(slots=True)
class Run:
    """The state of one suite run."""

    profile: Profile
    server_url: str
    deadline: float
    cells: list[Cell] = field(default_factory=list)
    violations: Violations = field(default_factory=Violations)
    extra: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def database(self, name: str) -> str:
        ensure_database(self.server_url, name)
        return with_database(self.server_url, name)

    def cell(
        self,
        side: LedgerSide | BaselineSide,
        group: str,
        operation: str,
        clients: int,
        op: Op,
        *,
        implementation: str | None = None,
        seconds: float | None = None,
    ) -> Cell:
        impl = implementation or side.name
        _progress(f"  {group} / {operation} / {impl} / {clients} clients")
        cell = run_cell(
            group=group,
            operation=operation,
            implementation=impl,
            clients=clients,
            op=op,
            warmup_s=self.profile.warmup,
            seconds=seconds or self.profile.seconds,
            writer=side.ledger.writer if isinstance(side, LedgerSide) else None,
        )
        self.cells.append(cell)
        return cell

    def find(self, group: str, operation: str, implementation: str, clients: int) -> Cell | None:
        for cell in self.cells:
            if (cell.group, cell.operation, cell.implementation, cell.clients) == (
                group,
                operation,
                implementation,
                clients,
            ) and cell.skipped is None:
                return cell
        return None


# ------------------------------------------------------------------------------- groups


def _needed(rate: float, profile: Profile, clients: int) -> int:
    return int(rate * (profile.warmup + profile.seconds) * PREPARE_FACTOR) + (
        PREPARE_MARGIN_PER_CLIENT * clients
    )


def write_group(run: Run, sides: Sequence[LedgerSide | BaselineSide]) -> None:
    """Mint first (its rate sizes the inputs of the cells that consume tokens), then exchange,
    renew and revoke; baseline and ledger alternate so that drifting load hits both alike."""
    _progress("write cells")
    for clients in run.profile.clients:
        rates: dict[str, float] = {}
        for side in sides:
            rates[side.name] = run.cell(side, "write", "mint", clients, side.mint).ops_per_s
        for operation in WRITE_OPERATIONS[1:]:
            for side in sides:
                count = _needed(rates[side.name], run.profile, clients)
                op: Op
                if operation == "exchange":
                    op = side.exchanger(side.install_tokens(count))
                elif operation == "renew":
                    raws, ids = side.personal_access_tokens(count, RENEWABLE_DAYS)
                    op = side.renewer(deque(zip(raws, ids, strict=True)))
                else:
                    _raws, ids = side.personal_access_tokens(count, PAT_DAYS)
                    op = side.revoker(deque(ids))
                run.cell(side, "write", operation, clients, op)


def race_group(run: Run, sides: Sequence[LedgerSide | BaselineSide]) -> None:
    rounds, threads = run.profile.race_rounds, run.profile.race_threads
    _progress(f"races: {rounds} rounds x {threads} clients, exchange and renew")
    for side in sides:
        side.race_exchange(rounds, threads)
        side.race_renew(rounds, threads)
    run.extra["races"] = {"rounds": rounds, "threads": threads}


def verify_group(run: Run, led: LedgerSide, base: BaselineSide) -> None:
    _progress("verify cells")
    led_raws, _ = led.personal_access_tokens(VERIFY_TOKENS, PAT_DAYS)
    base_raws, _ = base.personal_access_tokens(VERIFY_TOKENS, PAT_DAYS)
    # Well-formed (valid checksum), never minted; distinct across the whole run, so the
    # ledger's short negative cache never answers: every call reads the table.
    per_cell = 60_000 if run.profile.name == "full" else 20_000
    for clients in run.profile.clients:
        run.cell(base, "verify", "valid", clients, base.verifier(base_raws))
        cached = led.verifier(led_raws, cached=True)
        run.cell(led, "verify", "valid", clients, cached, implementation="ledger-cached")
        uncached = led.verifier(led_raws, cached=False)
        run.cell(led, "verify", "valid", clients, uncached, implementation="ledger-uncached")
        unknown = [issue(TokenKind.PERSONAL_ACCESS_TOKEN).raw for _ in range(per_cell)]
        run.cell(base, "verify", "unknown", clients, base.unknown_verifier(unknown))
        unknown = [issue(TokenKind.PERSONAL_ACCESS_TOKEN).raw for _ in range(per_cell)]
        run.cell(led, "verify", "unknown", clients, led.unknown_verifier(unknown))


def revocation_group(run: Run) -> None:
    rounds = run.profile.revocation_rounds
    _progress(f"revocation propagation: {rounds} rounds")
    url = run.database("ledger_revocation")
    from ledger.adapters import migrations  # noqa: PLC0415

    migrations.upgrade(url)
    delays = revocation.measure(url, rounds)
    run.extra["revocation"] = {
        "rounds": len(delays),
        "p50_ms": round(revocation.percentile(delays, 0.50), 3),
        "p99_ms": round(revocation.percentile(delays, 0.99), 3),
        "max_ms": round(max(delays), 3),
    }
    _progress(f"revocation propagation while {LOADED_CLIENTS} clients write: {rounds} rounds")
    loaded = revocation.measure(url, rounds, load_clients=LOADED_CLIENTS)
    run.extra["revocation_loaded"] = {
        "rounds": len(loaded),
        "load_clients": LOADED_CLIENTS,
        "p50_ms": round(revocation.percentile(loaded, 0.50), 3),
        "p99_ms": round(revocation.percentile(loaded, 0.99), 3),
        "max_ms": round(max(loaded), 3),
    }


def http_group(run: Run) -> None:
    from bench import http_cells  # noqa: PLC0415

    _progress("http cells")
    cells, missing = http_cells.run_group(
        database_url=run.database("ledger_http"),
        baseline_url=run.database("baseline_http"),
        workers=run.profile.http_workers,
        clients=run.profile.http_clients,
        seconds=run.profile.http_seconds,
        warmup=run.profile.warmup,
        progress=_progress,
    )
    run.cells.extend(cells)
    detail = (f"http: {missing} acknowledged writes missing",) if missing else ()
    run.violations += Violations(missing_acknowledged=missing, detail=detail)


def scale_group(run: Run) -> None:
    """Grow one store through the two scales; measure at each, and rebuild on the way."""
    profile = run.profile
    small, large = profile.scales
    url = run.database("ledger_scale")
    led = LedgerSide.start(url)
    seeded_raws: list[str] = []
    seeded_ids: list[Any] = []
    seeded_events = 0
    spread = users(1_000)
    try:

        def grow_to(credentials: int) -> None:
            nonlocal seeded_events
            count = credentials - len(seeded_ids)
            if count <= 0:
                return
            at = datetime.now(UTC) - timedelta(minutes=1)
            started = time.perf_counter()
            seeded = led.seeder.seed(
                SeedSpec(
                    kind=TokenKind.PERSONAL_ACCESS_TOKEN,
                    count=count,
                    at=at,
                    expires_at=at + timedelta(days=365),
                    users=spread,
                    revoke_every=10,
                    raw_every=max(1, count // 2_000),
                )
            )
            elapsed = time.perf_counter() - started
            seeded_ids.extend(seeded.ids)
            seeded_raws.extend(r for r, i in zip(seeded.raw, seeded.ids, strict=False) if r)
            seeded_events += seeded.events
            led.seeder.check_sample(seeded.ids, size=100)
            settle(url)
            _progress(
                f"  seeded {seeded.credentials:,} credentials ({seeded.events:,} events) "
                f"in {elapsed:.1f} s"
            )
            run.extra.setdefault("seeding", []).append(
                {"credentials": seeded.credentials, "events": seeded.events, "seconds": elapsed}
            )

        def measure(scale: int) -> None:
            # Revoked ones (every 10th) are refused, which is a valid verify outcome too, but
            # the measured set holds usable tokens only.
            usable = _usable(url, seeded_raws)
            sample = random.sample(usable, min(VERIFY_TOKENS, len(usable)))
            # A fresh ledger for each scale: its cache invalidator starts at the log's end.
            side = LedgerSide.start(url)
            try:
                label = _exp(scale)
                run.cell(
                    side,
                    "scale",
                    f"verify@{label}",
                    1,
                    side.verifier(sample, cached=False),
                    implementation="ledger-uncached",
                    seconds=profile.scale_seconds,
                )
                run.cell(
                    side,
                    "scale",
                    f"verify@{label}",
                    8,
                    side.verifier(sample, cached=False),
                    implementation="ledger-uncached",
                    seconds=profile.scale_seconds,
                )
                run.cell(
                    side, "scale", f"mint@{label}", 1, side.mint, seconds=profile.scale_seconds
                )
            finally:
                side.close()

        _progress(f"scale: {small:,} credentials")
        grow_to(small)
        measure(small)
        # Every 10th credential has two events: grow until the store holds rebuild_events.
        grow_to(max(small, int(profile.rebuild_events / 1.1) + 1))
        rebuild_cell(run, url, _events(url), replay=True)
        rebuild_cell(run, url, _events(url), replay=False)
        rebuild_cell(run, url, _events(url), replay=False, audit_verify=True)
        _progress(f"scale: {large:,} credentials")
        grow_to(large)
        measure(large)
        rebuild_cell(run, url, _events(url), replay=False)
    finally:
        led.close()


def settle(url: str) -> None:
    """After a bulk load: vacuum and analyze (visibility map, planner statistics) and write
    the dirty pages out, so the measurement that follows does not pay for the load."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) ledger_events, ledger_credentials")
        conn.execute("CHECKPOINT")


def _events(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM ledger_events").fetchone()
    return int(row[0]) if row else 0


def _usable(url: str, raws: Sequence[str]) -> list[str]:
    from ledger.domain.tokens import hash_token  # noqa: PLC0415

    by_hash = {hash_token(r): r for r in raws}
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT token_hash FROM ledger_credentials WHERE token_hash = ANY(%s) "
            "AND revoked_at IS NULL",
            (list(by_hash),),
        ).fetchall()
    return [by_hash[r[0]] for r in rows]


def rebuild_cell(
    run: Run, url: str, events: int, *, replay: bool, audit_verify: bool = False
) -> None:
    operation = "audit_verify" if audit_verify else "replay" if replay else "rebuild"
    label = f"{operation}@{_exp(events)}"
    budget = max(5.0, run.remaining() - 5)
    _progress(f"  {operation} over {events:,} events (at most {budget:.0f} s)")
    command = [sys.executable, "-m", "bench.rebuild", url]
    if replay:
        command.append("--replay")
    if audit_verify:
        command.append("--audit-verify")
    try:
        done = subprocess.run(  # noqa: PLW1510 - the exit code is read below
            command,
            capture_output=True,
            text=True,
            timeout=budget,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        )
    except subprocess.TimeoutExpired:
        cell = Cell("scale", label, "ledger", 1, skipped=f"timed out after {budget:.0f} s")
        cell.note = f"fewer than {events / budget:,.0f} events/s"
        run.cells.append(cell)
        return
    lines = done.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1]) if done.returncode == 0 and lines else {}
    if not result:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        result = {"skipped": f"failed (exit {done.returncode}): {tail[0]}"}
    if "skipped" in result:
        run.cells.append(Cell("scale", label, "ledger", 1, skipped=str(result["skipped"])))
        return
    seconds = float(result["seconds"])
    processed = int(result["events"])
    cell = Cell(
        "scale",
        label,
        "ledger",
        1,
        seconds=round(seconds, 3),
        ops=processed,
        ops_per_s=round(processed / seconds, 1) if seconds else 0.0,
        successes=processed,
        note=f"{processed:,} events in {seconds:.2f} s (events/s in the ops/s column)",
    )
    run.cells.append(cell)


# ------------------------------------------------------------------------------ results


def ratios(run: Run) -> dict[str, Any]:
    """Each ledger cell's ratio to the baseline, and the issue's headline keys."""
    keys: dict[str, Any] = {}
    for cell in run.cells:
        if cell.skipped is not None or not cell.implementation.startswith("ledger"):
            continue
        group, operation = cell.group, cell.operation
        if group == "http":
            group, operation = (
                ("verify", "valid") if operation == "verify" else ("write", operation)
            )
        base = run.find(group, operation, "baseline", cell.clients)
        if base is not None and base.ops_per_s:
            cell.ratio = round(cell.ops_per_s / base.ops_per_s, 3)
            if cell.group == "write":
                keys[f"write_ratio_{cell.operation}_{cell.clients}"] = cell.ratio

    # HTTP: each ledger cell against the HTTP baseline with as many workers; the headline
    # keys (``http_ratio_<op>_<clients>``) come from the largest worker count.
    for cell in sorted(run.cells, key=lambda c: c.implementation):
        if cell.group != "http" or cell.skipped is not None:
            continue
        if not cell.implementation.startswith("ledger-http-"):
            continue
        workers = cell.implementation.removeprefix("ledger-http-")
        base = run.find("http", cell.operation, f"baseline-http-{workers}", cell.clients)
        if base is not None and base.ops_per_s and base.skipped is None:
            value = round(cell.ops_per_s / base.ops_per_s, 3)
            keys[f"http_ratio_{cell.operation}_{cell.clients}_{workers}"] = value
            keys[f"http_ratio_{cell.operation}_{cell.clients}"] = value

    def p50(group: str, operation: str, impl: str, clients: int = 1) -> float | None:
        cell = run.find(group, operation, impl, clients)
        return cell.p50_ms if cell is not None and cell.p50_ms > 0 else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b is not None else None

    base_valid = p50("verify", "valid", "baseline")
    keys["verify_cached_speedup"] = ratio(base_valid, p50("verify", "valid", "ledger-cached"))
    keys["verify_uncached_ratio"] = ratio(p50("verify", "valid", "ledger-uncached"), base_valid)
    keys["verify_unknown_ratio"] = ratio(
        p50("verify", "unknown", "ledger"), p50("verify", "unknown", "baseline")
    )
    small, large = (_exp(s) for s in run.profile.scales)
    keys[f"verify_scale_ratio_{large}_{small}"] = ratio(
        p50("scale", f"verify@{large}", "ledger-uncached"),
        p50("scale", f"verify@{small}", "ledger-uncached"),
    )
    keys[f"mint_scale_ratio_{large}_{small}"] = ratio(
        p50("scale", f"mint@{large}", "ledger"), p50("scale", f"mint@{small}", "ledger")
    )
    propagation = run.extra.get("revocation") or {}
    keys["revocation_propagation_p50_ms"] = propagation.get("p50_ms")
    keys["revocation_propagation_p99_ms"] = propagation.get("p99_ms")
    loaded = run.extra.get("revocation_loaded") or {}
    keys["revocation_propagation_loaded_p50_ms"] = loaded.get("p50_ms")
    keys["revocation_propagation_loaded_p99_ms"] = loaded.get("p99_ms")
    rebuilds = [
        c
        for c in run.cells
        if c.group == "scale" and c.operation.startswith("rebuild@") and c.skipped is None
    ]
    # The largest store's figure is the headline.
    keys["rebuild_events_per_s"] = rebuilds[-1].ops_per_s if rebuilds else None
    for cell in rebuilds:
        keys[f"rebuild_events_per_s_{cell.operation.split('@')[1]}"] = cell.ops_per_s
    replays = [c for c in run.cells if c.operation.startswith("replay@") and c.skipped is None]
    keys["replay_events_per_s"] = replays[-1].ops_per_s if replays else None
    verifies = [
        c for c in run.cells if c.operation.startswith("audit_verify@") and c.skipped is None
    ]
    keys["audit_verify_events_per_s"] = verifies[-1].ops_per_s if verifies else None
    return keys


def machine(server: dict[str, str], busy: float | None) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgres": server.get("server_version"),
        "postgres_settings": server,
        # Other work on the machine skews a run: how busy its CPUs were just before it.
        "cpu_busy_pct_before_run": busy,
    }


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


def server_settings(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(SERVER_SETTINGS),)
        ).fetchall()
    return {str(name): str(value) for name, value in rows}


# ---------------------------------------------------------------------------------- main


def _guarded(run: Run, name: str, minimum_s: float, body: Callable[[], None]) -> None:
    """Run a group unless fewer than ``minimum_s`` seconds of the budget remain; a group that
    fails is reported as such, and the others still run."""
    if run.remaining() < minimum_s:
        run.skipped[name] = f"time budget: {run.remaining():.0f} s left, needs ~{minimum_s:.0f} s"
        _progress(f"skipped {name}: {run.skipped[name]}")
        return
    try:
        body()
    except Exception as error:  # noqa: BLE001 - reported in the results; the run goes on
        run.skipped[name] = f"failed: {type(error).__name__}: {error}"
        _progress(f"group {name} failed: {type(error).__name__}: {error}")


def api_groups(run: Run, groups: set[str]) -> None:
    """The Python-API groups, on their own databases; their connections are closed after."""
    led = LedgerSide.start(run.database("ledger_bench"))
    base = BaselineSide.start(run.database("baseline_bench"))
    try:
        sides: list[LedgerSide | BaselineSide] = [base, led]
        if "write" in groups:
            _guarded(run, "write", 60, lambda: write_group(run, sides))
        if "race" in groups:
            _guarded(run, "race", 20, lambda: race_group(run, sides))
        run.violations += base.check() + led.check()
        if "verify" in groups:
            _guarded(run, "verify", 30, lambda: verify_group(run, led, base))
        run.extra["pool_size"] = led.ledger.settings.pool_size
    finally:
        base.close()
        led.close()


def execute(args: argparse.Namespace, server_url: str, started: float) -> dict[str, Any]:
    profile: Profile = args.profile
    run = Run(profile=profile, server_url=server_url, deadline=started + args.budget)
    groups: set[str] = set(args.only)
    busy = machine_busy_pct()
    if groups & {"write", "race", "verify"}:
        api_groups(run, groups)
    if "revocation" in groups:
        _guarded(run, "revocation", 15, lambda: revocation_group(run))
    if "http" in groups:
        _guarded(run, "http", 40, lambda: http_group(run))
    if "scale" in groups:
        _guarded(run, "scale", 60, lambda: scale_group(run))
    settings_now = server_settings(server_url)

    keys = ratios(run)
    duration = time.monotonic() - started
    return {
        "benchmark": "suite",
        "mode": profile.name,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(duration, 1),
        "machine": machine(settings_now, busy),
        **keys,
        "invariant_violations": run.violations.total,
        "invariants": run.violations.as_json(),
        "settings": {
            "profile": profile.name,
            "clients": list(profile.clients),
            "seconds": profile.seconds,
            "warmup": profile.warmup,
            "scales": list(profile.scales),
            "pool_size": run.extra.pop("pool_size", None),
            "ledger_max_batch": Settings().max_batch,
            "groups": sorted(groups),
        },
        "skipped_groups": run.skipped,
        "extra": run.extra,
        "errors": sum(c.errors for c in run.cells),
        "results": [c.as_json() for c in run.cells],
    }


def report(document: dict[str, Any]) -> str:
    cells = [Cell(**{**c, "writer": None}) for c in document["results"]]
    lines = [render_table(cells), ""]
    writer_cells = []
    for raw, cell in zip(document["results"], cells, strict=True):
        if raw.get("writer"):
            from bench.runner import WriterDelta  # noqa: PLC0415

            w = raw["writer"]
            cell.writer = WriterDelta(
                w["batches"], w["commands"], w["conflicts"], w["largest_batch"]
            )
            writer_cells.append(cell)
    if writer_cells:
        lines += [
            "ledger group commit (timed window of each cell)",
            render_writer(writer_cells),
            "",
        ]
    for cell in cells:
        if cell.skipped:
            lines.append(f"skipped: {cell.key}: {cell.skipped}")
        elif cell.errors or cell.exhausted:
            lines.append(
                f"warning: {cell.key}: {cell.errors} errors (first: {cell.first_error}), "
                f"exhausted={cell.exhausted}"
            )
        if cell.note:
            lines.append(f"note: {cell.key}: {cell.note}")
    for name, reason in document["skipped_groups"].items():
        lines.append(f"skipped group {name}: {reason}")
    lines.append("")
    headline = [
        k
        for k in document
        if k.startswith(("write_ratio_", "verify_", "revocation_", "rebuild_", "replay_", "mint_"))
    ]
    for key in [*headline, "invariant_violations"]:
        lines.append(f"{key:40} {document[key]}")
    inv = document["invariants"]
    lines.append(
        f"  (double spends {inv['double_spends']}, double renewals {inv['double_renewals']}, "
        f"acknowledged but missing {inv['missing_acknowledged']})"
    )
    for detail in inv["detail"]:
        lines.append(f"  {detail}")
    m = document["machine"]
    lines.append(
        f"machine: {m['cores']} cores, Python {m['python']}, PostgreSQL {m['postgres']}, "
        f"CPUs {m['cpu_busy_pct_before_run']}% busy before the run; "
        f"run took {document['duration_s']} s"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a < 90 s run for development")
    parser.add_argument("--output", type=Path, help="JSON results (default results/latest.json)")
    parser.add_argument(
        "--only",
        type=lambda s: [g.strip() for g in s.split(",") if g.strip()],
        default=list(GROUPS),
        help=f"comma-separated groups to run (default all: {','.join(GROUPS)})",
    )
    parser.add_argument(
        "--clients",
        type=lambda s: tuple(int(x) for x in s.split(",")),
        help="comma-separated client counts of the write and verify cells",
    )
    parser.add_argument("--seconds", type=float, help="timed seconds per cell")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per cell")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the run")
    parser.add_argument("--no-chart", action="store_true", help="do not draw the PNG")
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups: {', '.join(sorted(unknown))}")
    profile = QUICK if args.quick else FULL
    overrides: dict[str, Any] = {}
    if args.clients:
        overrides["clients"] = args.clients
    if args.seconds:
        overrides["seconds"] = args.seconds
    if args.warmup is not None:
        overrides["warmup"] = args.warmup
    if overrides:
        from dataclasses import replace  # noqa: PLC0415

        profile = replace(profile, **overrides)
    args.profile = profile
    if args.output is None:
        args.output = RESULTS_DIR / ("quick.json" if args.quick else "latest.json")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    data_dir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    # Every process of the run (ledger serve, followers) inherits these. The cells write for one
    # user and one workspace, far past the default token limits: the suite measures the write
    # path with the limits off (docs/adr/0021 has their cost). The exchange key lives with the
    # run's data.
    os.environ.setdefault("LEDGER_MAX_TOKENS_PER_USER", "0")
    os.environ.setdefault("LEDGER_MAX_DAEMON_TOKENS_PER_WORKSPACE", "0")
    os.environ.setdefault("LEDGER_EXCHANGE_KEY_FILE", str(data_dir / "exchange.key"))
    try:
        _progress(f"starting PostgreSQL under {data_dir} ...")
        with embedded_server(data_dir) as server_url:
            document = execute(args, server_url, started)
    except KeyboardInterrupt:
        _progress("interrupted; PostgreSQL stopped")
        return 130
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    document["duration_s"] = round(time.monotonic() - started, 1)
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n")
    print()
    print(report(document))
    print(f"\nresults written to {output}")
    if not args.no_chart:
        from bench import chart  # noqa: PLC0415

        png = chart.draw(document, output.with_suffix(".png"))
        print(png if isinstance(png, str) else f"chart written to {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
