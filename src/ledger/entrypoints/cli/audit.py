"""``ledger projections …`` (operators) and ``ledger audit …`` (auditors).

Both read the store directly. Audit commands print a table by default and JSON with ``--json``;
they first bring the projections up to the head of the event log, so they reflect every command
that returned before they started.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
from datetime import datetime
from types import FrameType
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ledger.application import paging
from ledger.application.audit import MAX_LIMIT
from ledger.application.timestamps import compact_utc, utc_text
from ledger.application.views import ExpiringCredential
from ledger.bootstrap import open_ledger
from ledger.domain import TokenKind
from ledger.domain.errors import InvalidQueryParameter, UnknownProjection
from ledger.entrypoints.cli import audit_export, audit_report, tamper
from ledger.entrypoints.cli.console import BadValue, command_errors, flag, out, print_json
from ledger.projections import EVENT_TYPES, NAMES, AuditEvent, CredentialState
from ledger.projections.queries import parse_cursor, parse_instant
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


def _limit(value: int) -> None:
    if not 1 <= value <= MAX_LIMIT:
        msg = f"limit must be a whole number in 1..{MAX_LIMIT}"
        raise InvalidQueryParameter(msg)


def _event_type(value: str | None) -> None:
    if value is not None and value not in EVENT_TYPES:
        msg = f"type must be one of {', '.join(EVENT_TYPES)}"
        raise InvalidQueryParameter(msg)


def _projection(name: str | None) -> None:
    if name is not None and name not in NAMES:
        msg = f"name must be one of {', '.join(NAMES)}"
        raise UnknownProjection(msg)


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
    table = _table(
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
    out.print(horizon_line(horizon), markup=False, highlight=False)  # names from other clients


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
        with flag("NAME", "name"):
            _projection(name)
        with flag("--limit"):
            _limit(limit)
        if not 0 <= after < 2**63:
            msg = "--after must be a position (0 or more)"
            raise BadValue(InvalidQueryParameter.code, msg)
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
            f"{short_id(e.stream_id)} v{e.stream_version}" if e.stream_id else "",
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
    with command_errors(as_json=as_json) as settings, contextlib.ExitStack() as stack:
        with flag("NAME", "name"):
            _projection(name)
        ledger = stack.enter_context(open_ledger(settings))
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


# Tables fit 80 columns: ids shortened to their first 8 hex digits on a narrow terminal (`--json`
# has them whole), instants to the minute; a column that must shrink folds its text, and times,
# ids and event types are never split across lines.

_KINDS: dict[str, str] = {
    TokenKind.PERSONAL_ACCESS_TOKEN: "pat",
    TokenKind.DAEMON_TOKEN: "daemon",
    TokenKind.INSTALL_TOKEN: "install",
}
WIDE = 120
"""The terminal width from which tables show whole ids."""
_UUID_TEXT = 36


def _table(*columns: str, keep: tuple[str, ...] = ()) -> Table:
    """A table whose ``keep`` columns are never wrapped; the others fold what does not fit.
    Columns are two spaces apart, with no borders (as ``gh`` prints its lists)."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=column in keep, overflow="fold")
    return table


def _add_row(table: Table, *cells: str) -> None:
    """A row of stored values, shown as they are: never read as Rich markup or emoji codes (a
    name such as ``[/]`` would otherwise fail the whole table)."""
    table.add_row(*(Text(cell) for cell in cells))


def short_id(value: UUID | str | None) -> str:
    """An id as a table shows it: whole on a wide terminal, else a UUID's first 8 hex digits
    (anything else, such as a system actor's name, whole)."""
    if value is None:
        return ""
    text = str(value)
    is_uuid = len(text) == _UUID_TEXT and text.count("-") == 4
    return text[:8] if is_uuid and out.width < WIDE else text


def _time(value: datetime | None, empty: str = "") -> str:
    return compact_utc(value) if value else empty


def _kind(kind: str | None) -> str:
    return _KINDS.get(kind, kind) if kind else ""


