"""``ledger audit export``: every event in log order, with its position and hash, as JSON
Lines or CSV, filtered by workspace and time, streamed through a server-side cursor."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from ledger.bootstrap import PostgresLedger
from ledger.domain.clock import ManualClock
from ledger.domain.merkle import leaf_data, leaf_hash
from ledger.entrypoints.cli.audit_export import CSV_COLUMNS, from_csv_row
from ledger.projections.export import CURSOR_NAME
from tests.integration.test_cli import ledger_cli
from tests.support.principals import new_user


def _history(ledger: PostgresLedger, clock: ManualClock) -> tuple[UUID, datetime]:
    """A workspace with a member, an exchange, a renewal-free lifecycle and a removal; the
    instant between its first and second halves."""
    owner, _ = new_user(ledger, "owner")
    member, _ = new_user(ledger, "member")
    workspace = ledger.create_workspace(owner, "export").id
    ledger.add_member(owner, workspace, member.user_id, "admin")
    install = ledger.mint_install_token(member, workspace)
    ledger.exchange_install_token(install.token, "box-1")
    clock.advance(timedelta(hours=1))
    middle = clock.now()
    ledger.mint_install_token(owner, workspace)
    ledger.remove_member(owner, workspace, member.user_id)
    return workspace, middle


def _export(database_url: str, tmp_path: Path, *args: str) -> str:
    out = tmp_path / f"export-{len(list(tmp_path.iterdir()))}"
    result = ledger_cli(
        "audit", "export", *args, "--out", str(out), env={"LEDGER_DATABASE_URL": database_url}
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return out.read_text("utf-8")


def _common(body: dict[str, Any]) -> dict[str, Any]:
    """An event's JSON with every common field present (``null`` where it has none)."""
    return {c: None for c in CSV_COLUMNS if c not in ("actor_type", "actor_id", "details")} | body


def test_jsonl_export_is_the_feed_in_log_order_with_hashes(
    database_url: str, ledger: PostgresLedger, clock: ManualClock, tmp_path: Path
) -> None:
    workspace, _ = _history(ledger, clock)

    lines = _export(database_url, tmp_path, "--workspace", str(workspace)).splitlines()
    exported = [json.loads(line) for line in lines]

    feed = ledger.audit.events(workspace=workspace, limit=1000).events
    types = [e["type"] for e in exported]
    assert sorted(types) == sorted(
        ["member_added"] * 2 + ["minted"] * 3 + ["consumed", "member_removed", "revoked"]
    )
    positions = [e["position"] for e in exported]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert [{k: v for k, v in e.items() if k != "hash"} for e in exported] == [
        json.loads(json.dumps(f.to_json(), default=str)) for f in feed
    ]
    assert all(e["workspace_id"] == str(workspace) for e in exported)
    assert len({e["hash"] for e in exported}) == len(exported)


def test_each_hash_is_the_leaf_hash_that_checkpoints_commit_to(
    database_url: str, ledger: PostgresLedger, clock: ManualClock, tmp_path: Path
) -> None:
    workspace, _ = _history(ledger, clock)
    exported = [
        json.loads(x)
        for x in _export(database_url, tmp_path, "--workspace", str(workspace)).splitlines()
    ]
    minted = next(e for e in exported if e["type"] == "minted")
    with psycopg.connect(database_url) as conn:
        topic, state = conn.execute(
            "SELECT topic, state FROM ledger_events "
            "WHERE originator_id = %s AND originator_version = 1",
            (minted["credential_id"],),
        ).fetchone() or ("", b"")
    expected = leaf_hash(leaf_data(UUID(minted["credential_id"]), 1, topic, bytes(state)))
    assert minted["hash"] == expected.hex()


def test_csv_export_round_trips_to_the_jsonl_export(
    database_url: str, ledger: PostgresLedger, clock: ManualClock, tmp_path: Path
) -> None:
    workspace, _ = _history(ledger, clock)
    jsonl = [
        json.loads(line)
        for line in _export(database_url, tmp_path, "--workspace", str(workspace)).splitlines()
    ]
    text = _export(database_url, tmp_path, "--workspace", str(workspace), "--format", "csv")

    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    assert [from_csv_row(row) for row in reader] == [_common(e) for e in jsonl]


def test_since_keeps_the_events_at_or_after_the_instant(
    database_url: str, ledger: PostgresLedger, clock: ManualClock, tmp_path: Path
) -> None:
    workspace, middle = _history(ledger, clock)
    args = ("--workspace", str(workspace), "--since", middle.isoformat())
    later = [json.loads(line) for line in _export(database_url, tmp_path, *args).splitlines()]
    assert sorted(e["type"] for e in later) == ["member_removed", "minted", "revoked"]
    assert all(datetime.fromisoformat(e["at"]) >= middle for e in later)


def test_without_a_workspace_every_event_is_exported_in_log_order(
    database_url: str, ledger: PostgresLedger, clock: ManualClock, tmp_path: Path
) -> None:
    first, _ = _history(ledger, clock)
    second, _ = _history(ledger, clock)
    everything = [json.loads(x) for x in _export(database_url, tmp_path).splitlines()]
    positions = [e["position"] for e in everything]
    assert positions == sorted(positions)
    workspaces = {e.get("workspace_id") for e in everything}
    assert {str(first), str(second)} <= workspaces
    assert any(e["kind"] == "personal_access_token" for e in everything if "kind" in e)


def test_bad_filters_are_refused_and_no_file_is_written(database_url: str, tmp_path: Path) -> None:
    env = {"LEDGER_DATABASE_URL": database_url}
    out = tmp_path / "export.jsonl"
    for args in (("--workspace", "nope"), ("--since", "2026-11-30T12:00:00")):
        result = ledger_cli("audit", "export", *args, "--out", str(out), env=env)
        assert result.returncode == 1, result.stderr
        assert "invalid query parameter" in result.stderr
        assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_export_streams_through_a_server_side_cursor_with_flat_memory(
    database_url: str, ledger: PostgresLedger
) -> None:
    owner, _ = new_user(ledger, "owner")
    workspace = ledger.create_workspace(owner, "many").id
    for _ in range(400):
        ledger.mint_install_token(owner, workspace)

    total, events = ledger.audit.export(workspace=workspace, fetch=20)
    assert total == 401
    first = next(events)
    assert first.event.type == "member_added"
    with psycopg.connect(database_url, autocommit=True) as other:
        queries = [
            row[0]
            for row in other.execute(
                "SELECT query FROM pg_stat_activity WHERE datname = current_database()"
            )
        ]
    # The export's session fetches 20 rows at a time from a cursor on the server.
    assert any(f'FETCH FORWARD 20 FROM "{CURSOR_NAME}"' in q for q in queries), queries
    assert sum(1 for _ in events) == 400

    def peak(consume: Any) -> int:
        tracemalloc.start()
        try:
            consume(ledger.audit.export(workspace=workspace, fetch=20)[1])
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def discard(items: Any) -> None:
        for _ in items:
            pass

    streamed, held = peak(discard), peak(list)
    assert streamed * 4 < held, (streamed, held)
