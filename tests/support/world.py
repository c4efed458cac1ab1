"""The acceptance tests' cast: an operator who creates users, and a workspace "world" made
over HTTP (owner, admin, member, outsider, a daemon token and an unconsumed install token)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ledger.bootstrap import PostgresLedger
from ledger.domain.clock import ManualClock
from tests.acceptance.service import Api, TokenLog


@dataclass(frozen=True)
class Caller:
    """A user: their id and a personal access token."""

    user_id: str
    token: str


class Operator:
    def __init__(self, ledger: PostgresLedger, clock: ManualClock, tokens: TokenLog) -> None:
        self.ledger = ledger
        self.clock = clock
        self.tokens = tokens

    def user(self, name: str = "user", *, at: datetime | None = None) -> Caller:
        """A new user with a fresh 90-day token (minted at ``at``: in the past for an expired
        one)."""
        self.clock.set(at or datetime.now(UTC))
        created = self.ledger.create_user(name)
        self.tokens.add(created.token)
        return Caller(str(created.user_id), created.token)


@dataclass(frozen=True)
class World:
    """A workspace with an owner, an admin and a member, a user outside it, a daemon token
    (minted through the owner's install token) and an unconsumed install token."""

    workspace_id: str
    owner: Caller
    admin: Caller
    member: Caller
    outsider: Caller
    daemon_token: str
    daemon_token_id: str
    install_token: str
    install_token_id: str


def build_world(api: Api, operator: Operator) -> World:
    owner, admin, member, outsider = (
        operator.user(n) for n in ("owner", "admin", "member", "outsider")
    )
    created = api.post("/api/workspaces", token=owner.token, json={"name": "acme"})
    assert created.status_code == 201, created.text
    workspace_id = created.json()["id"]
    for user, role in ((admin, "admin"), (member, "member")):
        added = api.post(
            f"/api/workspaces/{workspace_id}/members",
            token=owner.token,
            json={"user_id": user.user_id, "role": role},
        )
        assert added.status_code == 201, added.text
    used = api.post(f"/api/workspaces/{workspace_id}/install-tokens", token=owner.token)
    exchanged = api.post(
        "/api/install-tokens/exchange", json={"token": used.json()["token"], "daemon_id": "box"}
    )
    assert exchanged.status_code == 200, exchanged.text
    whoami = api.get("/api/daemon/whoami", token=exchanged.json()["token"])
    unused = api.post(f"/api/workspaces/{workspace_id}/install-tokens", token=owner.token)
    return World(
        workspace_id=workspace_id,
        owner=owner,
        admin=admin,
        member=member,
        outsider=outsider,
        daemon_token=exchanged.json()["token"],
        daemon_token_id=whoami.json()["token_id"],
        install_token=unused.json()["token"],
        install_token_id=unused.json()["id"],
    )
