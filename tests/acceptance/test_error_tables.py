"""Every row of every error table in the contract, through HTTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import httpx
import pytest

from ledger.domain import TokenKind
from ledger.domain.tokens import issue
from tests.acceptance.service import Api, error_of, wait_until
from tests.support.world import Operator, World


def expect(response: httpx.Response, status: int, error: str | None = None) -> None:
    """The answer's status and error code; a 4xx also says why in a ``detail`` sentence that
    holds no secret the request carried."""
    assert (response.status_code, error_of(response)[1]) == (status, error), response.text
    if 400 <= status < 500:
        assert_detail_without_secrets(response)


_TOKEN_TEXT = re.compile(r"(?:mul_|mdt_|mit_)[A-Za-z0-9]{9,}")


def assert_detail_without_secrets(response: httpx.Response) -> None:
    """A 4xx answer carries a non-empty one-sentence ``detail`` beside its ``error``, with no
    token (the bearer, a body's token, or anything token-shaped beyond a display prefix)."""
    detail = response.json().get("detail")
    assert isinstance(detail, str) and detail.strip(), (response.request.url, response.text)
    assert "\n" not in detail
    sent = response.request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    body = response.request.content.decode("utf-8", "replace")
    for secret in (sent, *_TOKEN_TEXT.findall(body)):
        assert len(secret) <= 12 or secret not in detail, detail
    assert _TOKEN_TEXT.search(detail) is None, detail


def unknown_token(kind: TokenKind) -> str:
    """Well formed, checksum right, never stored."""
    return issue(kind).raw


# ----------------------------------------------------------- errors common to authenticated routes


@pytest.mark.parametrize(
    "authorization", [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Token abc", "mul_x"]
)
def test_no_bearer_credential_is_missing_authorization(api: Api, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = api.get("/api/me", headers=headers)
    expect(response, 401, "missing authorization")
    assert response.headers["www-authenticate"] == "Bearer"


def test_unknown_token_is_invalid(api: Api) -> None:
    expect(
        api.get("/api/me", token=unknown_token(TokenKind.PERSONAL_ACCESS_TOKEN)),
        401,
        "invalid token",
    )


@pytest.mark.parametrize("raw", ["mul_abc", "mul_" + "A" * 60, "garbage", "mul_" + "a" * 200])
def test_malformed_token_is_invalid(api: Api, raw: str) -> None:
    expect(api.get("/api/me", token=raw), 401, "invalid token")


def test_a_token_with_a_broken_checksum_is_invalid(api: Api, operator: Operator) -> None:
    token = operator.user().token
    broken = token[:-1] + ("a" if token[-1] != "a" else "b")
    expect(api.get("/api/me", token=broken), 401, "invalid token")


def test_expired_token_is_invalid(api: Api, operator: Operator) -> None:
    expired = operator.user(at=datetime.now(UTC) - timedelta(days=91))
    expect(api.get("/api/me", token=expired.token), 401, "invalid token")


def test_revoked_token_is_invalid(api: Api, operator: Operator) -> None:
    user = operator.user()
    minted = api.post("/api/tokens", token=user.token, json={"name": "to revoke"}).json()
    assert api.get("/api/me", token=minted["token"]).status_code == 200
    expect(api.delete(f"/api/tokens/{minted['id']}", token=user.token), 204)
    # The other worker may have cached it: within the propagation bound it refuses it too.
    for _ in range(4):
        wait_until(
            lambda: api.get("/api/me", token=minted["token"]).status_code == 401,
            what="the revoked token to be refused",
        )
    expect(api.get("/api/me", token=minted["token"]), 401, "invalid token")


def test_consumed_install_token_is_not_a_bearer(api: Api, world: World) -> None:
    used = api.post(f"/api/workspaces/{world.workspace_id}/install-tokens", token=world.owner.token)
    token = used.json()["token"]
    api.post("/api/install-tokens/exchange", json={"token": token, "daemon_id": "d"})
    expect(api.get("/api/me", token=token), 401, "invalid token")
    expect(api.get("/api/daemon/whoami", token=token), 401, "invalid token")


def test_a_token_of_a_kind_the_route_does_not_take_is_invalid(api: Api, world: World) -> None:
    expect(api.get("/api/me", token=world.daemon_token), 401, "invalid token")
    expect(api.get("/api/me", token=world.install_token), 401, "invalid token")
    expect(api.get("/api/daemon/whoami", token=world.owner.token), 401, "invalid token")
    expect(api.get("/api/daemon/whoami", token=world.install_token), 401, "invalid token")


def test_lacking_the_role_is_insufficient_permissions(api: Api, world: World) -> None:
    response = api.post(
        f"/api/workspaces/{world.workspace_id}/install-tokens", token=world.member.token
    )
    expect(response, 403, "insufficient permissions")


def test_unknown_workspace_and_non_member_are_workspace_not_found(api: Api, world: World) -> None:
    expect(
        api.get(f"/api/workspaces/{uuid4()}/members", token=world.owner.token),
        404,
        "workspace not found",
    )
    expect(
        api.get(f"/api/workspaces/{world.workspace_id}/members", token=world.outsider.token),
        404,
        "workspace not found",
    )


@pytest.mark.parametrize(
    "content", [b"", b"{", b"not json", b"[]", b"null", b'"name"', b'{"name": 5}', b'{"name": []}']
)
def test_unparseable_body_or_wrong_types_is_invalid_request_body(
    api: Api, operator: Operator, content: bytes
) -> None:
    user = operator.user()
    response = api.post("/api/workspaces", token=user.token, content=content)
    expect(response, 400, "invalid request body")


# The "store unavailable → 503" row: tests/acceptance/test_unavailable.py.

# -------------------------------------------------------------------- personal access tokens


def test_mint_answers_201_with_the_token_once(api: Api, operator: Operator) -> None:
    user = operator.user()
    response = api.post(
        "/api/tokens", token=user.token, json={"name": " ci ", "expires_in_days": 30}
    )
    expect(response, 201)
    body = response.json()
    assert set(body) == {
        "id",
        "name",
        "token_prefix",
        "expires_at",
        "last_used_at",
        "created_at",
        "token",
    }
    assert body["name"] == "ci"
    assert body["token_prefix"] == body["token"][:12]
    assert body["last_used_at"] is None
    expires = datetime.fromisoformat(body["expires_at"])
    created = datetime.fromisoformat(body["created_at"])
    assert expires - created == timedelta(days=30)
    assert body["expires_at"].endswith("Z")
    listed = api.get("/api/tokens", token=user.token).json()
    assert all("token" not in entry for entry in listed)


# 7.0 is 7: JSON Schema's `integer` counts a number with no fractional part as one.
@pytest.mark.parametrize("days", [None, 1, 3650, 7.0])
def test_mint_accepts_null_and_the_range(api: Api, operator: Operator, days: float | None) -> None:
    user = operator.user()
    response = api.post(
        "/api/tokens", token=user.token, json={"name": "t", "expires_in_days": days}
    )
    expect(response, 201)
    assert (response.json()["expires_at"] is None) == (days is None)


def test_mint_without_expires_in_days_never_expires(api: Api, operator: Operator) -> None:
    user = operator.user()
    response = api.post("/api/tokens", token=user.token, json={"name": "t"})
    expect(response, 201)
    assert response.json()["expires_at"] is None


@pytest.mark.parametrize("days", [0, -1, 3651, 10**20, "7", 1.5, 3650.5, True, [], {}])
def test_mint_refuses_other_expires_in_days(api: Api, operator: Operator, days: object) -> None:
    user = operator.user()
    response = api.post(
        "/api/tokens", token=user.token, json={"name": "t", "expires_in_days": days}
    )
    expect(response, 400, "invalid expires_in_days")


@pytest.mark.parametrize("name", ["", "   ", "\t\n", "x" * 101, None])
def test_mint_refuses_blank_or_long_names(api: Api, operator: Operator, name: str | None) -> None:
    user = operator.user()
    expect(api.post("/api/tokens", token=user.token, json={"name": name}), 400, "name is required")


def test_mint_refuses_a_missing_name(api: Api, operator: Operator) -> None:
    user = operator.user()
    expect(
        api.post("/api/tokens", token=user.token, json={"expires_in_days": 5}),
        400,
        "name is required",
    )


def test_mint_takes_a_100_character_name(api: Api, operator: Operator) -> None:
    user = operator.user()
    expect(api.post("/api/tokens", token=user.token, json={"name": "x" * 100}), 201)


def test_mint_refuses_a_name_of_the_wrong_type(api: Api, operator: Operator) -> None:
    user = operator.user()
    expect(
        api.post("/api/tokens", token=user.token, json={"name": 12}), 400, "invalid request body"
    )


def test_list_is_newest_first_without_revoked_with_expired(api: Api, operator: Operator) -> None:
    fresh = operator.user()
    first = api.post("/api/tokens", token=fresh.token, json={"name": "first"}).json()
    second = api.post("/api/tokens", token=fresh.token, json={"name": "second"}).json()
    third = api.post("/api/tokens", token=fresh.token, json={"name": "third"}).json()
    expect(api.delete(f"/api/tokens/{second['id']}", token=fresh.token), 204)
    listed = api.get("/api/tokens", token=fresh.token)
    expect(listed, 200)
    names = [entry["name"] for entry in listed.json()]
    assert names == ["third", "first", "initial token"]
    assert {e["id"] for e in listed.json()} >= {first["id"], third["id"]}
    assert set(listed.json()[0]) == {
        "id",
        "name",
        "token_prefix",
        "expires_at",
        "last_used_at",
        "created_at",
    }


def test_list_includes_expired_tokens(api: Api, operator: Operator) -> None:
    user = operator.user()
    principal = operator.ledger.verify(user.token)
    operator.clock.set(datetime.now(UTC) - timedelta(days=2))
    expired = operator.ledger.mint_personal_access_token(principal, "old", 1)
    operator.tokens.add(expired.token)
    listed = api.get("/api/tokens", token=user.token).json()
    assert str(expired.info.id) in {entry["id"] for entry in listed}


def test_revoke_is_204_and_again_204(api: Api, operator: Operator) -> None:
    user = operator.user()
    minted = api.post("/api/tokens", token=user.token, json={"name": "t"}).json()
    expect(api.delete(f"/api/tokens/{minted['id']}", token=user.token), 204)
    expect(api.delete(f"/api/tokens/{minted['id']}", token=user.token), 204)


@pytest.mark.parametrize(
    "token_id",
    [
        "not-a-uuid",
        "123",
        "6f1c2f0e5b3a4d6e9f1a2b3c4d5e6f70",
        "{6f1c2f0e-5b3a-4d6e-9f1a-2b3c4d5e6f70}",
    ],
)
def test_revoke_refuses_a_malformed_id(api: Api, operator: Operator, token_id: str) -> None:
    user = operator.user()
    expect(api.delete(f"/api/tokens/{token_id}", token=user.token), 400, "invalid token id")


def test_revoke_of_unknown_or_anothers_token_is_not_found(api: Api, operator: Operator) -> None:
    alice, bob = operator.user(), operator.user()
    minted = api.post("/api/tokens", token=alice.token, json={"name": "t"}).json()
    expect(api.delete(f"/api/tokens/{uuid4()}", token=alice.token), 404, "token not found")
    expect(api.delete(f"/api/tokens/{minted['id']}", token=bob.token), 404, "token not found")
    assert api.get("/api/me", token=minted["token"]).status_code == 200


# ------------------------------------------------------------------------------ renewal


@pytest.mark.parametrize("authorization", [None, "Basic abc", "Bearer"])
def test_renew_without_a_bearer_is_not_renewable(api: Api, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = api.post("/api/tokens/current/renew", headers=headers)
    expect(response, 400, "only personal access tokens can be renewed")


def test_renew_of_daemon_install_or_other_tokens_is_not_renewable(api: Api, world: World) -> None:
    # "mdt_x!" rather than "mdt_x": the log scan looks for every token a test sent, and a
    # logged display prefix of a real daemon token may well begin with "mdt_x".
    for token in (world.daemon_token, world.install_token, "garbage", "mdt_x!"):
        response = api.post("/api/tokens/current/renew", token=token)
        expect(response, 400, "only personal access tokens can be renewed")


def test_renew_of_revoked_expired_or_unknown_token_is_no_longer_valid(
    api: Api, operator: Operator
) -> None:
    user = operator.user()
    revoked = api.post(
        "/api/tokens", token=user.token, json={"name": "r", "expires_in_days": 3}
    ).json()
    api.delete(f"/api/tokens/{revoked['id']}", token=user.token)
    expired = operator.user(at=datetime.now(UTC) - timedelta(days=91))
    for token in (
        revoked["token"],
        expired.token,
        unknown_token(TokenKind.PERSONAL_ACCESS_TOKEN),
        "mul_abc",
    ):
        response = api.post("/api/tokens/current/renew", token=token)
        expect(response, 401, "token is no longer valid")


def test_renew_of_a_never_expiring_token(api: Api, operator: Operator) -> None:
    user = operator.user()
    forever = api.post("/api/tokens", token=user.token, json={"name": "f"}).json()
    response = api.post("/api/tokens/current/renew", token=forever["token"], content=b"ignored{")
    expect(response, 200)
    assert response.json() == {"expires_at": "", "renewed": False}


def test_renew_with_more_than_7_days_left_keeps_the_expiry(api: Api, operator: Operator) -> None:
    user = operator.user()
    minted = api.post(
        "/api/tokens", token=user.token, json={"name": "t", "expires_in_days": 8}
    ).json()
    response = api.post("/api/tokens/current/renew", token=minted["token"])
    expect(response, 200)
    assert response.json() == {"expires_at": minted["expires_at"], "renewed": False}


def test_renew_with_7_days_or_less_extends_by_90_days(api: Api, operator: Operator) -> None:
    user = operator.user()
    minted = api.post(
        "/api/tokens", token=user.token, json={"name": "t", "expires_in_days": 7}
    ).json()
    before = datetime.now(UTC)
    response = api.post("/api/tokens/current/renew", token=minted["token"])
    expect(response, 200)
    assert response.json()["renewed"] is True
    expires = datetime.fromisoformat(response.json()["expires_at"])
    assert before + timedelta(days=90) <= expires <= datetime.now(UTC) + timedelta(days=90)
    listed = {e["id"]: e for e in api.get("/api/tokens", token=user.token).json()}
    assert listed[minted["id"]]["expires_at"] == response.json()["expires_at"]
    assert api.get("/api/me", token=minted["token"]).status_code == 200  # the secret is unchanged


# ----------------------------------------------------------------------- workspaces, members


def test_create_workspace_answers_201_and_the_caller_is_owner(api: Api, operator: Operator) -> None:
    user = operator.user()
    response = api.post("/api/workspaces", token=user.token, json={"name": "  acme "})
    expect(response, 201)
    body = response.json()
    assert set(body) == {"id", "name", "created_at"} and body["name"] == "acme"
    UUID(body["id"])
    members = api.get(f"/api/workspaces/{body['id']}/members", token=user.token).json()
    assert [(m["user_id"], m["role"]) for m in members] == [(user.user_id, "owner")]
    assert set(members[0]) == {"user_id", "role", "joined_at"}


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 101}])
def test_create_workspace_needs_a_name(
    api: Api, operator: Operator, body: dict[str, object]
) -> None:
    user = operator.user()
    expect(api.post("/api/workspaces", token=user.token, json=body), 400, "name is required")


def test_add_member_answers_201(api: Api, world: World, operator: Operator) -> None:
    newcomer = operator.user()
    response = api.post(
        f"/api/workspaces/{world.workspace_id}/members",
        token=world.admin.token,
        json={"user_id": newcomer.user_id, "role": "member"},
    )
    expect(response, 201)
    assert response.json()["user_id"] == newcomer.user_id
    assert response.json()["role"] == "member"
    assert set(response.json()) == {"user_id", "role", "joined_at"}


@pytest.mark.parametrize("role", ["superuser", "", "Owner", 5, None, ["owner"]])
def test_add_member_refuses_an_invalid_role(api: Api, world: World, role: object) -> None:
    response = api.post(
        f"/api/workspaces/{world.workspace_id}/members",
        token=world.owner.token,
        json={"user_id": world.outsider.user_id, "role": role},
    )
    expect(response, 400, "invalid role")


def test_add_member_refuses_a_missing_role(api: Api, world: World) -> None:
    response = api.post(
        f"/api/workspaces/{world.workspace_id}/members",
        token=world.owner.token,
        json={"user_id": world.outsider.user_id},
    )
    expect(response, 400, "invalid role")


def test_add_member_of_an_unknown_user_is_user_not_found(api: Api, world: World) -> None:
    response = api.post(
        f"/api/workspaces/{world.workspace_id}/members",
        token=world.owner.token,
        json={"user_id": str(uuid4()), "role": "member"},
    )
    expect(response, 404, "user not found")


def test_add_member_with_a_malformed_user_id(api: Api, world: World) -> None:
    path = f"/api/workspaces/{world.workspace_id}/members"
    bad = api.post(path, token=world.owner.token, json={"user_id": "nope", "role": "member"})
    expect(bad, 400, "invalid user id")
    wrong_type = api.post(path, token=world.owner.token, json={"user_id": 7, "role": "member"})
    expect(wrong_type, 400, "invalid request body")


def test_add_member_twice_is_already_a_member(api: Api, world: World) -> None:
    response = api.post(
        f"/api/workspaces/{world.workspace_id}/members",
        token=world.owner.token,
        json={"user_id": world.member.user_id, "role": "admin"},
    )
    expect(response, 409, "already a member")


def test_only_an_owner_may_add_an_owner(api: Api, world: World) -> None:
    path = f"/api/workspaces/{world.workspace_id}/members"
    body = {"user_id": world.outsider.user_id, "role": "owner"}
    expect(api.post(path, token=world.admin.token, json=body), 403, "insufficient permissions")
    expect(api.post(path, token=world.owner.token, json=body), 201)


def test_change_role_answers_200(api: Api, world: World) -> None:
    path = f"/api/workspaces/{world.workspace_id}/members/{world.member.user_id}"
    response = api.patch(path, token=world.admin.token, json={"role": "admin"})
    expect(response, 200)
    assert response.json()["role"] == "admin" and response.json()["user_id"] == world.member.user_id


@pytest.mark.parametrize("role", ["root", 1, None])
def test_change_role_refuses_an_invalid_role(api: Api, world: World, role: object) -> None:
    path = f"/api/workspaces/{world.workspace_id}/members/{world.member.user_id}"
    expect(api.patch(path, token=world.owner.token, json={"role": role}), 400, "invalid role")


def test_change_role_of_a_non_member_is_member_not_found(api: Api, world: World) -> None:
    path = f"/api/workspaces/{world.workspace_id}/members/{world.outsider.user_id}"
    expect(
        api.patch(path, token=world.owner.token, json={"role": "admin"}), 404, "member not found"
    )


def test_demoting_the_last_owner_is_refused(api: Api, world: World) -> None:
    path = f"/api/workspaces/{world.workspace_id}/members/{world.owner.user_id}"
    response = api.patch(path, token=world.owner.token, json={"role": "admin"})
    expect(response, 400, "workspace must have at least one owner")


def test_only_an_owner_may_grant_or_take_owner(api: Api, world: World) -> None:
    base = f"/api/workspaces/{world.workspace_id}/members"
    grant = api.patch(
        f"{base}/{world.member.user_id}", token=world.admin.token, json={"role": "owner"}
    )
    expect(grant, 403, "insufficient permissions")
    take = api.patch(
        f"{base}/{world.owner.user_id}", token=world.admin.token, json={"role": "member"}
    )
    expect(take, 403, "insufficient permissions")


def test_remove_member_answers_204_then_member_not_found(api: Api, world: World) -> None:
    path = f"/api/workspaces/{world.workspace_id}/members/{world.member.user_id}"
    expect(api.delete(path, token=world.admin.token), 204)
    expect(api.delete(path, token=world.admin.token), 404, "member not found")


def test_removing_the_last_owner_is_refused(api: Api, world: World) -> None:
    path = f"/api/workspaces/{world.workspace_id}/members/{world.owner.user_id}"
    expect(api.delete(path, token=world.owner.token), 400, "workspace must have at least one owner")


def test_only_an_owner_may_remove_an_owner(api: Api, world: World) -> None:
    path = f"/api/workspaces/{world.workspace_id}/members/{world.owner.user_id}"
    expect(api.delete(path, token=world.admin.token), 403, "insufficient permissions")


def test_leave_answers_204_and_the_last_owner_cannot_leave(api: Api, world: World) -> None:
    path = f"/api/workspaces/{world.workspace_id}/leave"
    expect(api.post(path, token=world.member.token), 204)
    expect(api.post(path, token=world.member.token), 404, "workspace not found")
    expect(api.post(path, token=world.owner.token), 400, "workspace must have at least one owner")


@pytest.mark.parametrize("workspace_id", ["nope", "1", str(uuid4()).replace("-", "")])
def test_a_malformed_workspace_id_is_400(api: Api, world: World, workspace_id: str) -> None:
    response = api.get(f"/api/workspaces/{workspace_id}/members", token=world.owner.token)
    expect(response, 400, "invalid workspace id")


def test_a_malformed_user_id_in_a_path_is_400(api: Api, world: World) -> None:
    path = f"/api/workspaces/{world.workspace_id}/members/nope"
    expect(api.delete(path, token=world.owner.token), 400, "invalid user id")


# ----------------------------------------------------------------- install and daemon tokens


def test_mint_install_token_answers_201(api: Api, world: World) -> None:
    response = api.post(
        f"/api/workspaces/{world.workspace_id}/install-tokens", token=world.admin.token
    )
    expect(response, 201)
    body = response.json()
    assert set(body) == {"id", "token", "workspace_id", "expires_at", "created_at"}
    assert body["token"].startswith("mit_") and body["workspace_id"] == world.workspace_id
    lifetime = datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(
        body["created_at"]
    )
    assert lifetime == timedelta(minutes=15)


def test_exchange_answers_200_with_a_daemon_token(api: Api, world: World) -> None:
    response = api.post(
        "/api/install-tokens/exchange",
        json={"token": f"  {world.install_token} ", "daemon_id": " box-7 "},
    )
    expect(response, 200)
    body = response.json()
    assert set(body) == {"token", "workspace_id", "daemon_id", "expires_at"}
    assert body["token"].startswith("mdt_")
    assert (body["workspace_id"], body["daemon_id"], body["expires_at"]) == (
        world.workspace_id,
        "box-7",
        None,
    )
    whoami = api.get("/api/daemon/whoami", token=body["token"])
    expect(whoami, 200)
    assert whoami.json()["workspace_id"] == world.workspace_id
    assert whoami.json()["daemon_id"] == "box-7"
    assert set(whoami.json()) == {"token_id", "workspace_id", "daemon_id"}


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"{",
        b"[]",
        b'{"daemon_id": "d"}',
        b'{"token": null, "daemon_id": "d"}',
        b'{"token": 5, "daemon_id": "d"}',
        b'{"token": "mul_abcdefgh", "daemon_id": "d"}',
        b'{"token": "mit_abc", "daemon_id": "d"}',
    ],
)
def test_exchange_of_an_unparseable_body_or_malformed_token_is_400(
    api: Api, content: bytes
) -> None:
    response = api.post("/api/install-tokens/exchange", content=content)
    expect(response, 400, "invalid_install_token")


