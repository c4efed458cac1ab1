"""Removing a member revokes what they issued in the workspace, in the same atomic commit."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest

from ledger.application import WorkspaceInfo
from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain import Credential, RevocationReason, Role, TokenKind
from ledger.domain.clock import ManualClock
from ledger.domain.errors import InvalidToken, ServiceUnavailable
from tests.clocks import TickingClock
from tests.integration.races import race
from tests.support.principals import START, UserPrincipal, load_credential, new_user

DAEMON = {TokenKind.DAEMON_TOKEN}


def team(ledger: PostgresLedger) -> tuple[UserPrincipal, UserPrincipal, WorkspaceInfo]:
    owner, _ = new_user(ledger, "owner")
    admin, _ = new_user(ledger, "admin")
    workspace = ledger.create_workspace(owner, "acme")
    ledger.add_member(owner, workspace.id, admin.user_id, Role.ADMIN)
    return owner, admin, workspace


def test_removal_revokes_the_members_daemon_and_unused_install_tokens_only(
    ledger: PostgresLedger,
) -> None:
    owner, admin, workspace = team(ledger)
    daemons = [
        ledger.exchange_install_token(ledger.mint_install_token(admin, workspace.id).token, f"d{i}")
        for i in range(3)
    ]
    unused = ledger.mint_install_token(admin, workspace.id)
    owners_daemon = ledger.exchange_install_token(
        ledger.mint_install_token(owner, workspace.id).token, "owners"
    )
    admins_pat = ledger.mint_personal_access_token(admin, "laptop", None)
    other_workspace = ledger.create_workspace(admin, "elsewhere")
    elsewhere = ledger.exchange_install_token(
        ledger.mint_install_token(admin, other_workspace.id).token, "far"
    )

    revoked = ledger.remove_member(owner, workspace.id, admin.user_id)

    assert revoked == 4  # three daemon tokens and the unused install token
    for daemon in daemons:
        with pytest.raises(InvalidToken):
            ledger.verify(daemon.token, DAEMON)
        credential = load_credential(ledger, daemon.token_id)
        assert isinstance(credential, Credential)
        assert credential.revoked_reason is RevocationReason.MEMBER_REMOVED
    unused_credential = load_credential(ledger, unused.id)
    assert isinstance(unused_credential, Credential)
    assert unused_credential.revoked_reason is RevocationReason.MEMBER_REMOVED
    # Untouched: other members' tokens, personal access tokens, other workspaces.
    assert ledger.verify(owners_daemon.token, DAEMON).daemon_id == "owners"
    assert ledger.verify(admins_pat.token).user_id == admin.user_id
    assert ledger.verify(elsewhere.token, DAEMON).daemon_id == "far"
    # The admin's consumed install tokens stay consumed; they are not revoked.
    for listed in ledger.list_daemon_tokens(owner, workspace.id):
        if listed.created_by == admin.user_id:
            assert listed.install_token_id is not None
            install = load_credential(ledger, listed.install_token_id)
            assert isinstance(install, Credential)
            assert install.consumed_at is not None
            assert install.revoked_at is None


def test_leaving_cascades_like_a_removal(ledger: PostgresLedger) -> None:
    _owner, admin, workspace = team(ledger)
    daemon = ledger.exchange_install_token(
        ledger.mint_install_token(admin, workspace.id).token, "d"
    )
    assert ledger.leave_workspace(admin, workspace.id) == 1
    with pytest.raises(InvalidToken):
        ledger.verify(daemon.token, DAEMON)


def test_failure_in_the_middle_of_the_commit_writes_nothing(
    ledger: PostgresLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, admin, workspace = team(ledger)
    daemon = ledger.exchange_install_token(
        ledger.mint_install_token(admin, workspace.id).token, "d"
    )
    unused = ledger.mint_install_token(admin, workspace.id)
    before = {
        i: len(list(ledger.events.get(i))) for i in (workspace.id, daemon.token_id, unused.id)
    }

    # The server fails after the write-batch function has inserted the events and upserted the
    # credentials rows, before COMMIT: the statement around it divides by zero on its result
    # rows (a function scan runs the function to the end before the first row is projected).
    recorder = ledger.recorder
    monkeypatch.setattr(
        recorder,
        "_write_batch",
        "SELECT f.*, 1 / (f.notification_id - f.notification_id) AS boom "
        "FROM ledger_write_batch(%s, %s, %s, %s) AS f",
    )
    with pytest.raises(ServiceUnavailable):
        ledger.remove_member(owner, workspace.id, admin.user_id)
    monkeypatch.undo()

    after = {i: len(list(ledger.events.get(i))) for i in before}
    assert after == before
    assert admin.user_id in [m.user_id for m in ledger.list_members(owner, workspace.id)]
    assert ledger.verify(daemon.token, DAEMON).daemon_id == "d"
    row = ledger.credentials.get(unused.id)
    assert row is not None and row.revoked_at is None

    assert ledger.remove_member(owner, workspace.id, admin.user_id) == 2  # and now it all commits
    with pytest.raises(InvalidToken):
        ledger.verify(daemon.token, DAEMON)


def test_failure_while_preparing_the_cascade_writes_nothing(
    ledger: PostgresLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, admin, workspace = team(ledger)
    daemons = [
        ledger.exchange_install_token(ledger.mint_install_token(admin, workspace.id).token, f"d{i}")
        for i in range(3)
    ]
    calls = 0
    real_revoke = Credential.revoke

    def revoke_then_fail(self: Credential, **kwargs: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("injected failure")
        return real_revoke(self, **kwargs)

    monkeypatch.setattr(Credential, "revoke", revoke_then_fail)
    with pytest.raises(RuntimeError):
        ledger.remove_member(owner, workspace.id, admin.user_id)
    monkeypatch.undo()

    assert admin.user_id in [m.user_id for m in ledger.list_members(owner, workspace.id)]
    for daemon in daemons:
        assert ledger.verify(daemon.token, DAEMON).daemon_id.startswith("d")  # type: ignore[union-attr]


@pytest.fixture
def racing_ledger(database_url: str) -> Iterator[PostgresLedger]:
    app = build_ledger(database_url, settings=Settings(pool_size=4), clock=TickingClock(START))
    try:
        yield app
    finally:
        app.close()


def test_removal_racing_exchanges_leaves_nothing_usable_behind(
    racing_ledger: PostgresLedger,
) -> None:
    """Whatever order the racers commit in, the removed member's install tokens end up consumed
    or revoked, and every daemon token minted through them ends up revoked."""
    ledger = racing_ledger
    exchangers = 4
    with ThreadPoolExecutor(exchangers + 1) as pool:
        for round_ in range(100):
            owner, admin, workspace = team(ledger)
            installs = [ledger.mint_install_token(admin, workspace.id) for _ in range(exchangers)]

            def act(
                i: int,
                *,
                owner: UserPrincipal = owner,
                admin: UserPrincipal = admin,
                workspace_id: UUID = workspace.id,
                tokens: list[str] = [t.token for t in installs],  # noqa: B006 - bound per round
                round_: int = round_,
            ) -> object:
                if i == exchangers:
                    return ledger.remove_member(owner, workspace_id, admin.user_id)
                return ledger.exchange_install_token(tokens[i], f"r{round_}-{i}")

            race(pool, exchangers + 1, act)
            assert ledger.credentials.live_issued_by(workspace.id, admin.user_id) == []
            for daemon in ledger.list_daemon_tokens(owner, workspace.id):
                assert daemon.revoked_at is not None, round_


def test_manual_clock_timestamps_the_cascade(ledger: PostgresLedger, clock: ManualClock) -> None:
    owner, admin, workspace = team(ledger)
    daemon = ledger.exchange_install_token(
        ledger.mint_install_token(admin, workspace.id).token, "d"
    )
    ledger.remove_member(owner, workspace.id, admin.user_id)
    [listed] = ledger.list_daemon_tokens(owner, workspace.id)
    assert listed.id == daemon.token_id
    assert listed.revoked_at == clock.now()
