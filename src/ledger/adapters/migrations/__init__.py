"""Alembic migrations of every table the ledger owns, and the calls that run them.

``upgrade`` is safe to run repeatedly and from several processes at once: ``env.py`` holds a
PostgreSQL advisory lock for the whole run, so a second process waits and then finds the
schema already at head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

HERE = Path(__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    """An alembic configuration pointed at ``database_url`` (a libpq ``postgresql://`` URL)."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    config.attributes["database_url"] = database_url
    return config


def head_revision() -> str:
    """The newest migration this version of the ledger ships."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None
    return head


def upgrade(database_url: str, revision: str = "head") -> None:
    """Create or upgrade the ledger's tables."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Undo migrations down to ``revision``."""
    command.downgrade(alembic_config(database_url), revision)
