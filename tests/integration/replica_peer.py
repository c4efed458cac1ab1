"""A second ledger process for tests/integration/test_replicas.py, driven over stdin/stdout.

Usage: python replica_peer.py PRIMARY_URL REPLICA_URL

It builds a ledger that reads from the replica (``LEDGER_READ_DATABASE_URLS``), then answers one
JSON line per JSON line it reads:

- ``{"op": "verify", "token": T}`` → ``{"ok": true}`` or ``{"ok": false}`` (refused);
- ``{"op": "required", "id": ID}`` → ``{"lsn": N}``: the WAL position this process knows the
  credential last changed at (0 until it heard of a change);
- ``{"op": "audit", "token": T, "workspace": W}`` → ``{"types": [...]}``: the workspace's feed,
  read by the holder of ``T``;
- ``{"op": "report"}`` → reads by source and skips by reason, and the unknown-token counters.

It prints ``{"ready": true}`` first, and exits at the end of its input.
"""

from __future__ import annotations

import json
import sys
from typing import Any
from uuid import UUID

from ledger.bootstrap import build_ledger
from ledger.config import Settings
from ledger.domain.errors import InvalidToken


def main() -> int:
    primary, replica = sys.argv[1], sys.argv[2]
    settings = Settings(pool_size=2, read_database_urls=(replica,), replica_max_lag_ms=30_000)
    ledger = build_ledger(primary, settings=settings)
    try:
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            request = json.loads(line)
            answer: dict[str, Any]
            op = request["op"]
            if op == "verify":
                try:
                    ledger.verify(request["token"])
                    answer = {"ok": True}
                except InvalidToken:
                    answer = {"ok": False}
            elif op == "required":
                answer = {"lsn": ledger.written.required(UUID(request["id"]))}
            elif op == "audit":
                principal = ledger.verify(request["token"])
                page = ledger.workspace_audit(principal, UUID(request["workspace"]), limit=1000)
                answer = {"types": [event.type for event in page.events]}
            else:
                unknown = ledger.unknown_token_stats()
                answer = {
                    "replica_reads": sum(r.reads for r in ledger.replica_report()),
                    "primary_reads": ledger.primary_reads(),
                    "skips": [r.skips for r in ledger.replica_report()],
                    "asked_primary": unknown.asked_primary,
                    "over_budget": unknown.over_budget,
                }
            print(json.dumps(answer), flush=True)
    finally:
        ledger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
