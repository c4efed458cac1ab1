"""The application's mapper: eventsourcing's, plus the stored hash of an upcast event.

A stream's next event links to the hash of the event before it *as it was stored*
(``ledger.domain.chain.stored_event_hash``, ADR 0019). An upcaster changes a replayed event's
attributes, so hashing the replayed event would link the next event to a hash that verification
never computes. When an event is upcast, this mapper hashes its stored state first and hands the
hash to the domain in the event's ``_stored_hash`` attribute, which ``event_hash`` prefers and
the canonical encoding leaves out.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent

from ledger.domain.chain import STORED_HASH, stored_event_hash


class StoredHashMapper(Mapper[UUID]):
    """``Mapper`` that marks upcast events with the hash of their stored state."""

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        event = super().to_domain_event(stored_event)
        current = getattr(type(event), "class_version", 1)
        if current == 1:
            return event
        state = stored_event.state
        if self.cipher:
            state = self.cipher.decrypt(state)
        if self.compressor:
            state = self.compressor.decompress(state)
        stored: dict[str, Any] = self.transcoder.decode(state)
        if stored.get("class_version", 1) < current:
            vars(event)[STORED_HASH] = stored_event_hash(
                stored_event.topic,
                stored_event.originator_id,
                stored_event.originator_version,
                stored,
            )
        return event
