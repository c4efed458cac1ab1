"""What the event log hands the projections: decoded events with their positions."""

from __future__ import annotations

from typing import NamedTuple

from psycopg import Cursor
from psycopg.rows import DictRow

from ledger.domain.base import LedgerAggregate

Curs = Cursor[DictRow]


class Positioned(NamedTuple):
    """A decoded event and its position (notification id) in the ledger's event log."""

    position: int
    event: LedgerAggregate.Event
