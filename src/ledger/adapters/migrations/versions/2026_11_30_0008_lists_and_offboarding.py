"""Indexes for the lists and bulk revocations of the credentials table.

- ``ledger_credentials_live_issuer_idx`` (``created_by``, unrevoked rows only): offboarding finds
  every daemon and install token a user issued, in any workspace, without a scan (the issuer
  index of 0001 leads with the workspace).
- ``ledger_credentials_expiring_idx`` (``expires_at``, rows neither revoked nor consumed): the
  expiring report and the ``/metrics`` gauge of tokens expiring within 7 days read a range of it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS ledger_credentials_live_issuer_idx "
        "ON ledger_credentials (created_by) WHERE revoked_at IS NULL"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ledger_credentials_expiring_idx "
        "ON ledger_credentials (expires_at) WHERE revoked_at IS NULL AND consumed_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ledger_credentials_expiring_idx")
    op.execute("DROP INDEX IF EXISTS ledger_credentials_live_issuer_idx")
