"""``ledger audit checkpoint``, ``verify`` and ``repair-auth``: tamper evidence (ADR 0019)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ledger.adapters.audit_verify import (
    NamedCheckpoint,
    VerifyReport,
    take_checkpoint,
    trusted_key,
    verify_store,
)
from ledger.adapters.auth_repair import repair_auth
from ledger.adapters.signing import key_path
from ledger.bootstrap import open_ledger, prepared_database, stored_event_mapper
from ledger.domain.checkpoint import InvalidCheckpoint, parse_checkpoint
from ledger.domain.errors import LedgerError
from ledger.domain.tamper import Problem
from ledger.entrypoints.cli.console import (
    EXIT_REFUSED,
    command_errors,
    fail,
    load_settings,
    out,
    print_error,
    print_json,
)

JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


def write_atomically(path: Path, text: str) -> None:
    """``text`` in ``path``, whole or not at all (a reader never sees half a checkpoint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def checkpoint(
    out_file: Annotated[Path, typer.Option("--out", help="where to write the checkpoint")],
    as_json: JsonOption = False,
) -> None:
    """Sign the event log's length and Merkle root now, and write them to a file."""
    with command_errors(as_json=as_json) as settings, open_ledger(settings) as ledger:
        signed = take_checkpoint(ledger.database_url, key_path(settings), at=ledger.clock.now())
    write_atomically(out_file, signed.dumps())
    if as_json:
        print_json(signed.to_json())
    else:
        out.print(
            f"checkpoint of {signed.log_size} events at {signed.time}, root "
            f"{signed.root_hash.hex()}, written to {out_file}"
        )


def _load(files: list[Path], *, as_json: bool) -> list[NamedCheckpoint]:
    named = []
    for file in files:
        try:
            named.append(NamedCheckpoint(str(file), parse_checkpoint(file.read_text("utf-8"))))
        except (OSError, UnicodeDecodeError, InvalidCheckpoint) as error:
            # Refused, not a usage error: a checkpoint that does not parse may be evidence too.
            detail = f"--checkpoint {file}: {error}"
            print_error("invalid checkpoint", detail, as_json=as_json)
            raise typer.Exit(EXIT_REFUSED) from None
    return named


def verify(
    checkpoint_files: Annotated[
        list[Path] | None,
        typer.Option("--checkpoint", help="a checkpoint to check the log against (repeatable)"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check every stream's chain, the log against each checkpoint, and the auth table."""
    settings = load_settings(as_json=as_json)
    named = _load(checkpoint_files or [], as_json=as_json)
    try:
        # No ledger is opened: verify's helper process is forked from a process with one
        # thread only (the progress bar refreshes from the callback, not from a thread).
        with prepared_database(settings) as url:
            mapper = stored_event_mapper()
            trusted = trusted_key(key_path(settings))
            if as_json or not out.is_terminal:
                report = verify_store(url, mapper, named, trusted=trusted)
            else:
                with Progress(
                    TextColumn("verifying"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=out,
                    transient=True,
                    auto_refresh=False,
                ) as progress:
                    task = progress.add_task("verify", total=None)
                    report = verify_store(
                        url,
                        mapper,
                        named,
                        trusted=trusted,
                        progress=lambda done, total: progress.update(
                            task, completed=done, total=total, refresh=True
                        ),
                    )
    except LedgerError as error:
        raise fail(error, as_json=as_json) from None
    if as_json:
        print_json(report.to_json())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(EXIT_REFUSED)


def _print_report(report: VerifyReport) -> None:
    summary = (
        f"{report.events} events in {report.streams} streams, {report.credentials} credentials, "
        f"{report.witnessed} witnessed, {report.checkpoints} checkpoint(s)"
    )
    if report.ok:
        out.print(f"ok: {summary}")
        return
    out.print(f"[red]TAMPERED[/red]: {len(report.problems)} problem(s) in {summary}")
    for problem in report.problems:
        out.print(
            f"  {problem.problem.value:<18} {_where(problem)}: {problem.detail}", soft_wrap=True
        )


def _where(problem: Problem) -> str:
    parts = []
    if problem.position is not None:
        parts.append(f"#{problem.position}")
    if problem.credential_id is not None:
        parts.append(f"credential {problem.credential_id}")
    elif problem.stream_id is not None:
        parts.append(f"stream {problem.stream_id}")
    if problem.stream_version is not None:
        parts.append(f"v{problem.stream_version}")
    if problem.checkpoint is not None:
        parts.append(f"checkpoint {problem.checkpoint}")
    return " ".join(parts)


def repair(as_json: JsonOption = False) -> None:
    """Re-derive the auth lookup table's rows that disagree with the events (reports each)."""
    with command_errors(as_json=as_json) as settings, prepared_database(settings) as url:
        report = repair_auth(url, stored_event_mapper())
    if as_json:
        print_json(report.to_json())
        return
    for problem in report.problems:
        out.print(f"{problem.credential_id}: {problem.detail}", soft_wrap=True)
    out.print(f"rewrote {len(report.rewritten)} row(s), removed {len(report.removed)}")
    for credential_id in report.kept:
        out.print(f"kept {credential_id}: its events were tampered with", soft_wrap=True)
