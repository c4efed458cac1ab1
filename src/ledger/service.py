"""Opening the ledger from settings: find the database, check its schema, build the application."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg

from ledger import migrations
from ledger.adapters.postgres import EVENTS_TABLE, database_url, translate_store_errors
from ledger.application import Ledger
from ledger.clock import Clock
from ledger.config import Settings
from ledger.errors import SchemaMissing


def check_schema(url: str) -> None:
    """Raise ``SchemaMissing`` unless the ledger's tables exist."""
    with translate_store_errors(), psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (EVENTS_TABLE,)).fetchone()
    if row is None or row[0] is None:
        msg = "the database has no ledger tables: run `ledger migrate` first"
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
