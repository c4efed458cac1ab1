"""Alembic environment: online migrations only, serialized by an advisory lock."""

from __future__ import annotations

import psycopg
from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from ledger.adapters.migrations.schema import metadata

MIGRATION_LOCK_KEY = 0x1ED6E4  # any constant shared by every `ledger migrate`


def run_migrations_online() -> None:
    database_url: str = context.config.attributes["database_url"]
    # psycopg parses the URL (unix-socket URLs included); SQLAlchemy only drives the connection.
    engine = create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(database_url), poolclass=NullPool
    )
    with engine.connect() as connection:
        # Several processes may migrate at once: one at a time, the rest then find nothing to do.
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()
        try:
            context.configure(connection=connection, target_metadata=metadata)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
    engine.dispose()


run_migrations_online()
