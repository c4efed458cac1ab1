"""Malformed bodies on every route: a 4xx with a JSON ``error``, never a 5xx.

Routes that read a body answer 400 with their contract code; routes that take no body ignore
it (the contract says so of renewal) and answer as they would without one. A body over the
limit (64 KiB) is 413 on every route, announced (``Content-Length``) or streamed (chunked).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.acceptance.routes import ROUTES, Route
from tests.acceptance.service import Api, error_of
from tests.support.world import Operator, World

BAD_BODIES: dict[str, bytes] = {
    "empty": b"",
    "not json": b"this is not json",
    "truncated": b'{"name": "x"',
    "array": b"[1, 2, 3]",
    "number": b"42",
    "wrong types": json.dumps(
        {"name": 5, "expires_in_days": "x", "role": 7, "user_id": 9, "token": 1, "daemon_id": []}
    ).encode(),
    "nested": b'{"name": {"a": [1, {"b": null}]}, "token": {"x": 1}}',
    "invalid utf-8": b'{"name": "\xff\xfe"}',
    "deep": b"[" * 5000 + b"]" * 5000,
}
HUGE = 2 * 1024 * 1024


def _call(api: Api, route: Route, path: str, world: World, content: object) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    token = None if route.template == "/api/install-tokens/exchange" else world.owner.token
    return api.request(route.method, path, token=token, content=content, headers=headers)  # type: ignore[arg-type]


def _assert_json_4xx(response: httpx.Response, context: str) -> None:
    status, error = error_of(response)
    assert 400 <= status < 500, (context, response.text)
    assert error, (context, response.text)


@pytest.mark.parametrize("route_name", list(ROUTES))
def test_malformed_bodies_never_cause_a_5xx(
    request: pytest.FixtureRequest, api: Api, operator: Operator, route_name: str
) -> None:
    route = ROUTES[route_name]
    world: World = request.getfixturevalue("world" if route.destructive else "shared_world")
    path = route.path(world, api, operator)
    for kind, content in BAD_BODIES.items():
        response = _call(api, route, path, world, content)
        assert response.status_code < 500, (kind, response.text)
        if route.takes_body:
            _assert_json_4xx(response, kind)
        elif response.status_code >= 400:
            assert error_of(response)[1], (kind, response.text)


@pytest.mark.parametrize("route_name", list(ROUTES))
def test_a_huge_body_is_413(
    api: Api, shared_world: World, operator: Operator, route_name: str
) -> None:
    route, world = ROUTES[route_name], shared_world  # refused before anything is read
    path = route.path(world, api, operator)
    response = _call(api, route, path, world, b"{" + b" " * HUGE + b"}")
    assert (response.status_code, error_of(response)[1]) == (413, "request body too large")


def _chunks() -> Iterator[bytes]:
    yield b'{"name": "'
    for _ in range(HUGE // 65536):
        yield b"x" * 65536
    yield b'"}'


@pytest.mark.parametrize("route_name", [n for n, r in ROUTES.items() if r.takes_body])
def test_a_huge_streamed_body_is_413(
    api: Api, shared_world: World, operator: Operator, route_name: str
) -> None:
    route, world = ROUTES[route_name], shared_world  # refused before the body is parsed
    path = route.path(world, api, operator)
    response = _call(api, route, path, world, _chunks())
    assert (response.status_code, error_of(response)[1]) == (413, "request body too large")
