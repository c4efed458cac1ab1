"""Bytes on disk per event, for capacity planning (docs/capacity.md).

Runs a realistic mix through the ledger's Python API on a scratch embedded PostgreSQL: users
with personal access tokens, workspaces whose admins mint install tokens that daemons exchange,
renewals, revocations and member removals; then catches the projections up, runs ``VACUUM``
and reports, for each table the ledger owns, its total size (heap, TOAST and indexes:
``pg_total_relation_size``) and bytes per event, plus the WAL the writes produced. Then it
times the ``last_used_at`` flush (one statement advancing every credential's value, as the
usage recorder sends) and the WAL it writes per row.

    python -m bench.storage [--users 200] [--output bench/results/storage.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from ledger.adapters import migrations
from ledger.adapters.postgres import embedded_server, ensure_database, with_database
from ledger.bootstrap import build_ledger
from ledger.config import Settings

RESULTS = Path(__file__).parent / "results" / "storage.json"
TABLES = (
    "ledger_events",
    "ledger_credentials",
    "ledger_audit",
    "ledger_credentials_view",
    "ledger_log_leaves",
)


def workload(url: str, users: int) -> None:
    """Per user: a workspace with 5 daemons (install token + exchange each), 2 personal access
    tokens (one renewed-looking mint, one revoked), one daemon token revoked; every fifth user
    is added to another's workspace and removed again (the cascade)."""
    ledger = build_ledger(url, Settings(pool_size=4))
    try:
        principals = []
        for n in range(users):
            created = ledger.create_user(f"user {n}")
            me = ledger.verify(created.token)
            principals.append((created.user_id, me))
            workspace = ledger.create_workspace(me, f"workspace {n}")
            daemons = []
            for d in range(5):
                install = ledger.mint_install_token(me, workspace.id)
                daemons.append(ledger.exchange_install_token(install.token, f"daemon-{n}-{d}"))
            ledger.mint_personal_access_token(me, "laptop", 90)
            spare = ledger.mint_personal_access_token(me, "ci", 30)
            ledger.revoke_personal_access_token(me, spare.info.id)
            first = ledger.verify(daemons[0].token)
            ledger.revoke_daemon_token(me, workspace.id, first.credential_id)
            if n % 5 == 4:
                other_id, _ = principals[n - 1]
                ledger.add_member(me, workspace.id, other_id, "admin")
                ledger.remove_member(me, workspace.id, other_id)
        ledger.projections.catch_up()
    finally:
        ledger.close()


def usage_flush(url: str, rounds: int = 5) -> dict[str, float]:
    """Time ``record_last_used`` over every credential, ``rounds`` times (each a later time)."""
    ledger = build_ledger(url, Settings(pool_size=2))
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            ids = [row[0] for row in conn.execute("SELECT credential_id FROM ledger_credentials")]
            start_lsn = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
            assert start_lsn is not None
            began = time.perf_counter()
            for n in range(rounds):
                at = datetime.now(UTC) + timedelta(minutes=n + 1)
                ledger.credentials.record_last_used(dict.fromkeys(ids, at))
            seconds = time.perf_counter() - began
            wal = conn.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)", start_lsn
            ).fetchone()
            assert wal is not None
    finally:
        ledger.close()
    rows = len(ids) * rounds
    return {
        "usage_rows": rows,
        "usage_rows_per_s": round(rows / seconds, 1),
        "usage_wal_bytes_per_row": round(float(wal[0]) / rows, 1),
    }


def measure(url: str, wal_before: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        events = conn.execute("SELECT count(*) FROM ledger_events").fetchone()
        assert events is not None
        count = int(events[0])
        wal = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)", (wal_before,)
        ).fetchone()
        assert wal is not None
        sizes = {}
        for table in TABLES:
            row = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (table,)).fetchone()
            assert row is not None
            sizes[table] = int(row[0])
        heap = conn.execute(
            "SELECT pg_relation_size('ledger_events'), avg(pg_column_size(e.*)) "
            "FROM ledger_events AS e"
        ).fetchone()
        assert heap is not None
    return {
        "events": count,
        "bytes_per_event": {t: round(s / count, 1) for t, s in sizes.items()},
        "total_bytes_per_event": round(sum(sizes.values()) / count, 1),
        "events_heap_bytes_per_event": round(int(heap[0]) / count, 1),
        "events_avg_row_bytes": round(float(heap[1]), 1),
        "wal_bytes_per_event": round(float(wal[0]) / count, 1),
        "table_bytes": sizes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="ledger-storage-") as scratch,
        embedded_server(Path(scratch)) as server,
    ):
        ensure_database(server, "storage")
        url = with_database(server, "storage")
        migrations.upgrade(url)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
            assert row is not None
            wal_before = str(row[0])
        workload(url, args.users)
        result = measure(url, wal_before)
        result.update(usage_flush(url))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
