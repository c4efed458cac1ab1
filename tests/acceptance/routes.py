"""Every route of the contract (but the lead's audit routes), as data for table-driven tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.acceptance.service import Api
from tests.support.world import Operator, World

CALLERS = ("owner", "admin", "member", "non-member", "daemon token", "install token", "no token")

Outcome = tuple[int, str | None]


def bearer(world: World, caller: str) -> str | None:
    return {
        "owner": world.owner.token,
        "admin": world.admin.token,
        "member": world.member.token,
        "non-member": world.outsider.token,
        "daemon token": world.daemon_token,
        "install token": world.install_token,
        "no token": None,
    }[caller]


@dataclass(frozen=True)
class Route:
    """A route, how to call it well for a given world, and whether it reads a body."""

    method: str
    template: str
    path: Callable[[World, Api, Operator], str]
    body: Callable[[World, Api, Operator], Any] | None = None
    destructive: bool = False
    """Whether a call changes what other callers of the same world would get."""

    @property
    def takes_body(self) -> bool:
        return self.body is not None

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


def _ws(world: World) -> str:
    return f"/api/workspaces/{world.workspace_id}"


def _owners_second_token(world: World, api: Api, _: Operator) -> str:
    minted = api.post("/api/tokens", token=world.owner.token, json={"name": "second"}).json()
    return f"/api/tokens/{minted['id']}"


ROUTES: dict[str, Route] = {
    "me": Route("GET", "/api/me", lambda w, a, o: "/api/me"),
    "mint pat": Route(
        "POST", "/api/tokens", lambda w, a, o: "/api/tokens", lambda w, a, o: {"name": "n"}
    ),
    "list pats": Route("GET", "/api/tokens", lambda w, a, o: "/api/tokens"),
    "revoke pat": Route("DELETE", "/api/tokens/{id}", _owners_second_token),
    "renew": Route(
        "POST", "/api/tokens/current/renew", lambda w, a, o: "/api/tokens/current/renew"
    ),
    "create workspace": Route(
        "POST", "/api/workspaces", lambda w, a, o: "/api/workspaces", lambda w, a, o: {"name": "w"}
    ),
    "list members": Route(
        "GET", "/api/workspaces/{id}/members", lambda w, a, o: f"{_ws(w)}/members"
    ),
    "add member": Route(
        "POST",
        "/api/workspaces/{id}/members",
        lambda w, a, o: f"{_ws(w)}/members",
        lambda w, a, o: {"user_id": o.user("new").user_id, "role": "member"},
    ),
    "change role": Route(
        "PATCH",
        "/api/workspaces/{id}/members/{user_id}",
        lambda w, a, o: f"{_ws(w)}/members/{w.member.user_id}",
        lambda w, a, o: {"role": "admin"},
        destructive=True,
    ),
    "remove member": Route(
        "DELETE",
        "/api/workspaces/{id}/members/{user_id}",
        lambda w, a, o: f"{_ws(w)}/members/{w.member.user_id}",
        destructive=True,
    ),
    "leave": Route(
        "POST", "/api/workspaces/{id}/leave", lambda w, a, o: f"{_ws(w)}/leave", destructive=True
    ),
    "mint install token": Route(
        "POST", "/api/workspaces/{id}/install-tokens", lambda w, a, o: f"{_ws(w)}/install-tokens"
    ),
    "exchange": Route(
        "POST",
        "/api/install-tokens/exchange",
        lambda w, a, o: "/api/install-tokens/exchange",
        lambda w, a, o: {"token": w.install_token, "daemon_id": "m"},
        destructive=True,
    ),
    "list daemon tokens": Route(
        "GET", "/api/workspaces/{id}/daemon-tokens", lambda w, a, o: f"{_ws(w)}/daemon-tokens"
    ),
    "revoke daemon token": Route(
        "DELETE",
        "/api/workspaces/{id}/daemon-tokens/{token_id}",
        lambda w, a, o: f"{_ws(w)}/daemon-tokens/{w.daemon_token_id}",
        destructive=True,
    ),
    "whoami": Route("GET", "/api/daemon/whoami", lambda w, a, o: "/api/daemon/whoami"),
    "healthz": Route("GET", "/healthz", lambda w, a, o: "/healthz"),
    "readyz": Route("GET", "/readyz", lambda w, a, o: "/readyz"),
    "metrics": Route("GET", "/metrics", lambda w, a, o: "/metrics"),
}
