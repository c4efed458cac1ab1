"""The least-privilege grants of docs/database-roles.md work, and withhold what they should."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ledger.adapters import migrations
from ledger.adapters.postgres import ensure_database, with_database
from ledger.bootstrap import build_ledger
from ledger.config import Settings
from ledger.domain import TokenKind
from tests.integration.test_group_commit import stale_pair

DOC = Path(__file__).parents[2] / "docs" / "database-roles.md"


def grants() -> tuple[str, str]:
    """The doc's SQL: what a superuser runs, and what the owner runs after migrating."""
    [block] = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)
    superuser, owner = block.split("-- then `LEDGER_DATABASE_URL")
    return superuser, owner


def as_role(server_url: str, dbname: str, role: str, password: str) -> str:
    params = {k: str(v) for k, v in conninfo_to_dict(server_url).items()}
    params.update(user=role, password=password)
    return with_database(psycopg.conninfo.make_conninfo("", **params), dbname)


def test_the_runtime_role_appends_but_cannot_change_events_or_the_schema(
    server_url: str,
) -> None:
    dbname = f"ledger_roles_{uuid.uuid4().hex[:8]}"
    owner, app = f"o_{dbname}", f"a_{dbname}"
    superuser_sql, owner_sql = grants()
    rename = {
        "ledger_owner": owner,
        "ledger_app": app,
        "change me (owner)": "owner-pw",
        "change me (app)": "app-pw",
        "DATABASE ledger": f"DATABASE {dbname}",
    }
    for old, new in rename.items():
        superuser_sql = superuser_sql.replace(old, new)
        owner_sql = owner_sql.replace(old, new)
    ensure_database(server_url, dbname)
    with psycopg.connect(with_database(server_url, dbname), autocommit=True) as conn:
        conn.execute(superuser_sql)
    owner_url = as_role(server_url, dbname, owner, "owner-pw")
    migrations.upgrade(owner_url)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(owner_sql.split("\n", 2)[2])

    app_url = as_role(server_url, dbname, app, "app-pw")
    ledger = build_ledger(app_url, settings=Settings(pool_size=2))
    try:
        created = ledger.create_user("alice")
        assert ledger.verify(created.token, {TokenKind.PERSONAL_ACCESS_TOKEN}).user_id
        # a command refused whole takes its other event back: the role's DELETE, own rows only
        taken_back, pair = stale_pair(ledger)
        assert ledger.recorder.insert_batch([pair]) == [None]
        assert ledger.credentials.get(taken_back.id) is None
    finally:
        ledger.close()

    refused = [
        "UPDATE ledger_events SET topic = topic",
        "DELETE FROM ledger_events",
        "TRUNCATE ledger_events",
        "ALTER TABLE ledger_events DISABLE TRIGGER USER",
        "CREATE TABLE sneaky (x int)",
        "DROP TABLE ledger_log_leaves",
    ]
    for statement in refused:
        with psycopg.connect(app_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
