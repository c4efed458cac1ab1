"""The projection-rebuild cell, run in its own process (its own GIL, killable at a deadline).

    python -m bench.rebuild DATABASE_URL [--replay | --audit-verify]

Imports ``ledger.bootstrap.rebuild_all`` lazily (its
signature is ``rebuild_all(database_url: str) -> int``, the number of events processed) and
times one call. If the import fails the cell reports ``skipped``. With ``--replay`` it instead
reads every stored event through the ledger's recorder and decodes it with the ledger's mapper,
10,000 at a time: the ceiling for any projection written in Python on this store. With
``--audit-verify`` it times ``ledger audit verify``'s pass over the store (chains, the log's
Merkle root, the auth table against the events).

Prints one JSON object on stdout: ``{"events": N, "seconds": S}`` or ``{"skipped": reason}``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ledger.bootstrap import build_ledger
from ledger.config import Settings

PAGE = 10_000


def rebuild(database_url: str) -> dict[str, Any]:
    try:
        module = importlib.import_module("ledger.bootstrap")
        rebuild_all: Callable[[str], int] = module.rebuild_all
    except (ImportError, AttributeError) as error:
        return {"skipped": f"ledger.bootstrap.rebuild_all not available ({error})"}
    started = time.perf_counter()
    events = rebuild_all(database_url)
    return {"events": int(events), "seconds": time.perf_counter() - started}


def replay(database_url: str) -> dict[str, Any]:
    ledger = build_ledger(database_url, settings=Settings(pool_size=1))
    try:
        recorder, mapper = ledger.recorder, ledger.mapper
        started = time.perf_counter()
        events = 0
        position = 1
        while True:
            page = recorder.select_notifications(position, PAGE)
            for notification in page:
                mapper.to_domain_event(notification)
            events += len(page)
            if len(page) < PAGE:
                break
            position = page[-1].id + 1
        return {"events": events, "seconds": time.perf_counter() - started}
    finally:
        ledger.close()


def audit_verify(database_url: str) -> dict[str, Any]:
    from ledger.adapters.audit_verify import verify_store  # noqa: PLC0415

    ledger = build_ledger(database_url, settings=Settings(pool_size=1))
    try:
        started = time.perf_counter()
        report = verify_store(database_url, ledger.mapper)
        seconds = time.perf_counter() - started
        if not report.ok:
            return {"skipped": f"the store does not verify: {report.problems[0].to_json()}"}
        return {"events": report.events, "seconds": seconds}
    finally:
        ledger.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rebuild", description=__doc__)
    parser.add_argument("database_url")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--replay", action="store_true", help="read and decode only")
    mode.add_argument("--audit-verify", action="store_true", help="time `ledger audit verify`")
    args = parser.parse_args(argv)
    if args.audit_verify:
        result = audit_verify(args.database_url)
    else:
        result = replay(args.database_url) if args.replay else rebuild(args.database_url)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
