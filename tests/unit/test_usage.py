"""The last_used_at buffer: one entry per credential, bounded, only ever moving forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import UUID, uuid4

from ledger.adapters.credentials_table import CredentialsTable
from ledger.adapters.usage import UsageRecorder
from ledger.domain.clock import to_nanos

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
T0_NS = to_nanos(T0)
SECOND = 1_000_000_000


class FakeTable:
    def __init__(self) -> None:
        self.written: list[dict[UUID, datetime]] = []

    def record_last_used(self, uses: dict[UUID, datetime]) -> None:
        self.written.append(dict(uses))


def recorder(table: FakeTable, max_entries: int = 1000) -> UsageRecorder:
    return UsageRecorder(cast(CredentialsTable, table), interval_s=30, max_entries=max_entries)


def test_many_uses_of_one_token_cost_one_entry_and_one_write() -> None:
    table = FakeTable()
    usage = recorder(table)
    credential = uuid4()
    for second in range(1000):
        usage.note(credential, T0_NS + second * SECOND)
    assert len(usage) == 1
    usage.close()
    assert table.written == [{credential: T0 + timedelta(seconds=999)}]


def test_an_older_use_never_replaces_a_newer_one() -> None:
    table = FakeTable()
    usage = recorder(table)
    credential = uuid4()
    usage.note(credential, T0_NS + 5 * SECOND)
    usage.note(credential, T0_NS)
    usage.close()
    assert table.written == [{credential: T0 + timedelta(seconds=5)}]


def test_the_buffer_is_bounded() -> None:
    table = FakeTable()
    usage = recorder(table, max_entries=10)
    for _ in range(100):
        usage.note(uuid4(), T0_NS)
        assert len(usage) <= 10
    usage.close()
    # A full buffer wakes the writer early; what found no room meanwhile is counted, not kept.
    assert usage.dropped > 0
    assert usage.dropped + sum(len(w) for w in table.written) == 100


def test_nothing_buffered_means_no_write() -> None:
    table = FakeTable()
    usage = recorder(table)
    usage.flush()
    usage.close()
    assert table.written == []
