"""What the event log hands the projections: decoded events with their positions, in pages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from psycopg import Cursor
from psycopg.rows import DictRow

from ledger.domain.base import LedgerAggregate
from ledger.projections.problems import Problem

Curs = Cursor[DictRow]


class Positioned(NamedTuple):
    """A decoded event and its position (notification id) in the ledger's event log.

    ``clean``: the event passed ``EventScreen`` (its rows need no checking); an event from
    anywhere else is checked."""

    position: int
    event: LedgerAggregate.Event
    clean: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    """Events read from the log: those that decoded, and a problem for each that did not.

    ``last`` is the position of the last event read, decoded or not (the position a step moves
    to), or the position read after when there was none."""

    events: Sequence[Positioned]
    unreadable: Sequence[Problem]
    last: int

    @property
    def size(self) -> int:
        """How many events were read."""
        return len(self.events) + len(self.unreadable)

    @classmethod
    def of(cls, events: Sequence[Positioned]) -> Page:
        """A page of decoded events."""
        return cls(events, (), events[-1].position if events else 0)
