"""What every ``ledger`` command shares: settings, output, errors in CLI words, exit codes.

Exit codes (docs/cli.md):

- ``0`` (``EXIT_OK``): done;
- ``1`` (``EXIT_REFUSED``): the ledger refused or could not do it (``user not found``, the
  database unreachable or not migrated, ``ledger audit verify`` finding a problem);
- ``2`` (``EXIT_USAGE``): the command was given something it cannot use: a flag or argument
  value (``--name`` too long, ``--since`` without a time zone), or a ``LEDGER_*`` environment
  variable. typer's own usage errors (an unknown flag, a missing one) exit 2 as well.

An error prints ``error: …`` on stderr, naming the flag, argument or variable and why; with
``--json`` it prints ``{"error": code, "detail": sentence}`` on stdout (``code`` is the
contract's stable string). No stack trace is printed (``LEDGER_LOG_LEVEL=DEBUG`` logs one).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import annotated_types
import typer
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from rich.console import Console
from rich.markup import escape

from ledger.config import Settings
from ledger.domain.errors import BadRequest, LedgerError

out = Console()
err = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("ledger.cli")

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2

INVALID_CONFIGURATION = "invalid configuration"


class BadValue(Exception):
    """Raised when a flag, argument or environment variable holds a value the command cannot
    use; ``message`` names it and says why (exit 2)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def in_cli_words(detail: str, field: str, name: str) -> str:
    """``detail`` about ``field`` (the ledger's word) said about ``name`` (the CLI's: a flag,
    an argument or an environment variable): ``name must be …``."""
    if detail.startswith(f"{field} "):
        return name + detail.removeprefix(field)
    return f"{name}: {detail}"


@contextlib.contextmanager
def flag(name: str, field: str | None = None) -> Iterator[None]:
    """The checks of one flag's (or argument's) value: a ``BadRequest`` raised inside becomes a
    ``BadValue`` naming ``name``. ``field`` is the word the ledger's message uses for it
    (default: ``name`` without its dashes)."""
    try:
        yield
    except BadRequest as error:
        word = field or name.lstrip("-").replace("-", "_")
        message = in_cli_words(error.detail or error.code, word, name)
        raise BadValue(error.code, message) from None


def _bounds(field: str) -> str:
    """The range a numeric setting takes, as `` (1..200)`` (empty when it has none)."""
    info = Settings.model_fields.get(field)
    low = high = None
    for item in info.metadata if info else ():
        if isinstance(item, annotated_types.Ge):
            low = f"{item.ge}.."
        elif isinstance(item, annotated_types.Gt):
            low = f"more than {item.gt}, up to "
        elif isinstance(item, annotated_types.Le):
            high = f"{item.le}"
    return f" ({low}{high})" if low and high else ""


def setting_problem(error: ErrorDetails) -> str:
    """One sentence about one invalid setting, naming its environment variable; never its
    value (``LEDGER_DATABASE_URL`` may hold a password)."""
    field = str(error["loc"][0]) if error["loc"] else ""
    variable = f"LEDGER_{field.upper()}"
    ctx = error.get("ctx") or {}
    kind = error["type"]
    reasons = {
        "int_parsing": f"must be a whole number{_bounds(field)}",
        "int_from_float": f"must be a whole number{_bounds(field)}",
        "float_parsing": f"must be a number{_bounds(field)}",
        "bool_parsing": "must be true or false",
        "greater_than_equal": f"must be at least {ctx.get('ge')}",
        "greater_than": f"must be more than {ctx.get('gt')}",
        "less_than_equal": f"must be at most {ctx.get('le')}",
        "less_than": f"must be less than {ctx.get('lt')}",
        "literal_error": f"must be one of {ctx.get('expected')}",
    }
    if kind in reasons:
        return f"{variable} {reasons[kind]}"
    if kind == "value_error" and str(ctx.get("error", "")).startswith(variable):
        return str(ctx["error"])
    return f"{variable}: {error['msg']}"


def load_settings(*, as_json: bool = False) -> Settings:
    """Settings from the environment; an invalid one is named, with why, and exits 2."""
    try:
        return Settings()
    except ValidationError as error:
        message = "; ".join(setting_problem(e) for e in error.errors())
        print_error(INVALID_CONFIGURATION, message, as_json=as_json)
        raise typer.Exit(EXIT_USAGE) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")


def print_error(code: str, detail: str | None, *, as_json: bool, named: bool = True) -> None:
    """An error: ``{"error": code, "detail": detail}`` with ``--json``; otherwise
    ``error: code: detail`` on stderr (``error: detail`` when not ``named``: a sentence that
    names a flag says it all)."""
    if as_json:
        print_json({"error": code} | ({"detail": detail} if detail else {}))
        return
    text = detail if detail and not named else f"{code}: {detail}" if detail else code
    err.print(f"[red]error:[/red] {escape(text)}", highlight=False)


def fail(error: LedgerError, *, as_json: bool) -> typer.Exit:
    """Report a refusal by its code and detail; exit 1."""
    log.debug("command failed", exc_info=error)
    detail = error.detail if error.detail and error.detail != error.code else None
    print_error(error.code, detail, as_json=as_json)
    return typer.Exit(EXIT_REFUSED)


def bad_value(error: BadValue, *, as_json: bool) -> typer.Exit:
    """Report a value the command cannot use, naming it; exit 2."""
    print_error(error.code, error.message, as_json=as_json, named=False)
    return typer.Exit(EXIT_USAGE)


@contextlib.contextmanager
def command_errors(*, as_json: bool) -> Iterator[Settings]:
    """The settings for a command's work; a ``BadValue`` it raises exits 2, a ``LedgerError``
    exits 1 (each reported in CLI words)."""
    settings = load_settings(as_json=as_json)
    try:
        yield settings
    except BadValue as error:
        raise bad_value(error, as_json=as_json) from None
    except LedgerError as error:
        raise fail(error, as_json=as_json) from None
