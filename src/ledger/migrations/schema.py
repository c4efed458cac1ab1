"""The relational schema the ledger owns, as SQLAlchemy metadata (what alembic compares to)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    Uuid,
)

metadata = MetaData()

events = Table(
    "ledger_events",
    metadata,
    Column("originator_id", Uuid, nullable=False),
    Column("originator_version", BigInteger, nullable=False),
    Column("topic", Text),
    Column("state", LargeBinary),
    # bigserial in the database (the library's DDL); its default is not compared.
    Column("notification_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("originator_id", "originator_version", name="ledger_events_pkey"),
    Index("ledger_events_notification_id_idx", "notification_id", unique=True),
)
"""The eventsourcing application recorder's table, exactly as the library lays it out."""

credentials = Table(
    "ledger_credentials",
    metadata,
    Column("credential_id", Uuid, primary_key=True),
    Column("token_hash", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("token_prefix", Text, nullable=False),
    Column("name", Text),
    Column("user_id", Uuid),
    Column("workspace_id", Uuid),
    Column("daemon_id", Text),
    Column("install_token_id", Uuid),
    Column("created_by", Uuid),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_reason", Text),
    Column("consumed_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    Column("version", BigInteger, nullable=False),
    Index("ledger_credentials_user_idx", "user_id", "created_at"),
    Index("ledger_credentials_workspace_idx", "workspace_id", "kind", "created_at"),
    Index("ledger_credentials_issuer_idx", "workspace_id", "created_by"),
)
"""The inline auth lookup table (written in the event-insert transaction)."""
