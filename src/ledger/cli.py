"""The ``ledger`` command line: operators' and auditors' entry point.

Errors print the contract's code (``{"error": code}`` with ``--json``) and exit 1; no stack trace
is ever printed (set ``LEDGER_LOG_LEVEL=DEBUG`` to log details).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from ledger import migrations
from ledger.adapters.postgres import database_url
from ledger.application import validation
from ledger.audit_cli import audit_app, projections_app
from ledger.console import err, fail, load_settings, out, print_json
from ledger.demo import run_demo
from ledger.errors import LedgerError
from ledger.service import open_ledger

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


@app.command()
def migrate() -> None:
    """Create or upgrade every table the ledger owns (safe to repeat, and to run concurrently)."""
    settings = load_settings()
    try:
        with database_url(settings) as url:
            migrations.upgrade(url)
    except LedgerError as error:
        raise fail(error, as_json=False) from None
    out.print("ledger schema is at head")


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Option("--name", help="display name (1..100 characters)")],
    email: Annotated[str | None, typer.Option("--email", help="optional e-mail address")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Create a user with an initial personal access token (valid 90 days, shown once)."""
    try:
        # The input rules first: a refused name or e-mail address never opens the store.
        validation.name(name)
        validation.email(email)
    except LedgerError as error:
        raise fail(error, as_json=as_json) from None
    settings = load_settings()
    try:
        with open_ledger(settings) as ledger:
            created = ledger.create_user(name, email)
    except LedgerError as error:
        raise fail(error, as_json=as_json) from None
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


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port", min=0, max=65535)] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", help="worker processes, each with its own Ledger", min=1)
    ] = 1,
) -> None:
    """Run the HTTP service (embedded PostgreSQL unless LEDGER_DATABASE_URL is set)."""
    from ledger.http.server import serve as run_server  # noqa: PLC0415 - keeps other commands light

    settings = load_settings()
    try:
        run_server(settings, host=host, port=port, workers=workers)
    except LedgerError as error:
        raise fail(error, as_json=False) from None


@app.command()
def demo() -> None:
    """Run a scripted credential lifecycle on a scratch database and narrate it."""
    settings = load_settings()
    try:
        run_demo(settings, out)
    except LedgerError as error:
        raise fail(error, as_json=False) from None


def main() -> None:
    """Console entry point."""
    logging.basicConfig(
        level=os.environ.get("LEDGER_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        app()
    except Exception:
        log.debug("unexpected failure", exc_info=True)
        err.print("[red]error:[/red] internal error (set LEDGER_LOG_LEVEL=DEBUG for details)")
        sys.exit(1)
