"""The command line's conventions, without a database: errors that name the flag or the
environment variable and why, the exit codes, and tables that fit 80 columns."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from rich.console import Console
from typer.testing import CliRunner

from ledger.application.audit import AuditEvent, CredentialState
from ledger.application.timestamps import compact_utc, utc_text
from ledger.domain import Actor
from ledger.entrypoints.cli import audit
from ledger.entrypoints.cli.commands import app
from ledger.entrypoints.cli.console import EXIT_REFUSED, EXIT_USAGE

# Nothing listens on port 1: a command that got as far as the store would say so.
UNREACHABLE = {"LEDGER_DATABASE_URL": "postgresql://ops:hunter2@127.0.0.1:1/ledger"}
AT = datetime(2026, 11, 30, 12, 0, 5, 123456, tzinfo=UTC)


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env={**UNREACHABLE, **(env or {})})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("users", "create", "--name", "a" * 101), "--name must be at most 100 characters"),
        (("users", "create", "--name", " "), "--name must not be blank"),
        (("users", "create", "--name", "x", "--email", "no"), "--email must look like"),
        (("audit", "valid-at", "2026-11-30T12:00:00"), "T needs a time zone"),
        (("audit", "events", "--since", "yesterday"), "--since is not an RFC 3339 timestamp"),
        (("audit", "events", "--workspace", "w"), "--workspace is not a UUID"),
        (("audit", "events", "--limit", "0"), "--limit must be a whole number in 1..1000"),
        (("audit", "events", "--type", "exploded"), "--type must be one of minted"),
        (("audit", "events", "--cursor", "x"), "--cursor: invalid cursor"),
        (("audit", "history", "42"), "CREDENTIAL_ID is not a UUID"),
        (("projections", "rebuild", "nope"), "NAME must be one of audit_trail, credentials"),
        (("projections", "errors", "--after", "-1"), "--after must be a position"),
    ],
)
def test_a_bad_value_names_its_flag_and_why_and_exits_2(
    args: tuple[str, ...], message: str
) -> None:
    result = run(*args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert message in result.stderr
    assert result.stderr.startswith("error: ")
    assert "cannot reach" not in result.stderr  # refused before the store is opened


def test_a_bad_value_with_json_prints_the_code_and_the_sentence() -> None:
    result = run("users", "create", "--name", "a" * 101, "--json")
    assert result.exit_code == EXIT_USAGE
    assert json.loads(result.stdout) == {
        "error": "name is required",
        "detail": "--name must be at most 100 characters",
    }


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LEDGER_POOL_SIZE", "abc", "LEDGER_POOL_SIZE must be a whole number (1..200)"),
        ("LEDGER_POOL_SIZE", "0", "LEDGER_POOL_SIZE must be at least 1"),
        ("LEDGER_RUN_PROJECTIONS", "maybe", "LEDGER_RUN_PROJECTIONS must be true or false"),
        ("LEDGER_LOG_LEVEL", "loud", "LEDGER_LOG_LEVEL must be one of 'DEBUG'"),
        ("LEDGER_WRITE_LINGER_MS", "x", "LEDGER_WRITE_LINGER_MS must be a number (0..50)"),
        ("LEDGER_DATABASE_URL", "mysql://root:hunter2@db/x", "must be a postgresql:// URL"),
        ("LEDGER_LAST_USED_FLUSH_S", "-1", "LEDGER_LAST_USED_FLUSH_S must be more than 0.0"),
    ],
)
def test_an_invalid_setting_names_its_variable_and_why_and_exits_2(
    variable: str, value: str, message: str
) -> None:
    result = run("migrate", env={variable: value})
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.startswith(f"error: invalid configuration: {variable} ")
    assert message in result.stderr
    assert value not in result.stderr  # a value may be a password


def test_an_invalid_setting_with_json_is_json() -> None:
    result = run("audit", "events", "--json", env={"LEDGER_POOL_SIZE": "abc"})
    assert result.exit_code == EXIT_USAGE
    assert json.loads(result.stdout) == {
        "error": "invalid configuration",
        "detail": "LEDGER_POOL_SIZE must be a whole number (1..200)",
    }


def test_an_unreachable_database_is_refused_naming_its_address_not_its_password() -> None:
    result = run("audit", "events")
    assert result.exit_code == EXIT_REFUSED
    assert result.stderr.startswith(
        "error: service unavailable: cannot reach the database at 127.0.0.1:1 ("
    )
    assert "hunter2" not in result.output


# ------------------------------------------------------------------------------ tables


def _event(type_: str, *, credential: bool = True, **data: Any) -> AuditEvent:
    return AuditEvent(
        position=123456,
        type=type_,
        at=AT,
        actor=Actor(type="user", id=str(uuid4())),
        credential_id=uuid4() if credential else None,
        kind="personal_access_token" if credential else None,
        workspace_id=uuid4(),
        user_id=uuid4(),
        data=data,
    )


def _state(name: str) -> CredentialState:
    return CredentialState(
        credential_id=uuid4(),
        kind="daemon_token",
        token_prefix="mdt_abcdefgh",
        name=None,
        user_id=None,
        workspace_id=uuid4(),
        daemon_id=name,
        install_token_id=uuid4(),
        created_by=uuid4(),
        created_at=AT,
        expires_at=AT + timedelta(days=90),
        revoked_at=None,
        revoked_reason=None,
        consumed_at=None,
        daemon_token_id=None,
    )


def _render(table: Any, monkeypatch: pytest.MonkeyPatch, width: int = 80) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    monkeypatch.setattr(audit, "out", console)
    console.print(table() if callable(table) else table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text.splitlines()


EVENTS = [
    _event("minted", name="n" * 100, token_prefix="mul_abcdefgh", expires_at=utc_text(AT)),
    _event(
        "renewed",
        expires_at_before=utc_text(AT),
        expires_at_after=utc_text(AT + timedelta(days=90)),
    ),
    _event("revoked", reason="member_removed"),
    _event("consumed", daemon_token_id=str(uuid4())),
    _event("member_role_changed", credential=False, role="admin", role_before="member"),
]


def test_the_events_table_fits_80_columns_and_never_splits_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = _render(lambda: audit._events_table(EVENTS), monkeypatch)
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    # Each time whole on one line: 5 events' own times, one expiry of a mint, one renewal's.
    assert text.count(compact_utc(AT)) == 7
    assert text.count(compact_utc(AT + timedelta(days=90))) == 1
    assert "member_role_changed" in text
    for event in EVENTS:
        if event.credential_id:
            assert f"pat {str(event.credential_id)[:8]}" in text
    assert "2026-11-30T12:00" not in text  # tables show the compact form only


def test_the_states_table_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    states = [_state("daemon-1"), _state("d" * 128)]
    lines = _render(lambda: audit._states_table(states), monkeypatch)
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    assert text.count(compact_utc(AT)) == 2
    assert text.count(compact_utc(AT + timedelta(days=90))) == 2
    assert str(states[0].credential_id)[:8] in text


def test_only_uuids_are_shortened(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "out", Console(file=io.StringIO(), width=80))
    some = uuid4()
    assert audit.short_id(some) == str(some)[:8]
    assert audit.short_id("operator") == "operator"
    assert audit.short_id(None) == ""


def test_a_wide_terminal_shows_whole_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    state = _state("daemon-1")
    lines = _render(lambda: audit._states_table([state]), monkeypatch, width=160)
    assert str(state.credential_id) in "\n".join(lines)


def test_compact_and_rfc3339_forms() -> None:
    assert compact_utc(AT) == "2026-11-30 12:00Z"
    assert utc_text(AT) == "2026-11-30T12:00:05.123456Z"
    assert utc_text(AT.replace(microsecond=0)) == "2026-11-30T12:00:05Z"
    with pytest.raises(ValueError, match="naive"):
        utc_text(AT.replace(tzinfo=None))


def test_serve_on_a_port_in_use_says_so_before_starting_anything() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "ledger", "serve", "--port", str(port)],
            env={**os.environ, **UNREACHABLE},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == EXIT_USAGE
    assert result.stderr == (
        f"error: port {port} on 127.0.0.1 is already in use (choose another with --port)\n"
    )
