"""Opening the ledger from settings: find the database, check its schema, build the application."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg

from ledger.adapters import migrations
from ledger.adapters.postgres import database_url, translate_store_errors
from ledger.application import Ledger
from ledger.config import Settings
from ledger.domain.clock import Clock
from ledger.domain.errors import SchemaMissing


def check_schema(url: str) -> None:
    """Raise ``SchemaMissing`` unless the database is migrated to this version's head."""
    with translate_store_errors(), psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT to_regclass('alembic_version')").fetchone()
        version = None
        if row is not None and row[0] is not None:
            found = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            version = found[0] if found else None
    if version != migrations.head_revision():
        msg = f"the database schema is at {version or 'nothing'}: run `ledger migrate` first"
        raise SchemaMissing(msg)


@contextlib.contextmanager
def open_ledger(settings: Settings, *, clock: Clock | None = None) -> Iterator[Ledger]:
    """A ready ``Ledger``; closed (and an embedded server stopped) on exit.

    With no ``LEDGER_DATABASE_URL`` the embedded server is used and migrated on first use;
    a configured server must have been migrated with ``ledger migrate``.
    """
    with database_url(settings) as url:
        if settings.database_url is None:
            migrations.upgrade(url)
        check_schema(url)
        ledger = Ledger(url, settings=settings, clock=clock)
        try:
            yield ledger
        finally:
            ledger.close()
