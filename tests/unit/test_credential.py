"""The credential aggregate's rules, with time passed in (no clock, no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from ledger.domain import Actor, Credential, RevocationReason, TokenKind
from ledger.domain.errors import (
    InstallTokenAlreadyUsed,
    InvalidInstallToken,
    NotRenewable,
    TokenNoLongerValid,
)
from ledger.domain.tokens import issue

T0 = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)
USER = uuid4()
ACTOR = Actor.user(USER)


def pat(expires_at: datetime | None, at: datetime = T0) -> Credential:
    token = issue(TokenKind.PERSONAL_ACCESS_TOKEN)
    return Credential.mint_personal_access_token(
        token_hash=token.token_hash,
        token_prefix=token.display_prefix,
        name="laptop",
        user_id=USER,
        expires_at=expires_at,
        at=at,
        actor=ACTOR,
    )


def install_token(at: datetime = T0) -> Credential:
    token = issue(TokenKind.INSTALL_TOKEN)
    return Credential.mint_install_token(
        token_hash=token.token_hash,
        token_prefix=token.display_prefix,
        workspace_id=uuid4(),
        issuer_id=USER,
        at=at,
        actor=ACTOR,
    )


def test_credential_id_is_derived_from_the_token_hash() -> None:
    token = issue(TokenKind.PERSONAL_ACCESS_TOKEN)
    assert Credential.create_id(token.token_hash) == Credential.create_id(token.token_hash)
    assert Credential.create_id(token.token_hash) != Credential.create_id("0" * 64)


def test_usable_iff_now_is_before_expiry() -> None:
    expires = T0 + timedelta(days=1)
    credential = pat(expires)
    assert credential.is_usable(expires - timedelta(microseconds=1))
    assert not credential.is_usable(expires)
    assert not credential.is_usable(expires + timedelta(microseconds=1))


def test_not_usable_before_it_was_minted() -> None:
    credential = pat(None)
    assert not credential.is_usable(T0 - timedelta(microseconds=1))
    assert credential.is_usable(T0)


def test_revocation_takes_effect_at_its_instant() -> None:
    credential = pat(None)
    revoked_at = T0 + timedelta(hours=1)
    credential.revoke(reason=RevocationReason.USER_REQUEST, at=revoked_at, actor=ACTOR)
    assert credential.is_usable(revoked_at - timedelta(microseconds=1))
    assert not credential.is_usable(revoked_at)


def test_second_revocation_changes_nothing() -> None:
    credential = pat(None)
    assert credential.revoke(reason=RevocationReason.USER_REQUEST, at=T0, actor=ACTOR)
    version = credential.version
    assert not credential.revoke(reason=RevocationReason.ADMIN, at=T0, actor=ACTOR)
    assert credential.version == version
    assert credential.revoked_reason is RevocationReason.USER_REQUEST


def test_renewal_with_exactly_seven_days_left_extends_to_now_plus_90_days() -> None:
    credential = pat(T0 + timedelta(days=7))
    outcome = credential.renew(at=T0, actor=ACTOR)
    assert outcome.renewed
    assert outcome.expires_at == T0 + timedelta(days=90)
    assert credential.expires_at == T0 + timedelta(days=90)
    renewed = credential.pending_events[-1]
    assert isinstance(renewed, Credential.Renewed)
    assert renewed.expires_at_before == T0 + timedelta(days=7)
    assert renewed.expires_at_after == T0 + timedelta(days=90)


def test_renewal_with_seven_days_and_one_second_left_is_refused_politely() -> None:
    expires = T0 + timedelta(days=7, seconds=1)
    credential = pat(expires)
    outcome = credential.renew(at=T0, actor=ACTOR)
    assert not outcome.renewed
    assert outcome.expires_at == expires
    assert len(credential.pending_events) == 1


def test_renewal_after_expiry_reports_no_longer_valid() -> None:
    credential = pat(T0 + timedelta(days=1))
    with pytest.raises(TokenNoLongerValid):
        credential.renew(at=T0 + timedelta(days=1), actor=ACTOR)


def test_renewal_of_a_revoked_token_reports_no_longer_valid() -> None:
    credential = pat(T0 + timedelta(days=1))
    credential.revoke(reason=RevocationReason.USER_REQUEST, at=T0, actor=ACTOR)
    with pytest.raises(TokenNoLongerValid):
        credential.renew(at=T0, actor=ACTOR)


def test_never_expiring_token_is_never_renewed() -> None:
    credential = pat(None)
    outcome = credential.renew(at=T0 + timedelta(days=3650), actor=ACTOR)
    assert outcome.renewed is False
    assert outcome.expires_at is None


def test_only_personal_access_tokens_can_be_renewed() -> None:
    with pytest.raises(NotRenewable):
        install_token().renew(at=T0, actor=ACTOR)


def test_install_token_lives_fifteen_minutes() -> None:
    credential = install_token()
    assert credential.expires_at == T0 + timedelta(minutes=15)


def test_install_token_is_exchangeable_at_14_59() -> None:
    credential = install_token()
    credential.consume(
        daemon_token_id=uuid4(), at=T0 + timedelta(minutes=14, seconds=59), actor=ACTOR
    )
    assert credential.consumed_at == T0 + timedelta(minutes=14, seconds=59)


def test_install_token_is_not_exchangeable_at_15_00() -> None:
    credential = install_token()
    with pytest.raises(InvalidInstallToken):
        credential.consume(daemon_token_id=uuid4(), at=T0 + timedelta(minutes=15), actor=ACTOR)
    assert credential.consumed_at is None


def test_second_exchange_reports_already_used() -> None:
    credential = install_token()
    credential.consume(daemon_token_id=uuid4(), at=T0, actor=ACTOR)
    with pytest.raises(InstallTokenAlreadyUsed):
        credential.consume(daemon_token_id=uuid4(), at=T0, actor=ACTOR)


def test_exchange_after_use_and_expiry_still_reports_already_used() -> None:
    credential = install_token()
    credential.consume(daemon_token_id=uuid4(), at=T0, actor=ACTOR)
    with pytest.raises(InstallTokenAlreadyUsed):
        credential.check_exchangeable(T0 + timedelta(hours=1))


def test_revoked_install_token_is_invalid() -> None:
    credential = install_token()
    credential.revoke(reason=RevocationReason.MEMBER_REMOVED, at=T0, actor=ACTOR)
    with pytest.raises(InvalidInstallToken):
        credential.check_exchangeable(T0)


def test_a_personal_access_token_cannot_be_exchanged() -> None:
    with pytest.raises(InvalidInstallToken):
        pat(None).check_exchangeable(T0)


def test_daemon_token_inherits_workspace_and_issuer_from_its_install_token() -> None:
    install = install_token()
    token = issue(TokenKind.DAEMON_TOKEN)
    daemon = Credential.mint_daemon_token(
        token_hash=token.token_hash,
        token_prefix=token.display_prefix,
        install_token=install,
        daemon_id="box-1",
        at=T0,
        actor=Actor.daemon(Credential.create_id(token.token_hash)),
    )
    assert daemon.kind is TokenKind.DAEMON_TOKEN
    assert daemon.workspace_id == install.workspace_id
    assert daemon.created_by == USER
    assert daemon.install_token_id == install.id
    assert daemon.expires_at is None
