"""Member removal and leaving, through HTTP: what the member issued stops working at once."""

from __future__ import annotations

from tests.acceptance.service import Api, error_of, wait_until
from tests.support.world import World


def _issue_through(api: Api, world: World, token: str) -> tuple[str, str]:
    """A daemon token minted through ``token``'s user's install token, and an unconsumed one."""
    path = f"/api/workspaces/{world.workspace_id}/install-tokens"
    used = api.post(path, token=token).json()["token"]
    daemon = api.post(
        "/api/install-tokens/exchange", json={"token": used, "daemon_id": "theirs"}
    ).json()["token"]
    assert api.get("/api/daemon/whoami", token=daemon).status_code == 200
    unused = api.post(path, token=token).json()["token"]
    return daemon, unused


def _assert_cascaded(api: Api, world: World, daemon: str, unused: str) -> None:
    # Every worker refuses the daemon token (the one that served the removal at once, the
    # other within the propagation bound); ask repeatedly so both workers are likely asked.
    for _ in range(6):
        wait_until(
            lambda: api.get("/api/daemon/whoami", token=daemon).status_code == 401,
            what="the cascaded daemon token to be refused",
        )
    whoami = api.get("/api/daemon/whoami", token=daemon)
    assert error_of(whoami) == (401, "invalid token")
    exchange = api.post("/api/install-tokens/exchange", json={"token": unused, "daemon_id": "late"})
    assert error_of(exchange) == (401, "invalid_install_token")
    # What others issued is untouched.
    assert api.get("/api/daemon/whoami", token=world.daemon_token).status_code == 200
    listed = api.get(
        f"/api/workspaces/{world.workspace_id}/daemon-tokens", token=world.owner.token
    ).json()
    revoked = {t["daemon_id"]: t["revoked_at"] for t in listed}
    assert revoked["theirs"] is not None and revoked["box"] is None


def test_member_removal_revokes_what_they_issued(api: Api, world: World) -> None:
    daemon, unused = _issue_through(api, world, world.admin.token)
    remove = f"/api/workspaces/{world.workspace_id}/members/{world.admin.user_id}"
    assert api.delete(remove, token=world.owner.token).status_code == 204
    _assert_cascaded(api, world, daemon, unused)
    # Personal access tokens are account-wide: the removed admin can still call the API.
    assert api.get("/api/me", token=world.admin.token).status_code == 200


def test_leaving_revokes_what_they_issued(api: Api, world: World) -> None:
    daemon, unused = _issue_through(api, world, world.admin.token)
    leave = f"/api/workspaces/{world.workspace_id}/leave"
    assert api.post(leave, token=world.admin.token).status_code == 204
    _assert_cascaded(api, world, daemon, unused)
