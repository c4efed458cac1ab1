"""Metrics kept in step by background syncs: a scrape brings the worker's verify-cache counters
up to date without waiting for the sync thread, and a refused projection-lag sync says why."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import cast

import psycopg
import pytest

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


class _FailingProjections:
    def __init__(self) -> None:
        self.refuse = True

    def lag(self) -> dict[str, int]:
        if self.refuse:
            raise psycopg.errors.InsufficientPrivilege("permission denied for table x")
        return {}

    def problem_counts(self) -> dict[tuple[str, str], int]:
        return {}

    def horizon(self) -> SimpleNamespace:
        return SimpleNamespace(behind_events=0, holder_age_seconds=None)


def test_a_refused_lag_sync_is_logged_once_per_cause(caplog: pytest.LogCaptureFixture) -> None:
    projections = _FailingProjections()
    sync = metrics.ProjectionLagSync(cast(PostgresLedger, SimpleNamespace(projections=projections)))
    with caplog.at_level(logging.WARNING, logger="ledger.http.metrics"):
        sync.sync()
        sync.sync()
        projections.refuse = False
        sync.sync()
        projections.refuse = True
        sync.sync()
    warnings = [r.getMessage() for r in caplog.records if r.name == "ledger.http.metrics"]
    refused = "InsufficientPrivilege: permission denied for table x"
    assert warnings == [f"projection lag metrics not updated: {refused}"] * 2
