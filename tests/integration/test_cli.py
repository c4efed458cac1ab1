"""The `ledger` command line, run as a user runs it: a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil

from ledger.adapters import migrations
from ledger.bootstrap import PostgresLedger
from tests.support.databases import fresh_database

USER_KEYS = {"user_id", "name", "token", "token_prefix", "expires_at"}


def ledger_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_users_create_prints_the_contracts_json(
    database_url: str, wall_clock_ledger: PostgresLedger
) -> None:
    # The CLI mints on the wall clock: a ledger on the suite's manual clock (fixed at START)
    # would see the token as minted in its future once the wall clock passes START.
    result = ledger_cli(
        "users",
        "create",
        "--name",
        "Ada",
        "--email",
        "ada@example.com",
        "--json",
        env={"LEDGER_DATABASE_URL": database_url},
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == USER_KEYS
    assert data["name"] == "Ada"
    assert data["token_prefix"] == data["token"][:12]
    assert str(wall_clock_ledger.verify(data["token"]).user_id) == data["user_id"]


def test_users_create_refuses_a_blank_name_as_a_usage_error_naming_the_flag(
    database_url: str,
) -> None:
    result = ledger_cli(
        "users", "create", "--name", "   ", "--json", env={"LEDGER_DATABASE_URL": database_url}
    )
    assert result.returncode == 2
    assert json.loads(result.stdout) == {
        "error": "name is required",
        "detail": "--name must not be blank",
    }
    assert "Traceback" not in result.stderr


def test_users_create_refuses_control_characters_and_stores_nothing(
    database_url: str, wall_clock_ledger: PostgresLedger
) -> None:
    head = wall_clock_ledger.recorder.max_notification_id()
    env = {"LEDGER_DATABASE_URL": database_url}
    for args, code in (
        (("--name", "a\x01b"), "name is required"),
        (("--name", "esc\x1b[31m"), "name is required"),
        (("--name", "Ada", "--email", "ada\x7f@example.com"), "invalid request body"),
    ):
        result = ledger_cli("users", "create", *args, "--json", env=env)
        assert result.returncode == 2, result.stderr
        assert json.loads(result.stdout)["error"] == code
        plain = ledger_cli("users", "create", *args, env=env)
        assert "control characters" in plain.stderr
    assert wall_clock_ledger.recorder.max_notification_id() == head


def test_an_unmigrated_database_is_reported_not_crashed_on(server_url: str) -> None:
    url = fresh_database(server_url, migrate=False)
    result = ledger_cli("users", "create", "--name", "x", env={"LEDGER_DATABASE_URL": url})
    assert result.returncode == 1
    assert "ledger migrate" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_server_is_named_by_its_address_without_the_password() -> None:
    env = {"LEDGER_DATABASE_URL": "postgresql://postgres:hunter2@127.0.0.1:1/ledger"}
    result = ledger_cli("users", "create", "--name", "x", "--json", env=env)
    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "error": "service unavailable",
        "detail": "cannot reach the database at 127.0.0.1:1 (Connection refused)",
    }
    plain = ledger_cli("migrate", env=env)
    assert plain.returncode == 1
    assert "cannot reach the database at 127.0.0.1:1" in plain.stderr
    for output in (result.stdout, result.stderr, plain.stdout, plain.stderr):
        assert "hunter2" not in output
        assert "Traceback" not in output


def test_a_database_behind_the_newest_migration_is_reported(server_url: str) -> None:
    url = fresh_database(server_url)
    migrations.downgrade(url, "base")
    result = ledger_cli("users", "create", "--name", "x", env={"LEDGER_DATABASE_URL": url})
    assert result.returncode == 1
    assert "ledger migrate" in result.stderr


def test_invalid_configuration_is_named(tmp_path: Path) -> None:
    result = ledger_cli("migrate", env={"LEDGER_DATABASE_URL": "mysql://root:hunter2@db/x"})
    assert result.returncode == 2
    assert "LEDGER_DATABASE_URL must be a postgresql:// URL" in result.stderr
    assert "hunter2" not in result.stderr


def test_demo_runs_on_the_embedded_server_and_stops_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LEDGER_DATABASE_URL"}
    env["LEDGER_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run(
        [sys.executable, "-m", "ledger", "demo"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "1 exchanged, 7 got install_token_already_used" in " ".join(result.stdout.split())
    assert "invalid token" in result.stdout
    assert (tmp_path / "data" / "pgdata" / "PG_VERSION").exists()
    still_running = [
        p
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "postgres" and str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]
    assert still_running == []


def test_users_create_prints_a_markup_like_name_as_typed_and_the_token_whole(
    database_url: str, wall_clock_ledger: PostgresLedger
) -> None:
    result = ledger_cli(
        "users",
        "create",
        "--name",
        "[/] [bold]x",
        env={"LEDGER_DATABASE_URL": database_url, "COLUMNS": "40"},
    )
    assert result.returncode == 0, result.stderr
    assert "user [/] [bold]x created" in result.stdout
    token = next(w for w in result.stdout.split() if w.startswith("mul_"))
    assert wall_clock_ledger.verify(token).user_id is not None
