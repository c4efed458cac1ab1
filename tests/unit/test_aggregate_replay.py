"""Replaying a creation event: the ledger's shortcut builds what the library's construction
builds (``LedgerAggregate.Created.mutate`` skips the library's signature matching, which holds
only while every aggregate's ``__init__`` takes no arguments)."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from ledger.domain import Actor, Credential, TokenKind, User, Workspace
from ledger.domain.base import LedgerAggregate
from ledger.domain.tokens import issue

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _subclasses(cls: type[LedgerAggregate]) -> list[type[LedgerAggregate]]:
    found: list[type[LedgerAggregate]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def test_every_aggregate_init_takes_no_arguments() -> None:
    aggregates = _subclasses(LedgerAggregate)
    assert {Credential, User, Workspace} <= set(aggregates)
    for aggregate in aggregates:
        init = vars(aggregate)["__init__"]  # each declares its own (see LedgerAggregate)
        assert list(inspect.signature(init).parameters) == ["self"], aggregate


def _created() -> list[LedgerAggregate]:
    user_id = uuid4()
    actor = Actor.user(user_id)
    user = User.create(id=user_id, name="ada", email="ada@example.org", at=T0, actor=actor)
    workspace = Workspace.create(id=uuid4(), name="w", owner_id=user_id, at=T0)
    pat, install, daemon = (issue(kind) for kind in TokenKind)
    personal = Credential.mint_personal_access_token(
        token_hash=pat.token_hash,
        token_prefix=pat.display_prefix,
        name="t",
        user_id=user_id,
        expires_at=None,
        at=T0,
        actor=actor,
    )
    install_token = Credential.mint_install_token(
        token_hash=install.token_hash,
        token_prefix=install.display_prefix,
        workspace_id=workspace.id,
        issuer_id=user_id,
        at=T0,
        actor=actor,
    )
    daemon_token = Credential.mint_daemon_token(
        token_hash=daemon.token_hash,
        token_prefix=daemon.display_prefix,
        install_token=install_token,
        daemon_id="d1",
        at=T0,
        actor=actor,
    )
    return [user, workspace, personal, install_token, daemon_token]


def _state(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


@pytest.mark.parametrize("aggregate", _created(), ids=lambda a: type(a).__name__)
def test_the_shortcut_builds_what_the_library_builds(aggregate: LedgerAggregate) -> None:
    [event] = aggregate.collect_events()
    assert isinstance(event, LedgerAggregate.Created)
    fast = event.mutate(None)
    # The next class in the order after the shortcut: the library's construction.
    library = super(LedgerAggregate.Created, event).mutate(None)
    assert type(fast) is type(library) is type(aggregate)
    assert _state(fast) == _state(library)
    assert fast.chain_hash == library.chain_hash == aggregate.chain_hash
    assert fast.collect_events() == []
