"""The benchmark's bulk seeder writes events and rows the ledger reads as its own.

If an event class changes, the seeder's templates must follow; these tests catch it before a
benchmark run measures a store the ledger would not accept.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from bench.seed import CredentialSeeder, SeedSpec, users

from ledger.bootstrap import PostgresLedger
from ledger.domain import TokenKind
from ledger.domain.errors import InstallTokenAlreadyUsed, InvalidToken
from tests.support.principals import START, new_user

AT = START - timedelta(minutes=1)


def test_seeded_tokens_replay_to_their_rows_and_verify(
    ledger: PostgresLedger, database_url: str
) -> None:
    seeder = CredentialSeeder(ledger, database_url)
    seeded = seeder.seed(
        SeedSpec(
            kind=TokenKind.PERSONAL_ACCESS_TOKEN,
            count=40,
            at=AT,
            expires_at=AT + timedelta(days=30),
            users=users(3),
            revoke_every=4,
            raw_every=1,
        )
    )
    assert (seeded.credentials, seeded.events) == (40, 50)
    seeder.check_sample(seeded.ids, size=40)  # hash chains and rows, every one
    assert ledger.verify(seeded.raw[0]).credential_id == seeded.ids[0]
    with pytest.raises(InvalidToken):
        ledger.verify(seeded.raw[3])  # every fourth is revoked


def test_seeded_install_tokens_exchange_once(ledger: PostgresLedger, database_url: str) -> None:
    me, _ = new_user(ledger)
    workspace = ledger.create_workspace(me, "seeded")
    seeded = CredentialSeeder(ledger, database_url).seed(
        SeedSpec(
            kind=TokenKind.INSTALL_TOKEN,
            count=2,
            at=AT,
            expires_at=AT + timedelta(minutes=15),
            workspace_id=workspace.id,
            issuer_id=me.user_id,
            raw_every=1,
        )
    )
    exchanged = ledger.exchange_install_token(seeded.raw[0], "daemon")
    assert exchanged.workspace_id == workspace.id
    with pytest.raises(InstallTokenAlreadyUsed):
        ledger.exchange_install_token(seeded.raw[0], "another daemon")


def test_seeded_tokens_near_expiry_renew(ledger: PostgresLedger, database_url: str) -> None:
    me, _ = new_user(ledger)
    seeded = CredentialSeeder(ledger, database_url).seed(
        SeedSpec(
            kind=TokenKind.PERSONAL_ACCESS_TOKEN,
            count=1,
            at=AT,
            expires_at=AT + timedelta(days=3),
            users=[me.user_id],
            raw_every=1,
        )
    )
    assert ledger.renew_personal_access_token(seeded.raw[0]).renewed
    ledger.revoke_personal_access_token(me, seeded.ids[0])
    with pytest.raises(InvalidToken):
        ledger.verify(seeded.raw[0])
