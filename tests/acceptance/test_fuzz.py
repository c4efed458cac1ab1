"""Schema-driven fuzzing of a live ``ledger serve`` with schemathesis.

Schemathesis reads the service's own ``/openapi.json`` and sends what it derives from it: the
documented examples, the boundaries of every constraint, random valid and invalid requests, and
stateful sequences that follow the document's links (a created workspace's id into its members,
install tokens, audit feed...). Every check it has is on (``--checks all``): no 5xx, every status
and header documented, every body matching its schema, schema-valid requests accepted and
schema-invalid ones refused. The few answers the contract fixes and no JSON Schema can express
are listed, with the reason, in ``fuzz/schemathesis.toml``.

The service gets its own database, so the fuzzer's traffic (and its failed exchanges) meets no
other test. The fuzzer holds a personal access token of a user who owns a workspace, and a daemon
token for ``/api/daemon/``; afterwards the service's log must hold no traceback, no raw token
and no 5xx.

``LEDGER_FUZZ_EXAMPLES`` sets the examples per operation (default 20: about a thousand requests,
well under a minute); ``make fuzz`` runs it longer (``LEDGER_FUZZ_MIN_REQUESTS`` makes the test
fail unless the service answered at least that many requests) and prints the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.bootstrap import build_ledger
from ledger.config import Settings
from tests.acceptance.service import Api, ServeProcess, TokenLog
from tests.support.databases import fresh_database

CONFIG = Path(__file__).parent / "fuzz" / "schemathesis.toml"
EXAMPLES = int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "20"))
MIN_REQUESTS = int(os.environ.get("LEDGER_FUZZ_MIN_REQUESTS", "0"))
RUN_TIMEOUT_S = float(os.environ.get("LEDGER_FUZZ_TIMEOUT_S", "1800"))


@dataclass(frozen=True)
class FuzzTarget:
    service: ServeProcess
    env: dict[str, str]
    tokens: TokenLog


@pytest.fixture(scope="module")
def target(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    """A ``ledger serve`` of its own, a user who owns a workspace, and a daemon token there."""
    database = fresh_database(postgres_url)
    tokens = TokenLog()
    ledger = build_ledger(database, settings=Settings(pool_size=2))
    try:
        created = ledger.create_user("fuzzer")
        revoker = ledger.create_user("revoker")
    finally:
        ledger.close()
    tokens.add(created.token)
    tokens.add(revoker.token)
    service = ServeProcess(database, tmp_path_factory.mktemp("fuzz") / "serve.log", workers=2)
    try:
        service.wait_ready()
        api = Api(service.base_url, tokens)
        try:
            workspace = api.post("/api/workspaces", token=created.token, json={"name": "fuzz"})
            assert workspace.status_code == 201, workspace.text
            install = api.post(
                f"/api/workspaces/{workspace.json()['id']}/install-tokens", token=created.token
            )
            exchanged = api.post(
                "/api/install-tokens/exchange",
                json={"token": install.json()["token"], "daemon_id": "fuzz-daemon"},
            )
            assert exchanged.status_code == 200, exchanged.text
        finally:
            api.close()
        yield FuzzTarget(
            service,
            {
                "LEDGER_FUZZ_TOKEN": created.token,
                "LEDGER_FUZZ_WORKSPACE": workspace.json()["id"],
                "LEDGER_FUZZ_DAEMON_TOKEN": exchanged.json()["token"],
                "LEDGER_FUZZ_REVOKER_TOKEN": revoker.token,
            },
            tokens,
        )
    finally:
        status = service.stop()
        assert status == 0, service.log_text()[-4000:]


def _access_log(text: str) -> list[dict[str, object]]:
    lines = (json.loads(line) for line in text.splitlines() if '"ledger.http.access"' in line)
    return [entry for entry in lines if entry.get("logger") == "ledger.http.access"]


def test_the_schema_driven_fuzzer_finds_nothing(
    target: FuzzTarget, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--no-color",
        "--config-file",
        str(CONFIG),
        "run",
        f"{target.service.base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        # One worker: hypothesis's lambda introspection is not thread-safe on Python 3.11
        # (parallel workers fail with "AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
    ]
    started = time.monotonic()
    result = subprocess.run(  # noqa: PLW1510 - the exit status is asserted below
        command,
        cwd=tmp_path,
        env={**os.environ, **target.env},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    seconds = time.monotonic() - started
    report = result.stdout + result.stderr
    assert result.returncode == 0, report

    log = target.service.log_text()
    answers = _access_log(log)
    statuses = Counter(int(str(entry["status"])) for entry in answers)
    assert not [s for s in statuses if s >= 500], (statuses, report[-4000:])
    assert "Traceback" not in log
    assert target.tokens.found_in(log) == []
    # The fuzzer got past authentication and into the workspace: real work was done.
    created = Counter(
        (entry["method"], entry["route"]) for entry in answers if entry["status"] in {200, 201}
    )
    assert created[("POST", "/api/workspaces")] > 0, statuses
    assert created[("GET", "/api/workspaces/{workspace_id}/audit")] > 0, statuses
    assert created[("GET", "/api/daemon/whoami")] > 0, statuses
    assert len(answers) >= MIN_REQUESTS, statuses
    figures = [
        line.strip()
        for line in report.splitlines()
        if line.strip().startswith(("API Links:", "Scenarios:", "⚠️", "Seed:"))
        or "generated" in line
    ]
    with capsys.disabled():
        print(
            f"\nfuzz: {len(answers)} requests in {seconds:.0f} s, {EXAMPLES} examples per "
            f"operation; statuses {dict(sorted(statuses.items()))}",
            *figures,
            sep="\n  ",
        )
