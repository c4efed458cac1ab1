"""The events table is append-only in the database itself, for superusers too (migration 0005)."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from ledger.adapters import migrations
from ledger.bootstrap import build_ledger
from ledger.config import Settings
from tests.support.databases import fresh_database

REFUSED = [
    "UPDATE ledger_events SET topic = topic",
    "UPDATE ledger_events SET state = state WHERE false",
    "DELETE FROM ledger_events",
    "DELETE FROM ledger_events WHERE notification_id = "
    "(SELECT min(notification_id) FROM ledger_events)",
    "TRUNCATE ledger_events",
    "TRUNCATE ledger_events CASCADE",
    "UPDATE ledger_log_leaves SET leaf_hash = leaf_hash",
    "DELETE FROM ledger_log_leaves",
    "TRUNCATE ledger_log_leaves",
]


@pytest.fixture(scope="module")
def url(server_url: str) -> str:
    """A database of its own holding a few events (the session's user is a superuser)."""
    database = fresh_database(server_url)
    ledger = build_ledger(database, settings=Settings(pool_size=2))
    try:
        ledger.create_user("alice")
    finally:
        ledger.close()
    return database


def count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM ledger_events").fetchone()
    assert row is not None
    return int(row[0])


def is_superuser(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    return bool(row and row[0])


@pytest.mark.parametrize("statement", REFUSED)
def test_a_superuser_cannot_change_or_remove_events(url: str, statement: str) -> None:
    assert is_superuser(url)
    before = count(url)
    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
        conn.execute(statement)
    assert "append-only" in str(info.value)
    assert count(url) == before > 0


def test_replica_mode_does_not_silence_the_triggers(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("SET session_replication_role = replica")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM ledger_events")


def test_appending_still_works(url: str) -> None:
    before = count(url)
    ledger = build_ledger(url, settings=Settings(pool_size=2))
    try:
        ledger.create_user("bob")
    finally:
        ledger.close()
    assert count(url) > before


INSERT = (
    "INSERT INTO ledger_events (originator_id, originator_version, topic, state) "
    "VALUES (%s, 1, 'x', ''::bytea)"
)


def test_a_transaction_takes_back_only_its_own_uncommitted_events(url: str) -> None:
    """The one DELETE that passes (how a write batch refuses a command whole): of rows the
    transaction inserted itself and has not committed. Once committed, a row is refused to
    every transaction, the one that wrote it included."""
    own, committed = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url) as conn:
        conn.execute(INSERT, (committed,))
        conn.commit()
        conn.execute(INSERT, (own,))
        deleted = conn.execute("DELETE FROM ledger_events WHERE originator_id = %s", (own,))
        assert deleted.rowcount == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM ledger_events WHERE originator_id = %s", (committed,))
        conn.rollback()
        # own and committed rows in one statement: refused whole
        conn.execute(INSERT, (own,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "DELETE FROM ledger_events WHERE originator_id = ANY(%s)", ([own, committed],)
            )
        conn.rollback()
    with psycopg.connect(url) as other, pytest.raises(psycopg.errors.InsufficientPrivilege):
        other.execute("DELETE FROM ledger_events WHERE originator_id = %s", (committed,))
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ledger_events WHERE originator_id = ANY(%s)", ([own, committed],)
        ).fetchone()
    assert row == (1,)


def test_only_disabling_the_triggers_allows_a_change(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("ALTER TABLE ledger_events DISABLE TRIGGER USER")
        deleted = conn.execute(
            "DELETE FROM ledger_events WHERE notification_id = "
            "(SELECT max(notification_id) FROM ledger_events)"
        ).rowcount
        conn.rollback()
    assert deleted == 1


def test_downgrade_removes_the_triggers_and_upgrade_restores_them(server_url: str) -> None:
    database = fresh_database(server_url)
    migrations.downgrade(database, "0004")
    with psycopg.connect(database) as conn:
        conn.execute("DELETE FROM ledger_events")  # an ordinary table again
        assert conn.execute("SELECT to_regclass('ledger_log_leaves')").fetchone() == (None,)
    migrations.upgrade(database)
    with psycopg.connect(database) as conn:
        conn.execute(INSERT, (uuid.uuid4(),))  # committed: refused from now on
    with psycopg.connect(database) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM ledger_events")
    with psycopg.connect(database) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE ledger_events SET topic = topic WHERE false")
