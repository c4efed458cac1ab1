"""Each route times each kind of caller → the contract's answer.

A route that changes what the next caller would get (a removal, an exchange, ...) gets a fresh
world per cell; the others share one world per module.
"""

from __future__ import annotations

import pytest

from tests.acceptance.routes import CALLERS, ROUTES, Outcome, bearer
from tests.acceptance.service import Api, error_of
from tests.support.world import Operator, World

NOT_A_USER: dict[str, Outcome] = {
    "daemon token": (401, "invalid token"),
    "install token": (401, "invalid token"),
    "no token": (401, "missing authorization"),
}


def any_user(status: int) -> dict[str, Outcome]:
    users = ("owner", "admin", "member", "non-member")
    return {caller: (status, None) for caller in users} | NOT_A_USER


def members(status: int) -> dict[str, Outcome]:
    return any_user(status) | {"non-member": (404, "workspace not found")}


def administrators(status: int) -> dict[str, Outcome]:
    return members(status) | {"member": (403, "insufficient permissions")}


def everyone(status: int) -> dict[str, Outcome]:
    return {caller: (status, None) for caller in CALLERS}


NOT_RENEWABLE: Outcome = (400, "only personal access tokens can be renewed")

EXPECTED: dict[str, dict[str, Outcome]] = {
    "me": any_user(200),
    "mint pat": any_user(201),
    "list pats": any_user(200),
    "revoke pat": any_user(404)
    | {"owner": (204, None), "admin": (404, "token not found")}
    | {"member": (404, "token not found"), "non-member": (404, "token not found")},
    "renew": any_user(200)
    | {"daemon token": NOT_RENEWABLE, "install token": NOT_RENEWABLE, "no token": NOT_RENEWABLE},
    "create workspace": any_user(201),
    "list members": members(200),
    "add member": administrators(201),
    "change role": administrators(200),
    "remove member": administrators(204),
    "leave": members(204) | {"owner": (400, "workspace must have at least one owner")},
    "mint install token": administrators(201),
    "exchange": everyone(200),  # public: a bearer is ignored, the install token is the credential
    "list daemon tokens": administrators(200),
    "revoke daemon token": administrators(204),
    "whoami": {
        "owner": (401, "invalid token"),
        "admin": (401, "invalid token"),
        "member": (401, "invalid token"),
        "non-member": (401, "invalid token"),
        "daemon token": (200, None),
        "install token": (401, "invalid token"),
        "no token": (401, "missing authorization"),
    },
    "healthz": everyone(200),
    "readyz": everyone(200),
    "metrics": everyone(200),
}


def test_the_matrix_covers_every_route_and_caller() -> None:
    assert set(EXPECTED) == set(ROUTES)
    assert all(set(row) == set(CALLERS) for row in EXPECTED.values())


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route_name", list(ROUTES))
def test_route_answers_caller_as_the_contract_says(
    request: pytest.FixtureRequest, api: Api, operator: Operator, route_name: str, caller: str
) -> None:
    route = ROUTES[route_name]
    world: World = request.getfixturevalue("world" if route.destructive else "shared_world")
    path = route.path(world, api, operator)
    body = route.body(world, api, operator) if route.body else None
    response = api.request(route.method, path, token=bearer(world, caller), json=body)
    status, error = error_of(response)
    assert (status, error if status >= 400 else None) == EXPECTED[route_name][caller], response.text
