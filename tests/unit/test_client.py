"""``ledger.client`` against ``httpx.MockTransport``: what is retried (network errors, 5xx) and
what is not (4xx), the typed errors, and the PAT keeper on an injected clock."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ledger.client import (
    NO_RETRY,
    ApiError,
    AuthenticationError,
    LedgerClient,
    PatKeeper,
    RetryPolicy,
    ServerError,
    ServiceUnreachable,
)

INSTALL = "mit_" + "a" * 40
DAEMON = "mdt_" + "b" * 40
PAT = "mul_" + "c" * 40
EXCHANGED = {
    "token": DAEMON,
    "workspace_id": "0f0e0d0c-0b0a-4908-8706-050403020100",
    "daemon_id": "build-01",
    "expires_at": None,
}
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class Recorder:
    """A transport that answers from a script, one answer (or exception) per request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def client(
    recorder: Recorder, *, token: str | None = None, retry: RetryPolicy | None = None
) -> LedgerClient:
    sleeps: list[float] = []
    made = LedgerClient(
        "http://ledger.test",
        token,
        transport=httpx.MockTransport(recorder),
        retry=retry or RetryPolicy(jitter=lambda d: d),
        sleep=sleeps.append,
    )
    made.sleeps = sleeps  # type: ignore[attr-defined]
    return made


def error(status: int, code: str, detail: str | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": code} | ({"detail": detail} if detail else {}))


def test_exchange_retries_a_connection_error_with_the_same_body() -> None:
    recorder = Recorder(
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("lost answer"),
        httpx.Response(200, json=EXCHANGED),
    )
    with client(recorder) as c:
        creds = c.exchange(INSTALL, "build-01")
    assert creds.token == DAEMON and creds.daemon_id == "build-01" and creds.expires_at is None
    bodies = [json.loads(r.content) for r in recorder.requests]
    assert bodies == [{"token": INSTALL, "daemon_id": "build-01"}] * 3
    assert all("authorization" not in r.headers for r in recorder.requests)
    assert c.sleeps == [0.25, 0.5]  # type: ignore[attr-defined]


def test_exchange_retries_a_5xx_then_succeeds() -> None:
    recorder = Recorder(error(503, "service unavailable"), httpx.Response(200, json=EXCHANGED))
    with client(recorder) as c:
        assert c.exchange(INSTALL, "build-01").token == DAEMON
    assert len(recorder.requests) == 2


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, "install_token_already_used"),
        (401, "invalid_install_token"),
        (400, "daemon_id is required"),
        (429, "too many requests"),
    ],
)
def test_exchange_never_retries_a_4xx(status: int, code: str) -> None:
    recorder = Recorder(error(status, code, "why it was refused"))
    with client(recorder) as c, pytest.raises(ApiError) as raised:
        c.exchange(INSTALL, "build-01")
    assert len(recorder.requests) == 1
    assert c.sleeps == []  # type: ignore[attr-defined]
    assert (raised.value.status, raised.value.error) == (status, code)
    assert raised.value.detail == "why it was refused"


def test_a_401_is_an_authentication_error_carrying_error_and_detail() -> None:
    recorder = Recorder(error(401, "invalid token", "the bearer token is unknown"))
    with client(recorder, token=DAEMON) as c, pytest.raises(AuthenticationError) as raised:
        c.whoami()
    assert raised.value.error == "invalid token"
    assert raised.value.detail == "the bearer token is unknown"
    assert recorder.requests[0].headers["authorization"] == f"Bearer {DAEMON}"


def test_retries_are_capped_then_the_last_failure_is_raised() -> None:
    recorder = Recorder(*[error(503, "service unavailable")] * 5)
    with client(recorder) as c, pytest.raises(ServerError) as raised:
        c.exchange(INSTALL, "d")
    assert raised.value.status == 503
    assert len(recorder.requests) == 5
    assert c.sleeps == [0.25, 0.5, 1.0, 2.0]  # type: ignore[attr-defined]

    unreachable = Recorder(*[httpx.ConnectError("refused")] * 5)
    with client(unreachable) as c, pytest.raises(ServiceUnreachable):
        c.exchange(INSTALL, "d")
    assert len(unreachable.requests) == 5


