"""Fixtures shared by every test layer."""

from __future__ import annotations

import os

# Every test runs in UTC, whatever the machine says.
os.environ["TZ"] = "UTC"

from pathlib import Path

import pytest

_INTEGRATION = Path(__file__).parent / "integration"
_ACCEPTANCE = Path(__file__).parent / "acceptance"


@pytest.fixture(scope="session", autouse=True)
def _suite_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every ledger the suite builds (and every `ledger serve` it starts) shares one exchange
    key file, in the suite's temporary directory rather than the checkout's `.ledger/`."""
    path = tmp_path_factory.mktemp("exchange-key") / "exchange.key"
    os.environ.setdefault("LEDGER_EXCHANGE_KEY_FILE", str(path))
    # Many tests mint hundreds of tokens for one user: the limits stay on (every write takes
    # their path) but out of the way; the tests of the limits set their own.
    os.environ.setdefault("LEDGER_MAX_TOKENS_PER_USER", "1000000")
    os.environ.setdefault("LEDGER_MAX_DAEMON_TOKENS_PER_WORKSPACE", "1000000")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the PostgreSQL server the suite starts;
    everything under tests/acceptance also runs `ledger serve`."""
    for item in items:
        parents = Path(str(item.path)).parents
        if _INTEGRATION in parents:
            item.add_marker(pytest.mark.integration)
        if _ACCEPTANCE in parents:
            item.add_marker(pytest.mark.acceptance)
