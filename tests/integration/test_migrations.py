"""`ledger migrate`: alembic up and down, no drift, the library's own layout, concurrency."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from ledger.adapters import migrations
from ledger.adapters.migrations.schema import metadata
from tests.support.databases import fresh_database

LEDGER_TABLES = {
    "ledger_events",
    "ledger_credentials",
    "ledger_credentials_view",
    "ledger_credentials_view_tracking",
    "ledger_audit",
    "ledger_audit_tracking",
    "ledger_log_leaves",
}


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def autogenerate_diff(url: str) -> list[object]:
    engine = create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(url), poolclass=NullPool
    )
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    return list(diff)


def test_upgrade_downgrade_upgrade_and_no_autogenerate_diff(server_url: str) -> None:
    url = fresh_database(server_url, migrate=False)
    migrations.upgrade(url)
    assert tables(url) >= LEDGER_TABLES
    assert autogenerate_diff(url) == []
    migrations.upgrade(url)  # again: nothing to do
    migrations.downgrade(url, "base")
    assert not (LEDGER_TABLES & tables(url))
    migrations.upgrade(url)
    assert tables(url) >= LEDGER_TABLES
    assert autogenerate_diff(url) == []


def describe(url: str, schema: str) -> dict[str, object]:
    """Columns, indexes, storage options and composite type of ``schema``.ledger_events."""
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT column_name, data_type, is_nullable, "
            "replace(column_default, %s, '') FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'ledger_events' ORDER BY ordinal_position",
            (schema + ".", schema),
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexname, replace(indexdef, %s, '') FROM pg_indexes "
            "WHERE schemaname = %s AND tablename = 'ledger_events' ORDER BY indexname",
            (schema + ".", schema),
        ).fetchall()
        options = conn.execute(
            "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = 'ledger_events'",
            (schema,),
        ).fetchall()
        composite = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_type t "
            "JOIN pg_namespace n ON n.oid = t.typnamespace "
            "JOIN pg_attribute a ON a.attrelid = t.typrelid "
            "WHERE n.nspname = %s AND t.typname = 'stored_event_uuid' ORDER BY a.attnum",
            (schema,),
        ).fetchall()
    return {"columns": columns, "indexes": indexes, "options": options, "type": composite}


def test_events_table_matches_the_librarys_own_ddl(server_url: str) -> None:
    url = fresh_database(server_url)
    params = conninfo_to_dict(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA libref")
    datastore = PostgresDatastore(
        dbname=str(params["dbname"]),
        host=str(params["host"]),
        port=str(params.get("port") or "5432"),
        user=str(params["user"]),
        password=str(params.get("password") or ""),
        schema="libref",
    )
    try:
        PostgresApplicationRecorder(datastore, events_table_name="ledger_events").create_table()
    finally:
        datastore.close()
    ours, theirs = describe(url, "public"), describe(url, "libref")
    assert ours["columns"]
    # The library's layout plus the transaction id that orders the log (migration 0004).
    assert ours["columns"] == [
        *theirs["columns"],  # type: ignore[misc]
        ("transaction_id", "xid8", "NO", "pg_current_xact_id()"),
    ]
    assert ours["indexes"] == sorted(
        [
            *theirs["indexes"],  # type: ignore[misc]
            (
                "ledger_events_transaction_order_idx",
                "CREATE UNIQUE INDEX ledger_events_transaction_order_idx ON ledger_events "
                "USING btree (transaction_id, notification_id)",
            ),
        ]
    )
    assert ours["options"] == theirs["options"]
    assert ours["type"] == theirs["type"]


def test_four_processes_migrating_at_once_all_succeed(server_url: str) -> None:
    url = fresh_database(server_url, migrate=False)
    env = {**os.environ, "LEDGER_DATABASE_URL": url}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "ledger", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
    assert tables(url) >= LEDGER_TABLES
    with psycopg.connect(url) as conn:
        versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert versions == [(migrations.head_revision(),)]
    assert autogenerate_diff(url) == []
