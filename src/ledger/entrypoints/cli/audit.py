"""``ledger projections …`` (operators) and ``ledger audit …`` (auditors).

Both read the store directly. Audit commands print a table by default and JSON with ``--json``;
they first bring the projections up to the head of the event log, so they reflect every command
that returned before they started.
"""

from __future__ import annotations

import dataclasses
import signal
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ledger.application import paging
from ledger.application.audit import MAX_LIMIT
from ledger.application.views import ExpiringCredential
from ledger.bootstrap import open_ledger
from ledger.domain.errors import InvalidQueryParameter
from ledger.entrypoints.cli import audit_export, audit_report, tamper
from ledger.entrypoints.cli.console import command_errors, out, print_json
from ledger.projections import NAMES, AuditEvent, CredentialState
from ledger.projections.queries import parse_instant
from ledger.projections.runner import HorizonStatus

projections_app = typer.Typer(help="Projections (operator commands).", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail (auditor commands).", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


def _uuid(value: str | None, field: str) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        msg = f"{field} is not a UUID"
        raise InvalidQueryParameter(msg) from None


def _instant(value: str | None, field: str) -> datetime | None:
    return None if value is None else parse_instant(value, field)


# ------------------------------------------------------------------------------ projections


@projections_app.command("run")
def projections_run() -> None:
    """Follow the event store and keep every projection current (until SIGTERM / Ctrl-C)."""
    with command_errors(as_json=False) as settings, open_ledger(settings) as ledger:
        runner = ledger.projections

        def stop(_signum: int, _frame: FrameType | None) -> None:
            runner.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        out.print(f"following the event store for: {', '.join(NAMES)}")
        runner.run_forever()
    out.print("projection runner stopped")


@projections_app.command("status")
def projections_status(as_json: JsonOption = False) -> None:
    """Each projection's position and lag (events and seconds) behind the event store, and how
    many events it projected in a safe form or skipped (`ledger projections errors` lists
    them)."""
    with command_errors(as_json=as_json) as settings, open_ledger(settings) as ledger:
        rows = ledger.projections.status()
        horizon = ledger.projections.horizon()
    if as_json:
        print_json(
            [
                {
                    "name": s.name,
                    "position": s.position,
                    "head": s.head,
                    "lag_events": s.lag_events,
                    "lag_seconds": s.lag_seconds,
                    "skipped": s.skipped,
                    "sanitized": s.sanitized,
                    # the same for every projection: what holds all of them back
                    "horizon": dataclasses.asdict(horizon),
                }
                for s in rows
            ]
        )
        return
    table = Table(
        "projection", "position", "head", "lag (events)", "lag (seconds)", "skipped", "sanitized"
    )
    for s in rows:
        table.add_row(
            s.name,
            str(s.position),
            str(s.head),
            str(s.lag_events),
            f"{s.lag_seconds:.1f}",
            str(s.skipped),
            str(s.sanitized),
        )
    out.print(table)
    if any(s.skipped or s.sanitized for s in rows):
        out.print("events not projected as stored: see `ledger projections errors`")
    out.print(horizon_line(horizon))


@projections_app.command("errors")
def projections_errors(
    name: Annotated[
        str | None, typer.Argument(help=f"one projection ({', '.join(NAMES)}); default all")
    ] = None,
    after: Annotated[int, typer.Option(help="only events after this position")] = 0,
    limit: Annotated[int, typer.Option(help="most rows (1..1000)")] = 100,
    as_json: JsonOption = False,
) -> None:
    """The events the projections projected in a safe form or skipped, by position."""
    with command_errors(as_json=as_json) as settings:
        if not 1 <= limit <= MAX_LIMIT:
            msg = f"limit must be 1..{MAX_LIMIT}"
            raise InvalidQueryParameter(msg)
        if not 0 <= after < 2**63:
            msg = "after must be a position (0 or more)"
            raise InvalidQueryParameter(msg)
        with open_ledger(settings) as ledger:
            errors = ledger.projections.errors(name, after=after, limit=limit)
    if as_json:
        print_json([e.to_json() for e in errors])
        return
    table = _table("projection", "#", "stream", "topic", "problem", "projected", "detail")
    for e in errors:
        _add_row(
            table,
            e.projection,
            str(e.position),
            f"{e.stream_id} v{e.stream_version}" if e.stream_id else "",
            e.topic,
            e.problem,
            "safe form" if e.projected else "skipped",
            e.detail,
        )
    out.print(table)


def horizon_line(horizon: HorizonStatus) -> str:
    """The horizon's state in one line: events readers cannot read yet, and who holds them."""
    line = f"log horizon: {horizon.behind_events} committed events not yet readable"
    if horizon.holder_pid is not None:
        age = horizon.holder_age_seconds or 0.0
        line += (
            f"; oldest open transaction: backend {horizon.holder_pid} "
            f"({horizon.holder_application or '?'} on {horizon.holder_database or '?'}, "
            f"{horizon.holder_state or '?'}, {age:.1f} s)"
        )
    return line


@projections_app.command("rebuild")
def projections_rebuild(
    name: Annotated[
        str | None, typer.Argument(help=f"one projection ({', '.join(NAMES)}); default all")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Rebuild projections from the event store, from scratch."""
    with command_errors(as_json=as_json) as settings, open_ledger(settings) as ledger:
        names = ledger.projections.names(None if name is None else [name])
        if as_json:
            reached = ledger.projections.rebuild(names)
        else:
            with Progress(
                TextColumn("rebuilding {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=out,
            ) as progress:
                task = progress.add_task(", ".join(names), total=None)

                def advance(position: int, target: int) -> None:
                    progress.update(task, completed=position, total=target)

                reached = ledger.projections.rebuild(names, progress=advance)
    if as_json:
        print_json({"rebuilt": names, "position": reached})
    else:
        out.print(f"rebuilt {', '.join(names)} up to event {reached}")


# ----------------------------------------------------------------------------------- audit


def _table(*columns: str) -> Table:
    table = Table()
    for column in columns:
        table.add_column(column, overflow="fold")  # ids and instants whole, never cut short
    return table


def _add_row(table: Table, *cells: str) -> None:
    """A row of stored values, shown as they are: never read as Rich markup or emoji codes (a
    name such as ``[/]`` would otherwise fail the whole table)."""
    table.add_row(*(Text(cell) for cell in cells))


def _time(value: datetime | None, empty: str = "") -> str:
    return value.isoformat(timespec="seconds") if value else empty


def _events_table(events: list[AuditEvent], *, subject: bool = True) -> Table:
    table = _table(
        "#", "at", "type", *(("credential / user",) if subject else ()), "actor", "details"
    )
    for e in events:
        who = (
            f"{e.kind} {e.credential_id}"
            if e.credential_id
            else f"{'user' if e.type == 'user_created' else 'member'} {e.user_id}"
        )
        details = "\n".join(f"{k}={v}" for k, v in e.data.items() if v is not None)
        _add_row(
            table,
            str(e.position),
            _time(e.at),
            e.type,
            *((who,) if subject else ()),
            f"{e.actor.type} {e.actor.id}",
            details,
        )
    return table


def _states_table(states: list[CredentialState]) -> Table:
    table = _table("id", "kind", "prefix", "name / daemon", "created", "expires")
    for s in states:
        _add_row(
            table,
            str(s.credential_id),
            s.kind,
            s.token_prefix,
            s.name or s.daemon_id or "",
            _time(s.created_at),
            _time(s.expires_at, "never"),
        )
    return table


def _state_fields(state: CredentialState) -> Table:
    table = _table("field", "value")
    for key, value in state.to_json().items():
        _add_row(table, key, "" if value is None else str(value))
    return table


@audit_app.command("history")
def audit_history(
    credential_id: Annotated[str, typer.Argument(help="the credential's id")],
    as_json: JsonOption = False,
) -> None:
    """A credential's current state and every event of it, oldest first."""
    with command_errors(as_json=as_json) as settings:
        cid = _uuid(credential_id, "credential id")
        assert cid is not None
        with open_ledger(settings) as ledger:
            history = ledger.audit.history(cid)
    if as_json:
        print_json(history.to_json())
        return
    out.print(_state_fields(history.credential))
    out.print(_events_table(history.events, subject=False))


@audit_app.command("events")
def audit_events(  # noqa: PLR0917 - one option per filter of the contract
    workspace: Annotated[str | None, typer.Option(help="workspace id")] = None,
    user: Annotated[str | None, typer.Option(help="user id")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="event type")] = None,
    since: Annotated[str | None, typer.Option(help="RFC 3339, inclusive")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339, exclusive")] = None,
    cursor: Annotated[str | None, typer.Option(help="resume after this position")] = None,
    limit: Annotated[int, typer.Option(help="most events (1..1000)")] = 100,
    as_json: JsonOption = False,
) -> None:
    """The audit feed, oldest first."""
    with command_errors(as_json=as_json) as settings:
        ws, uid = _uuid(workspace, "workspace"), _uuid(user, "user")
        start, end = _instant(since, "since"), _instant(until, "until")
        with open_ledger(settings) as ledger:
            page = ledger.audit.events(
                workspace=ws,
                user=uid,
                type=type_,
                since=start,
                until=end,
                cursor=cursor,
                limit=limit,
            )
    if as_json:
        print_json(page.to_json())
        return
    out.print(_events_table(page.events))
    if page.next_cursor:
        out.print(f"more: --cursor {page.next_cursor}")


@audit_app.command("valid-at")
def audit_valid_at(
    at: Annotated[str, typer.Argument(help="the instant, RFC 3339")],
    workspace: Annotated[str | None, typer.Option(help="workspace id")] = None,
    user: Annotated[str | None, typer.Option(help="user id")] = None,
    as_json: JsonOption = False,
) -> None:
    """The credentials usable at an instant, each with its state as of then."""
    with command_errors(as_json=as_json) as settings:
        instant = parse_instant(at, "valid_at")
        ws, uid = _uuid(workspace, "workspace"), _uuid(user, "user")
        with open_ledger(settings) as ledger:
            states = ledger.audit.valid_at(instant, workspace=ws, user=uid)
    if as_json:
        print_json([s.to_json() for s in states])
        return
    out.print(_states_table(states))


@audit_app.command("expiring")
def audit_expiring(
    within_days: Annotated[
        int, typer.Option("--within-days", help="expiring after now and at most N days from now")
    ],
    workspace: Annotated[str | None, typer.Option(help="workspace id")] = None,
    as_json: JsonOption = False,
) -> None:
    """Credentials about to expire (neither revoked nor consumed), soonest first, with their
    holders: the user of a personal access token, the issuer of an install or daemon token."""
    with command_errors(as_json=as_json) as settings:
        paging.check_days(within_days)
        ws = _uuid(workspace, "workspace")
        with open_ledger(settings) as ledger:
            found = ledger.expiring_credentials(within_days, ws)
    if as_json:
        print_json([_expiring_json(e) for e in found])
        return
    table = _table("id", "kind", "prefix", "name / daemon", "expires", "holder", "workspace")
    for e in found:
        _add_row(
            table,
            str(e.id),
            e.kind,
            e.token_prefix,
            e.name or e.daemon_id or "",
            _time(e.expires_at),
            f"{e.holder_name or '?'} ({e.holder_id})" if e.holder_id else "",
            str(e.workspace_id or ""),
        )
    out.print(table)


def _expiring_json(e: ExpiringCredential) -> dict[str, Any]:
    return {
        "id": str(e.id),
        "kind": e.kind,
        "token_prefix": e.token_prefix,
        "name": e.name,
        "workspace_id": str(e.workspace_id) if e.workspace_id else None,
        "daemon_id": e.daemon_id,
        "expires_at": e.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "holder": {"user_id": str(e.holder_id), "name": e.holder_name} if e.holder_id else None,
    }


# Tamper evidence (ADR 0019): the commands live in their own module.
audit_app.command("checkpoint")(tamper.checkpoint)
audit_app.command("verify")(tamper.verify)
audit_app.command("repair-auth")(tamper.repair)

# Export and report for auditors: their own modules too.
audit_app.command("export")(audit_export.export)
audit_app.command("report")(audit_report.report)
