"""Databases on the suite's PostgreSQL server."""

from __future__ import annotations

import uuid

from ledger.adapters import migrations
from ledger.adapters.postgres import ensure_database, with_database


def fresh_database(server_url: str, *, migrate: bool = True) -> str:
    """A new, empty database on the session's server (migrated to head unless told not to)."""
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    ensure_database(server_url, name)
    url = with_database(server_url, name)
    if migrate:
        migrations.upgrade(url)
    return url
