"""The layers hold: the domain loads no infrastructure, and the package root stays small.

The import rules themselves (layers, no cycles) are import-linter's contracts in
pyproject.toml, checked by ``make lint``; these tests check what a contract cannot: which
modules an import actually loads.
"""

from __future__ import annotations

import json
import subprocess
import sys

import ledger

HEAVY = ("psycopg", "psycopg_pool", "pydantic", "pydantic_settings", "fastapi", "starlette")


def loaded_after(statement: str) -> set[str]:
    """The top-level packages in ``sys.modules`` after ``statement`` in a fresh interpreter."""
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return {name.split(".")[0] for name in json.loads(result.stdout)}


def test_the_domain_loads_neither_a_driver_nor_pydantic_nor_a_web_framework() -> None:
    loaded = loaded_after("import ledger.domain")
    assert "ledger" in loaded and "eventsourcing" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_the_application_loads_no_driver_nor_web_framework() -> None:
    loaded = loaded_after("import ledger.application")
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_the_package_root_imports_its_names_only_when_asked() -> None:
    assert loaded_after("import ledger").isdisjoint(HEAVY)
    assert "psycopg" in loaded_after("from ledger import open_ledger")


def test_every_public_name_resolves_to_its_home() -> None:
    # The list itself is pinned in test_errors.py.
    for name in ledger.__all__:
        assert getattr(ledger, name).__name__ == name
    assert "open_ledger" in dir(ledger)
