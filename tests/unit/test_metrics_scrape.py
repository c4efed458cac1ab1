"""A scrape brings the worker's verify-cache counters up to date, without waiting for the
sync thread."""

from __future__ import annotations

from typing import cast

from ledger.application.verify import CacheStats
from ledger.bootstrap import PostgresLedger
from ledger.entrypoints.http import metrics


class _Ledger:
    def __init__(self) -> None:
        self.stats = CacheStats()

    def cache_stats(self) -> CacheStats:
        return self.stats


def _hits() -> float:
    for family in metrics.VERIFY_CACHE.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("result") == "hit":
                return sample.value
    return 0.0


def test_a_scrape_syncs_the_running_cache_counters() -> None:
    ledger = _Ledger()
    sync = metrics.CacheStatsSync(cast(PostgresLedger, ledger), interval_s=3600)
    sync.start()
    try:
        before = _hits()
        ledger.stats.hits += 3
        metrics.sync_at_scrape()
        assert _hits() == before + 3
    finally:
        sync.stop()
    ledger.stats.hits += 5
    after_stop = _hits()
    metrics.sync_at_scrape()  # no running sync: nothing to do, and no error
    assert _hits() == after_stop
