"""Projection errors: the events a projection could not project as they are, by position.

One row per projection and event: an event projected in a safe form (``projected`` true: text
with control characters replaced, cut short, or of the wrong type) or not projected at all
(``projected`` false: undecodable, an unknown event type, an id or instant of the wrong type, a
row the database refused). Derived like the projection's own rows: written in the same
transaction as them and the tracking position, emptied by a rebuild (docs/adr/0016).

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_projection_errors",
        sa.Column("projection", sa.Text(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("stream_id", sa.Uuid()),
        sa.Column("stream_version", sa.BigInteger()),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("projected", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("projection", "position", name="ledger_projection_errors_pkey"),
    )


def downgrade() -> None:
    op.drop_table("ledger_projection_errors")
