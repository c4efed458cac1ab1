"""Fixtures shared by every test layer."""

from __future__ import annotations

import os

# Every test runs in UTC, whatever the machine says.
os.environ["TZ"] = "UTC"

from pathlib import Path

import pytest

_INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the PostgreSQL server the suite starts."""
    for item in items:
        if _INTEGRATION in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)
