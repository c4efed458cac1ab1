"""``ledger audit export``: every audit event in log order, as JSON Lines or CSV.

Events are streamed from the store (``AuditQueries.export``) and written as they arrive, so
memory stays flat however long the log. A file given with ``--out`` appears whole or not at
all (written beside it, then renamed). A progress bar is drawn on standard error only when it is
a terminal.

CSV has one column per common field (``CSV_COLUMNS``); the type-specific fields are one JSON
object in ``details``, and an empty cell is ``null``.
"""

from __future__ import annotations

import csv
import enum
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any
from uuid import UUID

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ledger.bootstrap import open_ledger
from ledger.domain.errors import InvalidQueryParameter
from ledger.entrypoints.cli.console import command_errors, err
from ledger.projections.export import ExportedEvent
from ledger.projections.queries import parse_instant


class ExportFormat(enum.StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


CSV_COLUMNS = (
    "position",
    "hash",
    "credential_id",
    "kind",
    "type",
    "at",
    "actor_type",
    "actor_id",
    "workspace_id",
    "user_id",
    "details",
)
"""The CSV header; ``details`` holds the type-specific fields as one JSON object."""


def csv_row(body: dict[str, Any]) -> list[str]:
    """An exported event's JSON as a CSV row (``CSV_COLUMNS``)."""
    rest = dict(body)
    actor = rest.pop("actor")
    common = {name: rest.pop(name, None) for name in CSV_COLUMNS if name in body}
    common |= {"actor_type": actor["type"], "actor_id": actor["id"]}
    common["details"] = json.dumps(rest, sort_keys=True, default=str)
    return ["" if common.get(c) is None else str(common[c]) for c in CSV_COLUMNS]


def from_csv_row(row: dict[str, str]) -> dict[str, Any]:
    """The event's JSON back from a CSV row (what ``csv_row`` wrote)."""
    body: dict[str, Any] = {c: (row[c] or None) for c in CSV_COLUMNS if c != "details"}
    body["position"] = int(row["position"])
    body["actor"] = {"type": body.pop("actor_type"), "id": body.pop("actor_id")}
    details: dict[str, Any] = json.loads(row["details"])
    return body | details


def parse_uuid(value: str | None, field: str) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        msg = f"{field} is not a UUID"
        raise InvalidQueryParameter(msg) from None


def write_events(events: Iterator[ExportedEvent], stream: IO[str], fmt: ExportFormat) -> int:
    """Write ``events`` to ``stream`` in ``fmt``; returns how many."""
    written = 0
    if fmt is ExportFormat.CSV:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for item in events:
            writer.writerow(csv_row(item.to_json()))
            written += 1
    else:
        for item in events:
            stream.write(json.dumps(item.to_json(), ensure_ascii=False, default=str) + "\n")
            written += 1
    return written


def _progress(events: Iterator[ExportedEvent], total: int) -> Iterator[ExportedEvent]:
    """``events``, drawing a bar on standard error while they pass (a terminal only)."""
    with Progress(
        TextColumn("exporting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
        transient=False,
    ) as progress:
        task = progress.add_task("events", total=total)
        for item in events:
            yield item
            progress.advance(task)


def export(
    workspace: Annotated[str | None, typer.Option(help="only this workspace's events")] = None,
    since: Annotated[str | None, typer.Option(help="only events at or after (RFC 3339)")] = None,
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="jsonl (one JSON object a line) or csv")
    ] = ExportFormat.JSONL,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="file to write (default: standard output)")
    ] = None,
) -> None:
    """Every audit event in log order, each with its position and its stored event's hash."""
    with command_errors(as_json=False) as settings:
        ws = parse_uuid(workspace, "workspace")
        start = None if since is None else parse_instant(since, "since")
        with open_ledger(settings) as ledger:
            total, events = ledger.audit.export(workspace=ws, since=start)
            shown = _progress(events, total)
            if out_file is None:
                write_events(shown, sys.stdout, fmt)
                sys.stdout.flush()
                return
            partial = out_file.with_name(f".{out_file.name}.{os.getpid()}.partial")
            try:
                with partial.open("w", encoding="utf-8", newline="") as stream:
                    written = write_events(shown, stream, fmt)
                partial.replace(out_file)
            finally:
                partial.unlink(missing_ok=True)
    err.print(f"{written} events written to {out_file}")