def test_exchange_of_a_token_failing_its_checksum_is_400(api: Api, world: World) -> None:
    token = world.install_token
    broken = token[:-1] + ("a" if token[-1] != "a" else "b")
    response = api.post("/api/install-tokens/exchange", json={"token": broken, "daemon_id": "d"})
    expect(response, 400, "invalid_install_token")


@pytest.mark.parametrize("daemon_id", [None, "", "   ", "x" * 129, 5])
def test_exchange_without_a_daemon_id_is_400(api: Api, world: World, daemon_id: object) -> None:
    body = {"token": world.install_token} | ({} if daemon_id is None else {"daemon_id": daemon_id})
    response = api.post("/api/install-tokens/exchange", json=body)
    expect(response, 400, "daemon_id is required")
    # Nothing was consumed.
    ok = api.post(
        "/api/install-tokens/exchange", json={"token": world.install_token, "daemon_id": "x" * 128}
    )
    expect(ok, 200)


def test_exchange_of_an_unknown_token_is_401(api: Api) -> None:
    token = unknown_token(TokenKind.INSTALL_TOKEN)
    response = api.post("/api/install-tokens/exchange", json={"token": token, "daemon_id": "d"})
    expect(response, 401, "invalid_install_token")


def _past_install_token(operator: Operator, world: World, minutes_ago: int) -> tuple[str, object]:
    owner = operator.ledger.verify(world.owner.token)
    operator.clock.set(datetime.now(UTC) - timedelta(minutes=minutes_ago))
    minted = operator.ledger.mint_install_token(owner, UUID(world.workspace_id))
    operator.tokens.add(minted.token)
    return minted.token, owner


