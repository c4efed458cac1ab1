"""The ``ledger`` command line: operators' and auditors' entry point.

Errors print the contract's code (``{"error": code}`` with ``--json``) and exit 1; no stack trace
is ever printed (set ``LEDGER_LOG_LEVEL=DEBUG`` to log details).
"""

from __future__ import annotations

import logging
import sys
from importlib import metadata
from typing import Annotated

import typer
from pydantic import ValidationError

from ledger.application import validation
from ledger.bootstrap import migrate as migrate_database
from ledger.bootstrap import open_ledger
from ledger.config import Settings
from ledger.domain.errors import InvalidUserId
from ledger.entrypoints.cli.audit import audit_app, projections_app
from ledger.entrypoints.cli.console import command_errors, err, out, print_json
from ledger.entrypoints.demo import run_demo

app = typer.Typer(
    name="ledger",
    help="An event-sourced credential ledger on PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
users_app = typer.Typer(help="Users (operator commands).", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(projections_app, name="projections")
app.add_typer(audit_app, name="audit")

log = logging.getLogger("ledger.cli")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ledger {metadata.version('ledger')}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """An event-sourced credential ledger on PostgreSQL."""


@app.command()
def migrate() -> None:
    """Create or upgrade every table the ledger owns (safe to repeat, and to run concurrently)."""
    with command_errors(as_json=False) as settings:
        migrate_database(settings)
    out.print("ledger schema is at head")


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Option("--name", help="display name (1..100 characters)")],
    email: Annotated[str | None, typer.Option("--email", help="optional e-mail address")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Create a user with an initial personal access token (valid 90 days, shown once)."""
    with command_errors(as_json=as_json) as settings:
        # The input rules first: a refused name or e-mail address never opens the store.
        validation.name(name)
        validation.email(email)
        with open_ledger(settings) as ledger:
            created = ledger.create_user(name, email)
    data = {
        "user_id": str(created.user_id),
        "name": created.name,
        "token": created.token,
        "token_prefix": created.token_prefix,
        "expires_at": created.expires_at.isoformat(),
    }
    if as_json:
        print_json(data)
        return
    out.print(f"user [bold]{created.name}[/bold] created: {created.user_id}")
    out.print(f"personal access token (shown only now): [bold]{created.token}[/bold]")
    out.print(f"expires at {data['expires_at']}")


@users_app.command("offboard")
def users_offboard(
    user_id: Annotated[str, typer.Argument(help="the user's id")],
    note: Annotated[
        str | None, typer.Option("--note", help="why (1..200 characters), kept in the events")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Revoke, in one commit, every personal access token of the user and every daemon and
    install token they issued in any workspace (reason `offboarded`)."""
    with command_errors(as_json=as_json) as settings:
        uid = validation.uuid(user_id, InvalidUserId)
        validation.note(note)
        with open_ledger(settings) as ledger:
            revoked = ledger.offboard_user(uid, note)
    if as_json:
        print_json({"user_id": str(uid), "revoked": revoked})
        return
    out.print(f"user {uid} offboarded: {revoked} credentials revoked")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port", min=0, max=65535)] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", help="worker processes, each with its own Ledger", min=1)
    ] = 1,
) -> None:
    """Run the HTTP service (embedded PostgreSQL unless LEDGER_DATABASE_URL is set)."""
    from ledger.entrypoints.http.server import serve as run_server  # noqa: PLC0415 - keeps other commands light

    with command_errors(as_json=False) as settings:
        run_server(settings, host=host, port=port, workers=workers)


@app.command()
def demo() -> None:
    """Run a scripted credential lifecycle on a scratch database and narrate it."""
    with command_errors(as_json=False) as settings:
        run_demo(settings, out)


def _log_level() -> str:
    """``LEDGER_LOG_LEVEL``, WARNING by default (an invalid configuration is reported by the
    command itself, which loads the settings again)."""
    try:
        return Settings().log_level_or("WARNING")
    except ValidationError:
        return "WARNING"


def main() -> None:
    """Console entry point."""
    logging.basicConfig(
        level=_log_level(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        app()
    except Exception:
        log.debug("unexpected failure", exc_info=True)
        err.print("[red]error:[/red] internal error (set LEDGER_LOG_LEVEL=DEBUG for details)")
        sys.exit(1)
