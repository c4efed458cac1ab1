"""Token limits: what counts toward a limit, and the check at its edge. Pure domain, no store."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from uuid import uuid4

import pytest

from ledger.domain.credential_row import CredentialRow
from ledger.domain.errors import TokenLimitReached
from ledger.domain.limits import LimitSettings, TokenLimit, check_under_limit, counts_toward
from ledger.domain.model import TokenKind
from tests.support.principals import START

USER = uuid4()
WORKSPACE = uuid4()


def row(kind: TokenKind, **changes: object) -> CredentialRow:
    base = CredentialRow(
        credential_id=uuid4(),
        token_hash="h",
        kind=kind.value,
        token_prefix="p",
        name=None,
        user_id=USER if kind is TokenKind.PERSONAL_ACCESS_TOKEN else None,
        workspace_id=None if kind is TokenKind.PERSONAL_ACCESS_TOKEN else WORKSPACE,
        daemon_id=None,
        install_token_id=None,
        created_by=USER,
        created_at=START,
        expires_at=None,
        revoked_at=None,
        revoked_reason=None,
        consumed_at=None,
        version=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


PATS = TokenLimit.personal_access_tokens(USER, 3, START)
DAEMONS = TokenLimit.daemon_tokens(WORKSPACE, 3, START)


def test_a_usable_personal_access_token_counts() -> None:
    assert counts_toward(row(TokenKind.PERSONAL_ACCESS_TOKEN), PATS)
    later = START + timedelta(days=1)
    assert counts_toward(row(TokenKind.PERSONAL_ACCESS_TOKEN, expires_at=later), PATS)


def test_a_token_minted_a_moment_later_by_another_clock_counts() -> None:
    later = START + timedelta(seconds=1)
    assert counts_toward(row(TokenKind.PERSONAL_ACCESS_TOKEN, created_at=later), PATS)


def test_an_expired_personal_access_token_does_not_count_from_its_expiry_on() -> None:
    assert not counts_toward(row(TokenKind.PERSONAL_ACCESS_TOKEN, expires_at=START), PATS)


def test_revoked_tokens_do_not_count() -> None:
    assert not counts_toward(row(TokenKind.PERSONAL_ACCESS_TOKEN, revoked_at=START), PATS)
    assert not counts_toward(row(TokenKind.DAEMON_TOKEN, revoked_at=START), DAEMONS)


def test_another_users_or_workspaces_tokens_do_not_count() -> None:
    assert not counts_toward(row(TokenKind.PERSONAL_ACCESS_TOKEN, user_id=uuid4()), PATS)
    assert not counts_toward(row(TokenKind.DAEMON_TOKEN, workspace_id=uuid4()), DAEMONS)


def test_other_kinds_do_not_count() -> None:
    assert not counts_toward(row(TokenKind.DAEMON_TOKEN, user_id=USER), PATS)
    assert not counts_toward(row(TokenKind.INSTALL_TOKEN), DAEMONS)
    assert not counts_toward(row(TokenKind.PERSONAL_ACCESS_TOKEN, workspace_id=WORKSPACE), DAEMONS)


def test_an_unrevoked_daemon_token_counts_whatever_its_age() -> None:
    assert counts_toward(
        row(TokenKind.DAEMON_TOKEN, created_at=START - timedelta(days=900)), DAEMONS
    )


def test_one_more_fits_below_the_maximum_and_not_at_it() -> None:
    check_under_limit(2, PATS)
    with pytest.raises(TokenLimitReached):
        check_under_limit(3, PATS)
    with pytest.raises(TokenLimitReached):
        check_under_limit(4, PATS)


def test_a_zero_setting_means_no_limit() -> None:
    none = LimitSettings(personal_access_tokens_per_user=0, daemon_tokens_per_workspace=0)
    assert none.for_personal_access_tokens(USER, START) is None
    assert none.for_daemon_tokens(WORKSPACE, START) is None
    defaults = LimitSettings()
    assert defaults.for_personal_access_tokens(USER, START) == TokenLimit.personal_access_tokens(
        USER, 100, START
    )
    assert defaults.for_daemon_tokens(WORKSPACE, START) == TokenLimit.daemon_tokens(
        WORKSPACE, 1000, START
    )