def test_exchange_of_an_expired_token_is_401(api: Api, world: World, operator: Operator) -> None:
    token, _ = _past_install_token(operator, world, minutes_ago=16)
    response = api.post("/api/install-tokens/exchange", json={"token": token, "daemon_id": "d"})
    expect(response, 401, "invalid_install_token")


def test_exchange_of_a_revoked_token_is_401(api: Api, world: World) -> None:
    minted = api.post(
        f"/api/workspaces/{world.workspace_id}/install-tokens", token=world.admin.token
    )
    remove = f"/api/workspaces/{world.workspace_id}/members/{world.admin.user_id}"
    expect(api.delete(remove, token=world.owner.token), 204)
    response = api.post(
        "/api/install-tokens/exchange", json={"token": minted.json()["token"], "daemon_id": "d"}
    )
    expect(response, 401, "invalid_install_token")


def test_second_exchange_is_already_used(api: Api, world: World) -> None:
    body = {"token": world.install_token, "daemon_id": "d"}
    expect(api.post("/api/install-tokens/exchange", json=body), 200)
    # The same daemon_id again would be a retry of a lost answer (200): another one is not.
    other = {**body, "daemon_id": "another d"}
    expect(api.post("/api/install-tokens/exchange", json=other), 401, "install_token_already_used")


