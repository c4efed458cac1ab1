"""What the event log hands the projections: decoded events with their positions, in pages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from psycopg import Cursor
from psycopg.rows import DictRow

from ledger.adapters.log_order import START, START_MARK, LogPosition, Mark
from ledger.domain.base import LedgerAggregate
from ledger.projections.problems import Problem

Curs = Cursor[DictRow]


class Positioned(NamedTuple):
    """A decoded event, its ordinal in the ledger's event log (``position``: what the audit
    trail shows and its cursors count) and its place in the log's order (``at``).

    ``clean``: the event passed ``EventScreen`` (its rows need no checking); an event from
    anywhere else is checked."""

    position: int
    event: LedgerAggregate.Event
    clean: bool = False
    at: LogPosition = START


@dataclass(frozen=True, slots=True)
class Page:
    """Events read from the log: those that decoded, and a problem for each that did not.

    ``last`` is the mark of the last event read, decoded or not (the mark a step moves to), or
    the mark read after when there was none."""

    events: Sequence[Positioned]
    unreadable: Sequence[Problem]
    last: Mark

    @property
    def size(self) -> int:
        """How many events were read."""
        return len(self.events) + len(self.unreadable)

    @classmethod
    def of(cls, events: Sequence[Positioned]) -> Page:
        """A page of decoded events."""
        if not events:
            return cls(events, (), START_MARK)
        return cls(events, (), Mark(events[-1].at, events[-1].position))
