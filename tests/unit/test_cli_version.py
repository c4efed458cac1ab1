"""``ledger --version`` prints the installed package's version and touches no store."""

from __future__ import annotations

from importlib import metadata

from typer.testing import CliRunner

from ledger.entrypoints.cli.commands import app


def test_version_prints_the_installed_version_and_exits_zero() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"ledger {metadata.version('ledger')}\n"


def test_no_arguments_still_show_the_help() -> None:
    result = CliRunner().invoke(app, [])
    assert "migrate" in result.output and "--version" in result.output
