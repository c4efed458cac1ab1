"""Fixtures shared by every test layer."""

from __future__ import annotations

import os

# Every test runs in UTC, whatever the machine says.
os.environ["TZ"] = "UTC"

from pathlib import Path

import pytest

_INTEGRATION = Path(__file__).parent / "integration"
_ACCEPTANCE = Path(__file__).parent / "acceptance"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the PostgreSQL server the suite starts;
    everything under tests/acceptance also runs `ledger serve`."""
    for item in items:
        parents = Path(str(item.path)).parents
        if _INTEGRATION in parents:
            item.add_marker(pytest.mark.integration)
        if _ACCEPTANCE in parents:
            item.add_marker(pytest.mark.acceptance)
