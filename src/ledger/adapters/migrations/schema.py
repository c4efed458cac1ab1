"""The relational schema the ledger owns, as SQLAlchemy metadata (what alembic compares to)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, base
from sqlalchemy.types import UserDefinedType

metadata = MetaData()


class Xid8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id (``xid8``), which SQLAlchemy does not know."""

    cache_ok = True

    def get_col_spec(self, **_: object) -> str:
        return "xid8"


# Reflection (alembic's comparison) then recognizes the type instead of warning about it.
base.ischema_names.setdefault("xid8", Xid8)

events = Table(
    "ledger_events",
    metadata,
    Column("originator_id", Uuid, nullable=False),
    Column("originator_version", BigInteger, nullable=False),
    Column("topic", Text),
    Column("state", LargeBinary),
    # bigserial in the database (the library's DDL); its default is not compared.
    Column("notification_id", BigInteger, nullable=False),
    # pg_current_xact_id() of the writing transaction (0 for rows older than migration 0004);
    # its default is not compared.
    Column("transaction_id", Xid8, nullable=False),
    PrimaryKeyConstraint("originator_id", "originator_version", name="ledger_events_pkey"),
    Index("ledger_events_notification_id_idx", "notification_id", unique=True),
    Index("ledger_events_transaction_order_idx", "transaction_id", "notification_id", unique=True),
)
"""The eventsourcing application recorder's table as the library lays it out, plus the
transaction id that orders the log (``ledger.adapters.log_order``)."""

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
    # What the token limits count (migration 0007, ADR 0021).
    Index(
        "ledger_credentials_live_pats_idx",
        "user_id",
        "expires_at",
        postgresql_where=text("kind = 'personal_access_token' AND revoked_at IS NULL"),
    ),
    Index(
        "ledger_credentials_live_daemons_idx",
        "workspace_id",
        postgresql_where=text("kind = 'daemon_token' AND revoked_at IS NULL"),
    ),
    Index(
        "ledger_credentials_live_issuer_idx",
        "created_by",
        postgresql_where=text("revoked_at IS NULL"),
    ),
    Index(
        "ledger_credentials_expiring_idx",
        "expires_at",
        postgresql_where=text("revoked_at IS NULL AND consumed_at IS NULL"),
    ),
)
"""The inline auth lookup table (written in the event-insert transaction)."""


def tracking(name: str) -> Table:
    """A projection's position, in eventsourcing's single-row tracking layout."""
    return Table(
        name,
        metadata,
        Column("application_name", Text, primary_key=True),
        Column("notification_id", BigInteger),
        # The rest of the position in the log ordered by transaction (docs/adr/0018).
        Column("transaction_id", Xid8, nullable=False, server_default="0"),
        Column("position", BigInteger, nullable=False, server_default="0"),
    )


credentials_view = Table(
    "ledger_credentials_view",
    metadata,
    Column("credential_id", Uuid, primary_key=True),
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
    Column("daemon_token_id", Uuid),
    Column("version", BigInteger, nullable=False),
    Index("ledger_credentials_view_user_idx", "user_id", "created_at"),
    Index("ledger_credentials_view_workspace_idx", "workspace_id", "kind", "created_at"),
)
"""The Credentials projection (built from events by ``ledger.projections``)."""

credentials_view_tracking = tracking("ledger_credentials_view_tracking")

audit = Table(
    "ledger_audit",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("stream_id", Uuid, nullable=False),
    Column("stream_version", BigInteger, nullable=False),
    Column("credential_id", Uuid),
    Column("kind", Text),
    Column("type", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor_type", Text, nullable=False),
    Column("actor_id", Text, nullable=False),
    Column("workspace_id", Uuid),
    Column("user_id", Uuid),
    Column("data", JSONB, nullable=False),
    Index("ledger_audit_credential_idx", "credential_id", "position"),
    Index("ledger_audit_workspace_idx", "workspace_id", "position"),
    Index("ledger_audit_user_idx", "user_id", "position"),
    Index("ledger_audit_type_idx", "type", "position"),
    Index("ledger_audit_at_idx", "at"),
)
"""The Audit trail projection: one row per credential or membership event."""

audit_tracking = tracking("ledger_audit_tracking")

projection_errors = Table(
    "ledger_projection_errors",
    metadata,
    Column("projection", Text, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("stream_id", Uuid),
    Column("stream_version", BigInteger),
    Column("topic", Text, nullable=False),
    Column("problem", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("projected", Boolean, nullable=False),
    PrimaryKeyConstraint("projection", "position", name="ledger_projection_errors_pkey"),
)
"""Events a projection projected in a safe form or could not project (docs/adr/0016)."""

log_leaves = Table(
    "ledger_log_leaves",
    metadata,
    Column("leaf_index", BigInteger, primary_key=True, autoincrement=False),
    Column("originator_id", Uuid, nullable=False),
    Column("originator_version", BigInteger, nullable=False),
    Column("notification_id", BigInteger, nullable=False),
    Column("leaf_hash", LargeBinary, nullable=False),
    UniqueConstraint("originator_id", "originator_version", name="ledger_log_leaves_event_key"),
)
"""The witnessed leaves of the log's Merkle tree (append-only; ADR 0019)."""
