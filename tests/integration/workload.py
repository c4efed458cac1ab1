"""A random but reproducible credential workload, for projection and audit tests.

Every operation of the contract that writes an event is drawn: users, personal access tokens
(minted, renewed, revoked), workspaces, members (added, role changed, removed, left, with their
cascades), install tokens (minted, exchanged, replayed, left to expire), daemon tokens
(revoked). The clock moves forward between operations, sometimes by days, so expiries and
renewal windows are crossed.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from ledger.bootstrap import PostgresLedger
from ledger.domain import Workspace
from ledger.domain.clock import ManualClock
from ledger.domain.errors import LedgerError
from tests.support.principals import UserPrincipal, new_user


@dataclass
class Workload:
    """What a run created, for the tests to query."""

    users: list[UserPrincipal] = field(default_factory=list)
    workspaces: list[UUID] = field(default_factory=list)
    pats: list[tuple[UUID, str]] = field(default_factory=list)
    install_tokens: list[tuple[UUID, str]] = field(default_factory=list)
    daemon_tokens: list[tuple[UUID, UUID]] = field(default_factory=list)
    instants: list[datetime] = field(default_factory=list)


def run_workload(
    ledger: PostgresLedger, clock: ManualClock, rng: random.Random, steps: int
) -> Workload:
    """Run ``steps`` random operations (each may be refused by a rule: that is part of it)."""
    w = Workload()
    for _ in range(2):
        w.users.append(new_user(ledger)[0])
    for _ in range(steps):
        clock.advance(
            timedelta(seconds=rng.choice([1, 30, 600, 3600]))
            if rng.random() < 0.8
            else timedelta(days=rng.choice([1, 3, 8, 30]))
        )
        w.instants.append(clock.now())
        # A refused operation (not an admin any more, token expired, ...) is part of it.
        with contextlib.suppress(LedgerError):
            _step(ledger, rng, w)
    return w


def _member_of(
    ledger: PostgresLedger, rng: random.Random, w: Workload, workspace: UUID
) -> UserPrincipal:
    """Mostly a member of the workspace (so that most operations pass), sometimes anyone."""
    aggregate: object = ledger.repository.get(workspace)
    assert isinstance(aggregate, Workspace)
    members = [u for u in w.users if u.user_id in aggregate.members]
    return rng.choice(members) if members and rng.random() < 0.85 else rng.choice(w.users)


def _step(ledger: PostgresLedger, rng: random.Random, w: Workload) -> None:  # noqa: PLR0912 - one branch per operation
    user = rng.choice(w.users)
    op = rng.random()
    if op < 0.08 or not w.workspaces:
        if rng.random() < 0.5:
            w.users.append(new_user(ledger)[0])
        else:
            w.workspaces.append(ledger.create_workspace(user, "ws").id)
    elif op < 0.25:
        days = rng.choice([None, 1, 5, 10, 90])
        minted = ledger.mint_personal_access_token(user, "pat", days)
        w.pats.append((minted.info.id, minted.token))
    elif op < 0.32 and w.pats:
        ledger.renew_personal_access_token(rng.choice(w.pats[-3:])[1])
    elif op < 0.38 and w.pats:
        token_id, _ = rng.choice(w.pats)
        ledger.revoke_personal_access_token(user, token_id)
    elif op < 0.50:
        workspace = rng.choice(w.workspaces)
        user = _member_of(ledger, rng, w, workspace)
        other = rng.choice(w.users)
        ledger.add_member(user, workspace, other.user_id, rng.choice(["admin", "member", "owner"]))
    elif op < 0.55:
        workspace = rng.choice(w.workspaces)
        user = _member_of(ledger, rng, w, workspace)
        other = _member_of(ledger, rng, w, workspace)
        ledger.change_role(user, workspace, other.user_id, rng.choice(["admin", "member"]))
    elif op < 0.72:
        workspace = rng.choice(w.workspaces)
        user = _member_of(ledger, rng, w, workspace)
        minted_install = ledger.mint_install_token(user, workspace)
        w.install_tokens.append((minted_install.id, minted_install.token))
    elif op < 0.85 and w.install_tokens:
        _, raw = rng.choice(w.install_tokens[-3:])  # recent: not yet expired
        exchanged = ledger.exchange_install_token(raw, f"daemon-{rng.randrange(1000)}")
        w.daemon_tokens.append((exchanged.token_id, exchanged.workspace_id))
        if len(w.daemon_tokens) % 4 == 1:  # now and then a replay (no draw: the run is the same)
            with contextlib.suppress(LedgerError):
                ledger.exchange_install_token(raw, "replayed")
    elif op < 0.90 and w.daemon_tokens:
        token_id, workspace = rng.choice(w.daemon_tokens)
        user = _member_of(ledger, rng, w, workspace)
        ledger.revoke_daemon_token(user, workspace, token_id)
    elif op < 0.96:
        workspace = rng.choice(w.workspaces)
        user = _member_of(ledger, rng, w, workspace)
        other = rng.choice(w.users)
        ledger.remove_member(user, workspace, other.user_id)
    else:
        workspace = rng.choice(w.workspaces)
        ledger.leave_workspace(_member_of(ledger, rng, w, workspace), workspace)