def test_exchange_of_a_used_and_expired_token_is_already_used(
    api: Api, world: World, operator: Operator
) -> None:
    token, _ = _past_install_token(operator, world, minutes_ago=20)
    operator.clock.set(datetime.now(UTC) - timedelta(minutes=19))
    exchanged = operator.ledger.exchange_install_token(token, "early")
    operator.tokens.add(exchanged.token)
    response = api.post("/api/install-tokens/exchange", json={"token": token, "daemon_id": "d"})
    expect(response, 401, "install_token_already_used")


def test_exchange_after_the_issuer_lost_admin_is_403_and_stays_unconsumed(
    api: Api, world: World
) -> None:
    minted = api.post(
        f"/api/workspaces/{world.workspace_id}/install-tokens", token=world.admin.token
    )
    token = minted.json()["token"]
    demote = f"/api/workspaces/{world.workspace_id}/members/{world.admin.user_id}"
    expect(api.patch(demote, token=world.owner.token, json={"role": "member"}), 200)
    body = {"token": token, "daemon_id": "d"}
    expect(
        api.post("/api/install-tokens/exchange", json=body),
        403,
        "install token issuer is not a workspace admin",
    )
    expect(api.patch(demote, token=world.owner.token, json={"role": "admin"}), 200)
    expect(api.post("/api/install-tokens/exchange", json=body), 200)


