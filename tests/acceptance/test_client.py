"""``ledger.client`` against a live ``ledger serve``: the exchange (also when its answer is lost),
whoami, typed errors with the service's detail, and the PAT keeper renewing a token that has 7
days or less left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ledger.client import NO_RETRY, AuthenticationError, LedgerClient, PatKeeper
from tests.acceptance.service import Api, ServeProcess, TokenLog
from tests.support.world import Operator, World


def test_a_daemon_exchanges_its_install_token_and_knows_who_it_is(
    api: Api, world: World, service: ServeProcess, token_log: TokenLog
) -> None:
    minted = api.post(
        f"/api/workspaces/{world.workspace_id}/install-tokens", token=world.owner.token
    )
    install = minted.json()["token"]

    with LedgerClient(service.base_url) as client:
        creds = client.exchange(install, "build-01")
        token_log.add(creds.token)
        assert (creds.workspace_id, creds.daemon_id, creds.expires_at) == (
            world.workspace_id,
            "build-01",
            None,
        )
        with pytest.raises(AuthenticationError) as replayed:
            client.exchange(install, "someone-else")
    assert replayed.value.error == "install_token_already_used"
    assert replayed.value.detail

    with LedgerClient(service.base_url, token=creds.token) as daemon:
        identity = daemon.whoami()
    assert (identity.workspace_id, identity.daemon_id) == (world.workspace_id, "build-01")


def test_a_refused_token_is_a_typed_error_with_the_services_detail(
    service: ServeProcess, world: World
) -> None:
    with LedgerClient(service.base_url, token=world.owner.token, retry=NO_RETRY) as client:
        with pytest.raises(AuthenticationError) as raised:
            client.whoami()  # a personal access token is not a daemon's bearer
        assert client.me().user_id == world.owner.user_id
    assert (raised.value.status, raised.value.error) == (401, "invalid token")
    assert raised.value.detail


def test_the_keeper_renews_a_token_with_7_days_or_less_left_in_place(
    service: ServeProcess, operator: Operator
) -> None:
    user = operator.user("daemon-owner", at=datetime.now(UTC) - timedelta(days=85))
    with LedgerClient(service.base_url, token=user.token) as client:
        keeper = PatKeeper(client)
        renewal = keeper.check()
        assert renewal is not None and renewal.renewed
        assert keeper.expires_at is not None
        assert keeper.expires_at - datetime.now(UTC) > timedelta(days=89)
        assert keeper.check() is None  # not due again for 83 days: no request
        assert client.me().user_id == user.user_id  # the same secret still works

    fresh = operator.user("fresh")
    with LedgerClient(service.base_url, token=fresh.token) as client:
        learned = PatKeeper(client).check()
    assert learned is not None and not learned.renewed


class LosesTheFirstAnswer(httpx.BaseTransport):
    """A real connection whose first answer is lost on the way back (the service committed)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.sent += 1
        if self.sent == 1:
            response.read()
            response.close()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_an_exchange_whose_answer_was_lost_is_retried_into_the_same_token(
    api: Api, world: World, service: ServeProcess, token_log: TokenLog
) -> None:
    minted = api.post(
        f"/api/workspaces/{world.workspace_id}/install-tokens", token=world.owner.token
    )
    transport = LosesTheFirstAnswer()
    with LedgerClient(service.base_url, transport=transport, sleep=lambda _: None) as client:
        creds = client.exchange(minted.json()["token"], "lossy-link")
    token_log.add(creds.token)
    assert transport.sent == 2  # the first exchange committed; the retry got its answer again
    with LedgerClient(service.base_url, token=creds.token) as daemon:
        assert daemon.whoami().daemon_id == "lossy-link"
    daemons = api.get(
        f"/api/workspaces/{world.workspace_id}/daemon-tokens", token=world.owner.token
    )
    assert [d["daemon_id"] for d in daemons.json()].count("lossy-link") == 1
