"""The write-batch function's frozen SQL (a migration) agrees with the recorder's JSON rows.

``ledger.adapters.recorder`` sends each credentials row as a JSON array in ``WRITE_COLUMNS``
order; the function, frozen in the newest migration that defines it, reads them by position. A
column added to ``WRITE_COLUMNS`` without a migration that replaces the function fails here.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from ledger.adapters.credentials_table import MUTABLE_COLUMNS, SQL_TYPES, WRITE_COLUMNS

VERSIONS = Path(__file__).parents[2] / "src" / "ledger" / "adapters" / "migrations" / "versions"


def newest_definition() -> str:
    """``WRITE_BATCH`` of the newest migration (by file name) that defines it."""
    for path in sorted(VERSIONS.glob("*.py"), reverse=True):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = ModuleType(path.stem)
        spec.loader.exec_module(module)
        text = getattr(module, "WRITE_BATCH", None)
        if isinstance(text, str):
            return text
    raise AssertionError("no migration defines the write-batch function")


def test_json_positions_match_the_written_columns_and_their_types() -> None:
    text = newest_definition()
    fields = re.findall(r"\(?r->>(\d+)\)?(?:::(\w+))? AS (\w+)", text)
    assert [(int(i), name) for i, _, name in fields] == list(enumerate(WRITE_COLUMNS))
    for _, cast, name in fields:
        assert (cast or "text") == SQL_TYPES[name], name


def test_the_upsert_writes_every_column_and_updates_the_mutable_ones() -> None:
    text = " ".join(newest_definition().split())
    insert = re.search(r"INSERT INTO ledger_credentials \(([^)]*)\)", text)
    assert insert is not None
    assert [c.strip() for c in insert.group(1).split(",")] == list(WRITE_COLUMNS)
    updates = re.search(r"DO UPDATE SET (.*?) WHERE", text)
    assert updates is not None
    assert re.findall(r"(\w+) = EXCLUDED\.\1", updates.group(1)) == list(MUTABLE_COLUMNS)