def test_list_daemon_tokens(api: Api, world: World) -> None:
    response = api.get(
        f"/api/workspaces/{world.workspace_id}/daemon-tokens", token=world.admin.token
    )
    expect(response, 200)
    (entry,) = response.json()
    assert set(entry) == {
        "id",
        "daemon_id",
        "created_by",
        "install_token_id",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    }
    assert entry["id"] == world.daemon_token_id
    assert entry["daemon_id"] == "box"
    assert entry["created_by"] == world.owner.user_id
    assert entry["revoked_at"] is None


def test_revoke_daemon_token_is_204_twice_then_refused(api: Api, world: World) -> None:
    path = f"/api/workspaces/{world.workspace_id}/daemon-tokens/{world.daemon_token_id}"
    expect(api.delete(path, token=world.owner.token), 204)
    expect(api.delete(path, token=world.admin.token), 204)
    listed = api.get(f"/api/workspaces/{world.workspace_id}/daemon-tokens", token=world.owner.token)
    assert listed.json()[0]["revoked_at"] is not None
    wait_until(
        lambda: api.get("/api/daemon/whoami", token=world.daemon_token).status_code == 401,
        what="the revoked daemon token to be refused",
    )


def test_revoke_of_an_unknown_or_foreign_daemon_token_is_404(
    api: Api, world: World, operator: Operator
) -> None:
    from tests.support.world import build_world  # noqa: PLC0415

    other = build_world(api, operator)
    base = f"/api/workspaces/{world.workspace_id}/daemon-tokens"
    expect(api.delete(f"{base}/{uuid4()}", token=world.owner.token), 404, "daemon token not found")
    foreign = api.delete(f"{base}/{other.daemon_token_id}", token=world.owner.token)
    expect(foreign, 404, "daemon token not found")
    expect(
        api.delete(f"{base}/{world.owner.user_id}", token=world.owner.token),
        404,
        "daemon token not found",
    )
    expect(api.delete(f"{base}/nope", token=world.owner.token), 400, "invalid token id")