def _detail(key: str, value: Any) -> str:
    """One type-specific field of an event: ids short, instants compact and on a line of
    their own (so that a narrow column never splits one)."""
    text = str(value)
    if len(text) == _UUID_TEXT:
        with contextlib.suppress(ValueError):
            return f"{key}: {short_id(UUID(text))}"
    if text.endswith("Z"):
        with contextlib.suppress(ValueError):
            return f"{key}:\n{compact_utc(datetime.fromisoformat(text))}"
    return f"{key}: {text}"


def _events_table(events: list[AuditEvent], *, subject: bool = True) -> Table:
    table = _table("#", "at", "event", "actor", "details", keep=("#", "at", "event"))
    for e in events:
        if not subject:
            what = e.type
        elif e.credential_id:
            what = f"{e.type}\n{_kind(e.kind)} {short_id(e.credential_id)}"
        else:
            holder = "user" if e.type == "user_created" else "member"
            what = f"{e.type}\n{holder} {short_id(e.user_id)}"
        details = "\n".join(_detail(k, v) for k, v in e.data.items() if v is not None)
        _add_row(
            table,
            str(e.position),
            _time(e.at),
            what,
            f"{e.actor.type}\n{short_id(e.actor.id)}",
            details,
        )
    return table


def _states_table(states: list[CredentialState]) -> Table:
    table = _table(
        "id",
        "kind",
        "prefix",
        "name",
        "created",
        "expires",
        keep=("id", "kind", "prefix", "created", "expires"),
    )
    for s in states:
        _add_row(
            table,
            short_id(s.credential_id),
            _kind(s.kind),
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
        with flag("CREDENTIAL_ID", "credential id"):
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
        with flag("--workspace"):
            ws = _uuid(workspace, "workspace")
        with flag("--user"):
            uid = _uuid(user, "user")
        with flag("--since"):
            start = _instant(since, "since")
        with flag("--until"):
            end = _instant(until, "until")
        with flag("--type"):
            _event_type(type_)
        with flag("--cursor"):
            parse_cursor(cursor)
        with flag("--limit"):
            _limit(limit)
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
    at: Annotated[str, typer.Argument(metavar="T", help="the instant, RFC 3339")],
    workspace: Annotated[str | None, typer.Option(help="workspace id")] = None,
    user: Annotated[str | None, typer.Option(help="user id")] = None,
    as_json: JsonOption = False,
) -> None:
    """The credentials usable at an instant, each with its state as of then (neither filter:
    every credential)."""
    with command_errors(as_json=as_json) as settings:
        with flag("T", "valid_at"):
            instant = parse_instant(at, "valid_at")
        with flag("--workspace"):
            ws = _uuid(workspace, "workspace")
        with flag("--user"):
            uid = _uuid(user, "user")
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
        with flag("--within-days", "the number of days"):
            paging.check_days(within_days)
        with flag("--workspace"):
            ws = _uuid(workspace, "workspace")
        with open_ledger(settings) as ledger:
            found = ledger.expiring_credentials(within_days, ws)
    if as_json:
        print_json([_expiring_json(e) for e in found])
        return
    table = _table(
        "id",
        "kind",
        "prefix",
        "name",
        "expires",
        "holder",
        "workspace",
        keep=("id", "kind", "prefix", "expires", "workspace"),
    )
    for e in found:
        _add_row(
            table,
            short_id(e.id),
            _kind(e.kind),
            e.token_prefix,
            e.name or e.daemon_id or "",
            _time(e.expires_at),
            f"{e.holder_name or '?'} {short_id(e.holder_id)}" if e.holder_id else "",
            short_id(e.workspace_id),
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
        "expires_at": utc_text(e.expires_at),
        "holder": {"user_id": str(e.holder_id), "name": e.holder_name} if e.holder_id else None,
    }


# Tamper evidence (ADR 0019): the commands live in their own module.
audit_app.command("checkpoint")(tamper.checkpoint)
audit_app.command("verify")(tamper.verify)
audit_app.command("repair-auth")(tamper.repair)

# Export and report for auditors: their own modules too.
audit_app.command("export")(audit_export.export)
audit_app.command("report")(audit_report.report)
