"""The projection-rebuild cell, run in its own process (its own GIL, killable at a deadline).

    python -m bench.rebuild DATABASE_URL [--replay | --audit-verify]

Imports ``ledger.bootstrap.rebuild_all`` lazily (its
signature is ``rebuild_all(database_url: str) -> int``, the number of events processed) and
times one call. If the import fails the cell reports ``skipped``. With ``--replay`` it instead
reads every stored event through the ledger's recorder and decodes it with the ledger's mapper,
10,000 at a time: the ceiling for any projection written in Python on this store. With
``--audit-verify`` it takes a checkpoint (untimed), then times ``ledger audit verify`` against
it (the witnessed leaves against the log, the checkpoint, every chain, the auth table against
the events).

Prints one JSON object on stdout: ``{"events": N, "seconds": S}`` or ``{"skipped": reason}``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

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
    """``ledger audit verify --checkpoint FILE`` as an auditor runs it: a checkpoint is taken
    first (untimed: it witnesses every event), then verify is timed against it, from a process
    with one thread and no ledger open (as the CLI runs it: its helper process is forked)."""
    from ledger.adapters.audit_verify import (  # noqa: PLC0415
        NamedCheckpoint,
        take_checkpoint,
        trusted_key,
        verify_store,
    )
    from ledger.bootstrap import stored_event_mapper  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as scratch:
        key = Path(scratch) / "signing.key"
        checkpoint = take_checkpoint(database_url, key, at=datetime.now(UTC))
        # The checkpoint just wrote a leaf per event: settle them as the suite settles any bulk
        # load (autovacuum would within a minute), so verify does not pay for the load.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE) ledger_log_leaves")
            conn.execute("CHECKPOINT")
        named = [NamedCheckpoint("bench", checkpoint)]
        mapper = stored_event_mapper()
        started = time.perf_counter()
        report = verify_store(database_url, mapper, named, trusted=trusted_key(key))
        seconds = time.perf_counter() - started
    if not report.ok:
        return {"skipped": f"the store does not verify: {report.problems[0].to_json()}"}
    return {"events": report.events, "seconds": seconds, "witnessed": report.witnessed}


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