def test_whoami_errors(api: Api, world: World) -> None:
    expect(api.get("/api/daemon/whoami"), 401, "missing authorization")
    expect(
        api.get("/api/daemon/whoami", token=unknown_token(TokenKind.DAEMON_TOKEN)),
        401,
        "invalid token",
    )


# -------------------------------------------------------------------------------- users, ops


def test_me(api: Api, operator: Operator) -> None:
    user = operator.user("Grace")
    response = api.get("/api/me", token=user.token)
    expect(response, 200)
    assert response.json() == {"user_id": user.user_id, "name": "Grace"}


def test_health_and_readiness(api: Api) -> None:
    expect(api.get("/healthz"), 200)
    assert api.get("/healthz").json() == {"status": "ok"}
    expect(api.get("/readyz"), 200)


def test_unknown_routes_and_methods_answer_json(api: Api, world: World) -> None:
    expect(api.get("/api/nothing-here"), 404, "not found")
    expect(api.request("PUT", "/api/tokens", token=world.owner.token), 405, "method not allowed")


def test_request_ids_come_back(api: Api) -> None:
    given = api.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = api.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["x-request-id"] not in ("", "bad id with spaces")


def test_docs_and_openapi(api: Api) -> None:
    schema = api.get("/openapi.json")
    expect(schema, 200)
    paths = schema.json()["paths"]
    assert "/api/install-tokens/exchange" in paths
    exchange = paths["/api/install-tokens/exchange"]["post"]
    assert exchange["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ExchangeRequest"
    )
    assert "ExchangeRequest" in schema.json()["components"]["schemas"]
    assert all(
        "422" not in op.get("responses", {}) for ops in paths.values() for op in ops.values()
    )
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
