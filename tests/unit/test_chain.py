"""The hash chain: every event names the SHA-256 of its predecessor's canonical encoding."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Application

from ledger.application.ledger import ActorAsDict
from ledger.domain import (
    GENESIS_HASH,
    Actor,
    ChainBrokenError,
    Credential,
    RevocationReason,
    Role,
    Workspace,
    event_hash,
    verify_chain,
)
from ledger.domain.chain import canonical_encoding

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
USER = UUID("11111111-2222-3333-4444-555555555555")


def golden_credential() -> Credential:
    credential = Credential.mint_personal_access_token(
        token_hash="ab" * 32,
        token_prefix="mul_ABCDEFGH",
        name="laptop",
        user_id=USER,
        expires_at=T0 + timedelta(days=5),
        at=T0,
        actor=Actor.user(USER),
    )
    credential.renew(at=T0 + timedelta(days=1), actor=Actor.user(USER))
    credential.revoke(
        reason=RevocationReason.USER_REQUEST, at=T0 + timedelta(days=2), actor=Actor.user(USER)
    )
    return credential


def test_first_event_links_to_genesis() -> None:
    [minted, *_] = golden_credential().pending_events
    assert minted.prev_hash == GENESIS_HASH  # type: ignore[attr-defined]


def test_each_event_links_to_the_hash_of_the_one_before() -> None:
    credential = golden_credential()
    events = credential.pending_events
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == event_hash(before)  # type: ignore[attr-defined]
    assert credential.chain_hash == event_hash(events[-1])
    assert verify_chain(events) == credential.chain_hash


def test_workspace_events_are_chained_too() -> None:
    owner = USER
    workspace = Workspace.create(id=USER, name="acme", owner_id=owner, at=T0)
    workspace.add_member(by=owner, user_id=UUID(int=7), role=Role.ADMIN, at=T0)
    workspace.remove_member(by=owner, user_id=UUID(int=7), at=T0)
    assert verify_chain(workspace.pending_events) == workspace.chain_hash


def test_canonical_encoding_is_pinned() -> None:
    """The encoding is part of the stored data: changing it would break every chain."""
    [minted, renewed, revoked] = golden_credential().pending_events
    assert canonical_encoding(revoked) == (
        b'{"__type__":"Credential.Revoked",'
        b'"actor":{"id":"11111111-2222-3333-4444-555555555555","type":"user"},'
        b'"note":null,'
        b'"originator_id":"' + str(revoked.originator_id).encode() + b'",'
        b'"originator_version":3,'
        b'"prev_hash":"' + event_hash(renewed).encode() + b'",'
        b'"reason":"user_request",'
        b'"timestamp":"2026-03-03T09:30:00.000000+00:00"}'
    )
    assert event_hash(minted) == "667b80a4fa83af80745a81c23c42211adb5a73e09b6df5f696396b4c4606c85a"


def test_hashes_survive_a_round_trip_through_the_store() -> None:
    class App(Application[UUID]):
        def register_transcodings(self, transcoder: Any) -> None:
            super().register_transcodings(transcoder)
            transcoder.register(ActorAsDict())

    app = App()
    credential = golden_credential()
    app.save(credential)
    stored = list(app.events.get(credential.id))
    reloaded: Credential = app.repository.get(credential.id)
    assert verify_chain(stored) == credential.chain_hash
    assert reloaded.chain_hash == credential.chain_hash


def test_an_edited_event_breaks_the_chain() -> None:
    events = list(golden_credential().pending_events)
    edited = dataclasses.replace(events[1], expires_at_after=T0 + timedelta(days=999))  # type: ignore[type-var]
    with pytest.raises(ChainBrokenError):
        verify_chain([events[0], edited, events[2]])


def test_a_deleted_event_breaks_the_chain() -> None:
    events = list(golden_credential().pending_events)
    with pytest.raises(ChainBrokenError):
        verify_chain([events[0], events[2]])


def test_a_reordered_stream_breaks_the_chain() -> None:
    events = list(golden_credential().pending_events)
    with pytest.raises(ChainBrokenError):
        verify_chain([events[1], events[0], events[2]])


def test_naive_datetimes_have_no_canonical_encoding() -> None:
    @dataclasses.dataclass
    class Odd:
        at: datetime

    with pytest.raises(ValueError, match="timezone-aware"):
        canonical_encoding(Odd(datetime(2026, 1, 1)))  # noqa: DTZ001
