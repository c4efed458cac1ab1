"""A writing process for tests/integration/test_parallel_writes.py.

Usage: python parallel_writer.py DATABASE_URL THREADS MINTS_PER_THREAD
Creates a user, then THREADS threads each mint MINTS_PER_THREAD personal access tokens and revoke
every fourth one. Prints one JSON line: the acknowledged mints and revocations (credential ids).
"""

from __future__ import annotations

import json
import sys
import threading
from uuid import UUID

from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain import TokenKind


def write(ledger: PostgresLedger, threads: int, mints: int) -> tuple[list[UUID], list[UUID]]:
    """Mint ``mints`` tokens in each of ``threads`` threads, revoking every fourth; the ids of
    the tokens minted and of those revoked (every call acknowledged)."""
    created = ledger.create_user("parallel")
    principal = ledger.verify(created.token, {TokenKind.PERSONAL_ACCESS_TOKEN})
    minted: list[UUID] = []
    revoked: list[UUID] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def run(n: int) -> None:
        start.wait()
        mine: list[UUID] = []
        gone: list[UUID] = []
        for i in range(mints):
            token = ledger.mint_personal_access_token(principal, f"p{n}-{i}")
            mine.append(token.info.id)
            if i % 4 == 3:
                ledger.revoke_personal_access_token(principal, token.info.id)
                gone.append(token.info.id)
        with lock:
            minted.extend(mine)
            revoked.extend(gone)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    minted.append(principal.credential_id)  # the initial token
    return minted, revoked


def main() -> int:
    database_url, threads, mints = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ledger = build_ledger(database_url, settings=Settings(pool_size=4, run_projections=False))
    try:
        minted, revoked = write(ledger, threads, mints)
    finally:
        ledger.close()
    print(json.dumps({"minted": [str(i) for i in minted], "revoked": [str(i) for i in revoked]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
