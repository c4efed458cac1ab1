"""How long until another process refuses a revoked token (the verifier cache's propagation bound).

One follower process holds a ledger with the default cached verifier. For each round the main
process mints a token and hands it to the follower, which verifies it (so its cache holds it)
and then verifies it in a loop; the main process revokes it through its own ledger and notes
the time the revoke returned; the follower notes the time its verifier first refused the token.
Both times come from ``time.monotonic_ns()``, one clock for every process on Linux.

    python -m bench.revocation [--rounds 200] [--output bench/results/revocation.json]

Prints p50, p99 and max in milliseconds and writes JSON with ``revocation_propagation_p99_ms``.
The follower polls every 0.2 ms, which bounds the resolution.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from ledger.adapters import migrations
from ledger.adapters.postgres import embedded_server, ensure_database, with_database
from ledger.application import Principal
from ledger.bootstrap import build_ledger
from ledger.config import Settings
from ledger.domain.errors import InvalidToken

RESULTS = Path(__file__).parent / "results" / "revocation.json"
POLL_S = 0.0002


def follower(database_url: str) -> int:
    """Run as the follower: read tokens on stdin, report when each one is refused."""
    ledger = build_ledger(database_url, settings=Settings(pool_size=1))
    try:
        for line in sys.stdin:
            token = line.strip()
            ledger.verify(token)
            print("cached", flush=True)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    ledger.verify(token)
                except InvalidToken:
                    print(time.monotonic_ns(), flush=True)
                    break
                time.sleep(POLL_S)
            else:
                print("timeout", flush=True)
    finally:
        ledger.close()
    return 0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Load:
    """``clients`` threads minting through a ledger of their own (another writer process's
    worth of load) until closed: revocations measured meanwhile are "loaded"."""

    def __init__(self, database_url: str, clients: int) -> None:
        self._ledger = build_ledger(database_url, settings=Settings(pool_size=8))
        self._stop = threading.Event()
        created = self._ledger.create_user("load")
        me = self._ledger.verify(created.token)
        self.writes = 0
        self._threads = [
            threading.Thread(target=self._run, args=(me,), daemon=True) for _ in range(clients)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, me: Principal) -> None:
        while not self._stop.is_set():
            self._ledger.mint_personal_access_token(me, "load", None)
            self.writes += 1

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._ledger.close()


def measure(database_url: str, rounds: int, *, load_clients: int = 0) -> list[float]:
    """Delays (ms) from a revoke's return to another process's refusal, ``rounds`` times,
    while ``load_clients`` threads write."""
    ledger = build_ledger(database_url, settings=Settings(pool_size=2))
    load = Load(database_url, load_clients) if load_clients else None
    delays_ms: list[float] = []
    with subprocess.Popen(
        [sys.executable, "-m", "bench.revocation", "--follow", database_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        try:
            user = ledger.create_user("bench")
            me = ledger.verify(user.token)
            for _ in range(rounds):
                minted = ledger.mint_personal_access_token(me, "watched", None)
                process.stdin.write(minted.token + "\n")
                process.stdin.flush()
                if process.stdout.readline().strip() != "cached":
                    msg = "the follower did not verify the token"
                    raise RuntimeError(msg)
                ledger.revoke_personal_access_token(me, minted.info.id)
                returned = time.monotonic_ns()
                answer = process.stdout.readline().strip()
                if answer == "timeout":
                    msg = "a revocation did not reach the follower within 10 s"
                    raise RuntimeError(msg)
                delays_ms.append((int(answer) - returned) / 1e6)
        finally:
            process.stdin.close()
            process.wait(timeout=30)
            if load is not None:
                load.close()
            ledger.close()
    return delays_ms


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.revocation", description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--load", type=int, default=0, help="writer threads meanwhile")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--follow", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.follow:
        return follower(args.follow)

    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        print(f"starting PostgreSQL under {tmp} ...", file=sys.stderr)
        with embedded_server(Path(tmp)) as server_url:
            ensure_database(server_url, "ledger_revocation")
            url = with_database(server_url, "ledger_revocation")
            migrations.upgrade(url)
            delays = measure(url, args.rounds, load_clients=args.load)

    p50, p99 = percentile(delays, 0.50), percentile(delays, 0.99)
    print(f"revocation seen by another process, {len(delays)} rounds:")
    print(f"  p50 {p50:.2f} ms   p99 {p99:.2f} ms   max {max(delays):.2f} ms")
    print(f"  mean {statistics.mean(delays):.2f} ms   (poll resolution {POLL_S * 1e3:.1f} ms)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "benchmark": "revocation_propagation",
                "timestamp": datetime.now(UTC).isoformat(),
                "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
                "rounds": len(delays),
                "revocation_propagation_p50_ms": round(p50, 3),
                "revocation_propagation_p99_ms": round(p99, 3),
                "revocation_propagation_max_ms": round(max(delays), 3),
                "delays_ms": [round(d, 3) for d in delays],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
