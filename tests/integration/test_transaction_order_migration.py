"""Migration 0004 on a database written before it: nothing lost or reordered for its readers."""

from __future__ import annotations

from uuid import uuid4

import psycopg

from ledger.adapters import migrations
from ledger.adapters.log_order import LogPosition
from ledger.adapters.recorder import BatchCommand, batch_params
from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain import Actor, Credential, TokenKind, User
from ledger.domain.credential import INITIAL_PAT_LIFETIME
from ledger.domain.credential_row import CredentialRow
from ledger.domain.tokens import issue
from tests.integration.test_projections import snapshot
from tests.support.databases import fresh_database
from tests.support.principals import START, new_user

OLD_WRITE_BATCH = "SELECT * FROM ledger_write_batch(%s, %s, '5s', 'old')"


def old_commands(ledger: PostgresLedger, users: int) -> list[BatchCommand]:
    """Commands as the ledger built them before migration 0004: a user and their first token."""
    commands = []
    for n in range(users):
        operator = Actor.system("operator")
        user = User.create(id=uuid4(), name=f"old-{n}", email=None, at=START, actor=operator)
        token = issue(TokenKind.PERSONAL_ACCESS_TOKEN)
        credential = Credential.mint_personal_access_token(
            token_hash=token.token_hash,
            token_prefix=token.display_prefix,
            name="initial token",
            user_id=user.id,
            expires_at=START + INITIAL_PAT_LIFETIME,
            at=START,
            actor=operator,
        )
        events = [*user.collect_events(), *credential.collect_events()]
        stored = [ledger.mapper.to_stored_event(e) for e in events]
        commands.append(BatchCommand(stored, [CredentialRow.of(credential)]))
    return commands


def write_old(url: str, commands: list[BatchCommand]) -> None:
    """Through the write function of migration 0003 (under the table lock, with NOTIFY)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for command in commands:
            conn.execute(OLD_WRITE_BATCH, batch_params([command])[:2])


def test_a_database_written_before_0004_keeps_its_order_positions_and_tracking(
    server_url: str,
) -> None:
    url = fresh_database(server_url, migrate=False)
    migrations.upgrade(url, "0003")
    ledger = build_ledger(url, settings=Settings(pool_size=2))
    try:
        write_old(url, old_commands(ledger, 6))  # 12 events, notification ids 1..12
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT setval('ledger_events_notification_id_seq', 20)")  # a gap
        write_old(url, old_commands(ledger, 2))  # 21..24
        with psycopg.connect(url, autocommit=True) as conn:
            # the audit trail had projected up to notification id 10 under the old code
            conn.execute(
                "INSERT INTO ledger_audit_tracking (application_name, notification_id) "
                "VALUES ('Ledger', 10)"
            )
        migrations.upgrade(url)
        with psycopg.connect(url) as conn:
            tracking = conn.execute(
                "SELECT transaction_id::text, notification_id, position FROM ledger_audit_tracking"
            ).fetchone()
            old = conn.execute("SELECT DISTINCT transaction_id::text FROM ledger_events").fetchall()
        assert tracking == ("0", 10, 10)
        assert old == [("0",)]
        with psycopg.connect(url, autocommit=True) as conn:
            # The test has no audit rows of the old code: start it over, projecting below.
            conn.execute("DELETE FROM ledger_audit_tracking")
    finally:
        ledger.close()

    ledger = build_ledger(url, settings=Settings(pool_size=2))
    try:
        # What the audit trail had under the old code: the events up to notification id 10.
        ledger.projections.catch_up(["credentials"])
        ledger.projections.catch_up(["audit_trail"], until=LogPosition(0, 10))
        me, _ = new_user(ledger)
        for n in range(3):
            ledger.mint_personal_access_token(me, f"new-{n}")
        ledger.projections.wait_current()
        resumed = snapshot(url)
        positions = [row[0] for row in resumed["audit"]]
        # Old events keep their notification ids as positions (cursors handed out stay
        # valid); new ones count on after the last old one: the new user 25, their initial
        # token 26, then 27..29. (Each old command is a user_created and its token's minted.)
        old_positions = [*range(1, 13), 21, 22, 23, 24]
        assert positions == [*old_positions, 25, 26, 27, 28, 29]
        assert len(resumed["credentials"]) == 8 + 4
        ledger.projections.rebuild()
        assert snapshot(url) == resumed
        page = ledger.audit.events(cursor="12", limit=3)
        assert [e.position for e in page.events] == [21, 22, 23]
    finally:
        ledger.close()
