"""A second process for tests/integration/test_verifier.py: verifies one token until refused.

Usage: python verify_follower.py DATABASE_URL TOKEN
Prints "cached" once the token verifies (so its cache holds it), then "refused" as soon as the
verifier refuses it, or "still accepted" after 30 s.
"""

from __future__ import annotations

import sys
import time

from ledger.bootstrap import build_ledger
from ledger.config import Settings
from ledger.domain.errors import InvalidToken


def main() -> int:
    database_url, token = sys.argv[1], sys.argv[2]
    ledger = build_ledger(database_url, settings=Settings(pool_size=1))
    try:
        ledger.verify(token)
        print("cached", flush=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                ledger.verify(token)
            except InvalidToken:
                print("refused", flush=True)
                return 0
            time.sleep(0.001)
        print("still accepted", flush=True)
        return 1
    finally:
        ledger.close()


if __name__ == "__main__":
    sys.exit(main())
