"""The app in-process (``create_app`` with FastAPI's TestClient): what acceptance tests cannot
provoke from outside (an unexpected exception), and the auth dependency in another app."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from ledger.application import Principal
from ledger.bootstrap import PostgresLedger
from ledger.domain import TokenKind
from ledger.entrypoints.fastapi import LedgerAuth, add_error_handlers
from ledger.entrypoints.http.app import create_app
from tests.support.principals import new_user


@pytest.fixture
def client(ledger: PostgresLedger) -> Iterator[TestClient]:
    with TestClient(create_app(ledger), raise_server_exceptions=False) as test_client:
        yield test_client


def test_an_unexpected_exception_is_a_500_with_a_request_id_and_no_details(
    ledger: PostgresLedger,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, token = new_user(ledger)

    def explode(*_: object) -> None:
        msg = f"secret detail {token}"
        raise RuntimeError(msg)

    monkeypatch.setattr(ledger, "get_user", explode)
    response = client.get(
        "/api/me", headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-1"}
    )
    assert response.status_code == 500
    assert response.json() == {"error": "internal error", "request_id": "req-1"}
    assert response.headers["x-request-id"] == "req-1"
    assert "secret detail" not in response.text and "Traceback" not in response.text
    assert any(r.exc_info and r.levelname == "ERROR" for r in caplog.records)


def test_hooks_are_entered_at_start_and_exited_in_reverse_at_shutdown(
    ledger: PostgresLedger,
) -> None:
    events: list[str] = []

    def hook(name: str) -> Callable[[PostgresLedger], AbstractContextManager[None]]:
        @contextlib.contextmanager
        def run(given: PostgresLedger) -> Iterator[None]:
            assert given is ledger
            events.append(f"enter {name}")
            yield
            events.append(f"exit {name}")

        return run

    app = create_app(ledger, hooks=[hook("a"), hook("b")])
    with TestClient(app):
        assert events == ["enter a", "enter b"]
    assert events == ["enter a", "enter b", "exit b", "exit a"]


DAEMONS = LedgerAuth({TokenKind.DAEMON_TOKEN})


def jobs(caller: Annotated[Principal, Depends(DAEMONS)]) -> dict[str, str | None]:
    """A route of another application, for daemons only."""
    return {"daemon_id": caller.daemon_id}


def test_the_auth_dependency_in_another_application(ledger: PostgresLedger) -> None:
    app = FastAPI()
    app.state.ledger = ledger
    add_error_handlers(app)
    app.get("/jobs")(jobs)

    user, token = new_user(ledger)
    workspace = ledger.create_workspace(user, "w")
    install = ledger.mint_install_token(user, workspace.id)
    daemon = ledger.exchange_install_token(install.token, "runner-1")
    with TestClient(app) as client:
        ok = client.get("/jobs", headers={"Authorization": f"Bearer {daemon.token}"})
        assert (ok.status_code, ok.json()) == (200, {"daemon_id": "runner-1"})
        wrong_kind = client.get("/jobs", headers={"Authorization": f"Bearer {token}"})
        assert (wrong_kind.status_code, wrong_kind.json()["error"]) == (401, "invalid token")
        missing = client.get("/jobs")
        assert (missing.status_code, missing.json()["error"]) == (401, "missing authorization")


def test_install_tokens_are_never_bearer_kinds() -> None:
    assert LedgerAuth({TokenKind.INSTALL_TOKEN, TokenKind.DAEMON_TOKEN}).allowed_kinds == {
        TokenKind.DAEMON_TOKEN
    }
    with pytest.raises(ValueError, match="bearer kind"):
        LedgerAuth({TokenKind.INSTALL_TOKEN})
