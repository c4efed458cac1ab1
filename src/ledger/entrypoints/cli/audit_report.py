"""``ledger audit report``: a workspace's or a credential's history as one HTML page.

The page (``ledger.entrypoints.report``) is self-contained: it can be mailed, attached to a
ticket, opened offline or printed. ``--at`` sets the point in time that every timeline marks
and that the summary's "at the point in time" column is computed for (default: now).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer

from ledger.application.audit import AuditEvent
from ledger.bootstrap import PostgresLedger, open_ledger
from ledger.domain.errors import CredentialNotFound, InvalidQueryParameter, LedgerError
from ledger.entrypoints.cli.audit_export import parse_uuid
from ledger.entrypoints.cli.console import command_errors, err
from ledger.entrypoints.cli.tamper import write_atomically
from ledger.entrypoints.report import render_report
from ledger.projections.queries import parse_instant


def _credential_events(ledger: PostgresLedger, credential_id: UUID) -> list[AuditEvent]:
    """The credential's events and those of the credentials it is linked to (the install
    token a daemon token came from, the daemon token an install token became)."""
    history = ledger.audit.history(credential_id)
    events = {e.position: e for e in history.events}
    state = history.credential
    linked = {state.install_token_id, state.daemon_token_id} - {None, credential_id}
    for other in linked:
        assert other is not None
        with contextlib.suppress(CredentialNotFound):
            events |= {e.position: e for e in ledger.audit.history(other).events}
    return [events[p] for p in sorted(events)]


def _names(ledger: PostgresLedger, events: list[AuditEvent]) -> dict[str, str]:
    """The names of the users the events name (as actors, members or holders), and the
    daemon id of each daemon token minted among them."""
    ids: set[str] = set()
    for event in events:
        if event.actor.type == "user":
            ids.add(event.actor.id)
        if event.user_id is not None:
            ids.add(str(event.user_id))
        if event.data.get("created_by"):
            ids.add(str(event.data["created_by"]))
    # A daemon acts under its daemon token's id: show the daemon id it was minted for.
    names = {
        str(e.credential_id): str(e.data["daemon_id"])
        for e in events
        if e.type == "minted" and e.data.get("daemon_id")
    }
    for user_id in ids:
        with contextlib.suppress(LedgerError, ValueError):
            names[user_id] = ledger.get_user(UUID(user_id)).name
    return names


def _workspace_title(events: list[AuditEvent], workspace: UUID) -> str:
    for event in events:
        if event.data.get("workspace_created") and event.data.get("name"):
            return f"Audit report: workspace {event.data['name']}"
    return f"Audit report: workspace {workspace}"


def report(
    out_file: Annotated[Path, typer.Option("--out", help="the HTML file to write")],
    workspace: Annotated[str | None, typer.Option(help="every credential of a workspace")] = None,
    credential: Annotated[str | None, typer.Option(help="one credential (and its links)")] = None,
    at: Annotated[
        str | None, typer.Option(help="the point in time to mark (RFC 3339; default: now)")
    ] = None,
) -> None:
    """Write one self-contained HTML page with each credential's lifecycle as a timeline."""
    if (workspace is None) == (credential is None):
        err.print("[red]error:[/red] name either --workspace or --credential")
        raise typer.Exit(2)
    with command_errors(as_json=False) as settings:
        ws = parse_uuid(workspace, "workspace")
        cid = parse_uuid(credential, "credential")
        instant = None if at is None else parse_instant(at, "at")
        with open_ledger(settings) as ledger:
            now = ledger.clock.now()
            if ws is not None:
                _, stream = ledger.audit.export(workspace=ws)
                events = [item.event for item in stream]
                if not events:
                    msg = "the workspace has no events"
                    raise InvalidQueryParameter(msg)
                title = _workspace_title(events, ws)
            else:
                assert cid is not None
                events = _credential_events(ledger, cid)
                title = f"Audit report: credential {cid}"
            page = render_report(
                title=title,
                events=events,
                at=instant or now,
                generated_at=now,
                names=_names(ledger, events),
            )
    write_atomically(out_file, page)
    err.print(f"report of {len(events)} events written to {out_file}")
