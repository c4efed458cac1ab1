"""The exchange key file: created once with mode 0600, read newest key first, refused when it
holds something that is no key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ledger.adapters.exchange_keys import key_path, load_or_create_keys, new_key_line
from ledger.config import Settings


def test_the_file_is_created_once_with_one_key_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "exchange.key"
    [key] = load_or_create_keys(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_keys(path) == (key,)
    assert [p.name for p in path.parent.iterdir()] == ["exchange.key"]  # no temporary left


def test_keys_are_read_in_file_order_past_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "exchange.key"
    new, old = new_key_line(), new_key_line()
    path.write_text(f"# rotated\n{new}\n  {old}")
    assert load_or_create_keys(path) == (bytes.fromhex(new), bytes.fromhex(old.strip()))


@pytest.mark.parametrize("text", ["", "# only a comment\n", "zz\n", "00" * 16 + "\n"])
def test_a_file_without_a_proper_key_is_refused_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "exchange.key"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"exchange\.key"):
        load_or_create_keys(path)


def test_the_default_place_is_the_data_directory(tmp_path: Path) -> None:
    assert key_path(Settings(data_dir=tmp_path, exchange_key_file=None)) == (
        tmp_path / "exchange.key"
    )
    chosen = tmp_path / "elsewhere.key"
    assert key_path(Settings(data_dir=tmp_path, exchange_key_file=chosen)) == chosen
