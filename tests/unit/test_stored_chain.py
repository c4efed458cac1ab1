"""The chain as verify checks it: hashes of the stored (pre-upcast) states."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent

from ledger.adapters.stored_hash_mapper import StoredHashMapper
from ledger.application.ledger import ActorAsDict
from ledger.domain import event_hash
from ledger.domain.chain import STORED_HASH, stored_event_hash
from ledger.domain.tamper import ProblemCode, StoredLink, check_chain
from tests.unit.test_chain import golden_credential

STREAM = UUID(int=1)


class _App(Application[UUID]):
    def register_transcodings(self, transcoder: Any) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(ActorAsDict())


def test_the_stored_hash_of_an_event_is_its_event_hash() -> None:
    mapper = _App().mapper
    for event in golden_credential().pending_events:
        stored = mapper.to_stored_event(event)
        state = mapper.transcoder.decode(stored.state)
        assert stored_event_hash(
            stored.topic, stored.originator_id, stored.originator_version, state
        ) == event_hash(event)


def links(*prev: str) -> list[StoredLink]:
    return [StoredLink(10 + v, v, p, f"h{v}") for v, p in enumerate(prev, start=1)]


def test_a_sound_chain_has_no_problem() -> None:
    assert list(check_chain(STREAM, links("0" * 64, "h1", "h2"), credential_id=None)) == []


def test_a_broken_link_names_the_predecessor() -> None:
    [problem] = check_chain(STREAM, links("0" * 64, "hX", "h2"), credential_id=STREAM)
    assert (problem.problem, problem.position, problem.stream_version) == (
        ProblemCode.EVENT_ALTERED,
        11,
        1,
    )
    assert problem.credential_id == STREAM


def test_a_version_gap_names_each_missing_version() -> None:
    chain = [StoredLink(1, 1, "0" * 64, "h1"), StoredLink(4, 4, "h3", "h4")]
    problems = list(check_chain(STREAM, chain, credential_id=None))
    assert [(p.problem, p.stream_version) for p in problems] == [
        (ProblemCode.EVENT_MISSING, 2),
        (ProblemCode.EVENT_MISSING, 3),
    ]


def test_a_stored_version_1_revocation_reads_without_a_note_and_keeps_its_stored_hash() -> None:
    app = _App()
    mapper = StoredHashMapper(transcoder=app.mapper.transcoder)
    revoked = golden_credential().pending_events[-1]
    stored = mapper.to_stored_event(revoked)
    state = mapper.transcoder.decode(stored.state)
    assert state.pop("class_version") == 2
    assert state.pop("note") is None
    old: StoredEvent = replace(stored, state=mapper.transcoder.encode(state))
    read = mapper.to_domain_event(old)
    assert read.note is None  # type: ignore[attr-defined]
    assert vars(read)[STORED_HASH] == stored_event_hash(
        old.topic, old.originator_id, old.originator_version, state
    )
