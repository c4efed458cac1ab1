"""Hostile input through HTTP: refused with the contract's code and a ``detail``, nothing stored,
never a 5xx, and the audit side keeps answering afterwards."""

from __future__ import annotations

import httpx
import pytest

from tests.acceptance.service import Api, error_of
from tests.support.world import Operator, World

CONTROL_NAMES = ["a\x00b", "\x00", "tab\there", "new\nline", "esc\x1b[31m", "del\x7f", "\x1f"]
HUGE = "9" * 5000


def _head(operator: Operator) -> int | None:
    """The position of the last event in the store (the service and the operator share it)."""
    head: int | None = operator.ledger.recorder.max_notification_id()
    return head


def _refused(response: httpx.Response, code: str) -> None:
    assert error_of(response) == (400, code), response.text
    assert response.json().get("detail"), response.text


@pytest.mark.parametrize("name", CONTROL_NAMES)
def test_a_workspace_name_with_a_control_character_is_refused_and_nothing_is_stored(
    api: Api, operator: Operator, name: str
) -> None:
    user = operator.user()
    head = _head(operator)
    response = api.post("/api/workspaces", token=user.token, json={"name": name})
    _refused(response, "name is required")
    assert _head(operator) == head


@pytest.mark.parametrize("name", CONTROL_NAMES)
def test_a_token_name_with_a_control_character_is_refused_and_nothing_is_stored(
    api: Api, operator: Operator, name: str
) -> None:
    user = operator.user()
    head = _head(operator)
    response = api.post("/api/tokens", token=user.token, json={"name": name, "expires_in_days": 5})
    _refused(response, "name is required")
    assert _head(operator) == head


@pytest.mark.parametrize("daemon_id", ["box\x00", "\x00", "a\nb", "\x7f"])
def test_a_daemon_id_with_a_control_character_is_refused_and_the_token_stays_unused(
    api: Api, world: World, operator: Operator, daemon_id: str
) -> None:
    head = _head(operator)
    response = api.post(
        "/api/install-tokens/exchange", json={"token": world.install_token, "daemon_id": daemon_id}
    )
    _refused(response, "daemon_id is required")
    assert _head(operator) == head
    ok = api.post(
        "/api/install-tokens/exchange", json={"token": world.install_token, "daemon_id": "box"}
    )
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    "query",
    [
        f"limit={HUGE}",
        f"cursor={HUGE}",
        f"since={HUGE}",
        f"until=2026-01-01T00:00:00{HUGE}Z",
        f"type={HUGE}",
        "limit=%00",
        "cursor=%EF%BC%91",  # a full-width digit one
        "since=2026-11-30T12:00%00Z",
        "since=2026-11-30",  # a date alone is not RFC 3339
        "since=2026-11-30T12:00Z",  # nor is a time without seconds
        "until=9999-12-31T23:59:60Z",  # the leap second past the last representable instant
    ],
)
def test_a_hostile_audit_query_is_400_and_the_feed_still_answers(
    api: Api, shared_world: World, query: str
) -> None:
    path = f"/api/workspaces/{shared_world.workspace_id}/audit"
    response = api.get(f"{path}?{query}", token=shared_world.owner.token)
    _refused(response, "invalid query parameter")
    assert api.get(path, token=shared_world.owner.token).status_code == 200


@pytest.mark.parametrize(
    "valid_at", [HUGE, "%00", "0" * 10_000, "2026-11-30T12:00:00", "2026-13-01T00:00:00Z"]
)
def test_a_hostile_valid_at_is_400(api: Api, shared_world: World, valid_at: str) -> None:
    response = api.get(
        f"/api/workspaces/{shared_world.workspace_id}/credentials?valid_at={valid_at}",
        token=shared_world.owner.token,
    )
    _refused(response, "invalid query parameter")


@pytest.mark.parametrize(
    "valid_at",
    [
        "2016-12-31T23:59:60Z",  # a leap second: read as the instant after it
        "9999-12-31T23:59:59-23:59",  # past year 9999 in UTC
        "0001-01-01T00:00:00%2B23:59",  # before year 1 in UTC
        "2026-11-30t12:00:00.123456789z",  # lower case and nanoseconds are RFC 3339 too
    ],
)
def test_an_extreme_but_valid_instant_is_answered(
    api: Api, shared_world: World, valid_at: str
) -> None:
    base = f"/api/workspaces/{shared_world.workspace_id}"
    token = shared_world.owner.token
    response = api.get(f"{base}/credentials?valid_at={valid_at}", token=token)
    assert response.status_code == 200, response.text
    feed = api.get(f"{base}/audit?since={valid_at}&until={valid_at}", token=token)
    assert feed.status_code == 200, feed.text


def test_a_huge_number_of_days_is_400(api: Api, operator: Operator) -> None:
    user = operator.user()
    head = _head(operator)
    response = api.post(
        "/api/tokens",
        token=user.token,
        content=b'{"name": "t", "expires_in_days": ' + HUGE.encode() + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert _head(operator) == head


@pytest.mark.parametrize("token_id", [HUGE, "%00" * 36, "z" * 10_000])
def test_a_hostile_path_id_is_the_routes_400(api: Api, operator: Operator, token_id: str) -> None:
    user = operator.user()
    response = api.delete(f"/api/tokens/{token_id}", token=user.token)
    _refused(response, "invalid token id")


def test_a_wrong_method_names_every_method_of_the_path(api: Api, operator: Operator) -> None:
    user = operator.user()
    response = api.request("PUT", "/api/tokens", token=user.token)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) >= {"GET", "POST"}


def test_the_openapi_document_describes_ids_errors_and_limits(api: Api) -> None:
    document = api.get("/openapi.json").json()
    paths, schemas = document["paths"], document["components"]["schemas"]
    for ops in paths.values():
        for op in ops.values():
            for parameter in op.get("parameters", []):
                if parameter["in"] == "path":
                    assert parameter["schema"]["format"] == "uuid", parameter
            if "requestBody" in op:
                assert "413" in op["responses"], op["summary"]
    assert schemas["ErrorBody"]["required"] == ["error"]
    assert schemas["ErrorBody"]["properties"]["detail"]["type"] == "string"
    assert schemas["CreateWorkspaceRequest"]["required"] == ["name"]
    assert schemas["CreateTokenRequest"]["properties"]["name"]["maxLength"] == 100
    feed = paths["/api/workspaces/{workspace_id}/audit"]["get"]
    limit = next(p for p in feed["parameters"] if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    created = paths["/api/workspaces"]["post"]["responses"]["201"]
    assert "ListMembers" in created["links"]
