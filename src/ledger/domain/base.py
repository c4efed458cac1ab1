"""The aggregate base class: every event carries the actor and the hash of its predecessor."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import resolve_topic

from ledger.domain.chain import GENESIS_HASH, event_hash
from ledger.domain.model import Actor

TAgg = TypeVar("TAgg", bound="LedgerAggregate")


class LedgerAggregate(Aggregate):
    """An aggregate whose events form a hash chain (``chain_hash`` is the last event's hash)."""

    _last_event: LedgerAggregate.Event
    _chain_hash: str | None

    def __init__(self) -> None:
        """State is set by the events' ``apply``; nothing is passed to the constructor.

        Every subclass defines its own ``__init__`` too: without one, the library's metaclass
        would turn the class annotations into required constructor arguments."""

    class Event(Aggregate.Event):
        """Base of every ledger event: who did it and the previous event's hash."""

        actor: Actor
        prev_hash: str

        def mutate(self, aggregate: Any) -> Any:
            result = super().mutate(aggregate)
            assert result is not None
            # Hashed when the next event needs it: a replay hashes no event but the last, a
            # mint none at all (ADR 0015).
            result._last_event = self
            result._chain_hash = None
            return result

    @property
    def chain_hash(self) -> str:
        """The hash of the stream's last event: the next event's ``prev_hash``."""
        if self._chain_hash is None:
            self._chain_hash = event_hash(self._last_event)
        return self._chain_hash

    class Created(Event, Aggregate.Created):
        """Base of every creation event."""

        def mutate(self, aggregate: Any) -> Any:
            """The library's construction of the aggregate, without its per-event matching
            of the event's attributes to ``__base_init__`` and ``__init__`` signatures (a
            third of a replayed event's cost): a ledger aggregate's ``__init__`` takes no
            arguments (``tests/unit/test_aggregate_replay`` holds every subclass to that and
            the result to the library's)."""
            assert aggregate is None
            aggregate_class = resolve_topic(self.originator_topic)
            result = aggregate_class.__new__(aggregate_class)
            result.__base_init__(self.originator_id, self.originator_version, self.timestamp)
            result.__init__()
            self.apply(result)
            result._last_event = self
            result._chain_hash = None
            return result

    @classmethod
    def _start(
        cls,
        event_class: type[LedgerAggregate.Created],
        *,
        id: UUID,  # noqa: A002 - the library's own keyword
        at: datetime,
        actor: Actor,
        **attributes: Any,
    ) -> Self:
        """Create the aggregate with its first event, at the injected time."""
        return cls._create(
            event_class, id=id, timestamp=at, actor=actor, prev_hash=GENESIS_HASH, **attributes
        )

    def _emit(
        self,
        event_class: type[LedgerAggregate.Event],
        *,
        at: datetime,
        actor: Actor,
        **attributes: Any,
    ) -> None:
        """Trigger the next event of this stream, linked to the previous one by hash."""
        self.trigger_event(
            event_class, timestamp=at, actor=actor, prev_hash=self.chain_hash, **attributes
        )