def test_the_backoff_never_waits_longer_than_its_cap() -> None:
    policy = RetryPolicy(attempts=8, first_delay_s=1, max_delay_s=3, jitter=lambda d: d)
    assert list(policy.delays()) == [1, 2, 3, 3, 3, 3, 3]
    assert list(NO_RETRY.delays()) == []


def test_the_default_retries_end_within_the_services_exchange_retry_window() -> None:
    assert RetryPolicy().longest_s(timeout_s=10.0) < 60


def test_an_error_answer_that_is_not_json_still_has_a_code() -> None:
    recorder = Recorder(httpx.Response(502, text="bad gateway"))
    with client(recorder, retry=NO_RETRY) as c, pytest.raises(ServerError) as raised:
        c.me()
    assert (raised.value.status, raised.value.error, raised.value.detail) == (
        502,
        "bad gateway",
        None,
    )


def test_credentials_keep_the_token_out_of_their_repr() -> None:
    recorder = Recorder(httpx.Response(200, json=EXCHANGED))
    with client(recorder) as c:
        creds = c.exchange(INSTALL, "build-01")
    assert DAEMON not in repr(creds)
    assert DAEMON[:12] in repr(creds)


# ----------------------------------------------------------------------------- PAT keeper


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def renewal(expires_at: datetime | None, renewed: bool) -> httpx.Response:
    text = "" if expires_at is None else expires_at.isoformat().replace("+00:00", "Z")
    return httpx.Response(200, json={"expires_at": text, "renewed": renewed})


def test_the_keeper_renews_when_7_days_or_less_are_left_and_not_before() -> None:
    expires = NOW + timedelta(days=30)
    clock = Clock(NOW)
    recorder = Recorder(renewal(NOW + timedelta(days=23 + 90), True))
    with client(recorder, token=PAT) as c:
        keeper = PatKeeper(c, expires_at=expires, clock=clock)
        assert keeper.check() is None  # 30 days left: no request at all
        clock.now = expires - timedelta(days=7, seconds=1)
        assert keeper.check() is None
        assert keeper.next_check_at() == expires - timedelta(days=7)
        clock.now = expires - timedelta(days=7)
        outcome = keeper.check()
        assert outcome is not None and outcome.renewed
        assert keeper.expires_at == NOW + timedelta(days=113)
        assert keeper.check() is None  # renewed: not due again for 83 days
    assert [r.url.path for r in recorder.requests] == ["/api/tokens/current/renew"]
    assert recorder.requests[0].headers["authorization"] == f"Bearer {PAT}"


def test_the_keeper_learns_an_unknown_expiry_from_the_service() -> None:
    recorder = Recorder(renewal(NOW + timedelta(days=60), False))
    with client(recorder, token=PAT) as c:
        keeper = PatKeeper(c, clock=Clock(NOW))
        assert keeper.due()
        outcome = keeper.check()
        assert outcome is not None and not outcome.renewed
        assert keeper.expires_at == NOW + timedelta(days=60)
        assert not keeper.due()


def test_the_keeper_of_a_never_expiring_token_asks_once() -> None:
    recorder = Recorder(renewal(None, False))
    with client(recorder, token=PAT) as c:
        keeper = PatKeeper(c, clock=Clock(NOW))
        keeper.check()
        assert keeper.never_expires and keeper.next_check_at() is None
        assert keeper.check() is None
    assert len(recorder.requests) == 1


def test_importing_the_client_loads_nothing_of_the_service() -> None:
    code = (
        "import sys, ledger.client; "
        "print(sorted(m for m in sys.modules if m.startswith(('ledger.', 'psycopg', "
        "'eventsourcing', 'fastapi', 'pydantic')) and not m.startswith('ledger.client')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
