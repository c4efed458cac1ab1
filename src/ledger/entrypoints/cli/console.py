"""What every ``ledger`` command shares: settings, output, and errors as the contract's codes.

A command runs its work inside ``command_errors``: invalid settings exit 2 naming the fields, a
``LedgerError`` prints its code (``{"error": code}`` with ``--json``) and exits 1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console

from ledger.config import Settings
from ledger.domain.errors import LedgerError

out = Console()
err = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("ledger.cli")


def load_settings() -> Settings:
    """Settings from the environment; an invalid one names its fields and exits 2."""
    try:
        return Settings()
    except ValidationError as error:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in error.errors())
        err.print(f"[red]error:[/red] invalid configuration: {fields}")
        raise typer.Exit(2) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")


def fail(error: LedgerError, *, as_json: bool) -> typer.Exit:
    """Report ``error`` by its code (``{"error": code}`` with ``--json``); exit 1."""
    log.debug("command failed", exc_info=error)
    if as_json:
        print_json({"error": error.code})
    else:
        detail = f" ({error.detail})" if error.detail and error.detail != error.code else ""
        err.print(f"[red]error:[/red] {error.code}{detail}")
    return typer.Exit(1)


@contextlib.contextmanager
def command_errors(*, as_json: bool) -> Iterator[Settings]:
    """The settings for a command's work; a ``LedgerError`` it raises is reported (``fail``)."""
    settings = load_settings()
    try:
        yield settings
    except LedgerError as error:
        raise fail(error, as_json=as_json) from None
