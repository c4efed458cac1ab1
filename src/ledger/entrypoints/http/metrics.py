"""Prometheus metrics of the service (``GET /metrics``).

With ``PROMETHEUS_MULTIPROC_DIR`` set (``ledger serve`` sets it, to a fresh temporary directory,
before any worker imports this module) every worker writes its samples to files there and a
scrape of any worker reads them all: the numbers are the service's, not one worker's (ADR 0011).
Without it (an app built in-process, e.g. by tests) the process's default registry is used.

- ``ledger_http_requests_total{method, route, status}`` and
  ``ledger_http_request_duration_seconds{method, route}``: by route *template*
  (``/api/workspaces/{workspace_id}/members``), so ids never multiply the series.
- ``ledger_commands_total{command, outcome}``: each ``/api`` route's ledger call, ``outcome`` is
  ``ok`` or the contract's error code.
- ``ledger_verify_cache_lookups_total{result="hit"|"miss"}`` (from ``VerifierCache.stats``, synced
  every few seconds and at each scrape) and ``ledger_verify_cache_hit_ratio`` computed from them
  at scrape time over every worker.
- ``ledger_write_batch_commands`` (histogram) and ``ledger_write_conflicts_total``: the
  group-commit writer's batches (its ``on_batch`` hook).
- ``ledger_projection_lag_events{projection}``: how far each projection is behind, set with
  ``set_projection_lag``; ``ProjectionLagSync`` does, in every worker, from the tracking rows.
- Read replicas (ADR 0023), from ``PostgresLedger.replica_report()`` by ``ReplicaStatsSync``:
  ``ledger_replica_up{replica}`` (answers its checks), ``ledger_replica_lag_seconds{replica}``
  (how long ago the primary first wrote what it has not replayed; +Inf while down),
  ``ledger_replica_reads_total{source}`` (reads a replica could serve, by who served them:
  ``replica-N`` or ``primary``), ``ledger_replica_skips_total{replica, reason}`` (passed over:
  ``down``, ``lagging`` past ``LEDGER_REPLICA_MAX_LAG_MS``, ``behind`` what the read needed) and
  ``ledger_unknown_token_primary_reads_total{outcome}`` (a replica's "unknown" asked again of
  the primary, or not: ``over_budget``). Replicas are named by their place in
  ``LEDGER_READ_DATABASE_URLS``, never by URL.
- ``ledger_tokens_expiring_soon{kind}``: credentials neither revoked nor consumed whose expiry
  is within the next 7 days, counted by the scraping worker from the credentials table (one
  indexed aggregate query, its answer kept ``EXPIRING_CACHE_S`` seconds): ``ExpiringSoon``.
- ``ledger_auth_failures_total{route, reason}`` and ``ledger_exchange_throttled_total``: failed
  authentications and throttled exchanges (``ledger.entrypoints.http.abuse``).
- ``ledger_projection_errors{projection, problem}``: events a projection projected in a safe
  form (``problem="unsafe_text"``) or skipped (the other problems), from
  ``ledger_projection_errors`` (docs/adr/0016); set by ``ProjectionLagSync`` too.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

import psycopg
from eventsourcing.persistence import PersistenceError
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ledger.adapters.background import Periodic
from ledger.bootstrap import PostgresLedger
from ledger.domain import TokenKind
from ledger.domain.errors import LedgerError
from ledger.projections import NAMES
from ledger.projections.problems import PROBLEMS

_log = logging.getLogger("ledger.http.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("ledger_http_requests", "HTTP requests answered", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "ledger_http_request_duration_seconds",
    "Time from request to the end of the answer",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
COMMANDS = Counter(
    "ledger_commands", "Ledger calls made by the HTTP routes, by outcome", ["command", "outcome"]
)
VERIFY_CACHE = Counter(
    "ledger_verify_cache_lookups", "Verifier cache lookups (hits and misses)", ["result"]
)
WRITE_BATCH = Histogram(
    "ledger_write_batch_commands",
    "Commands per group-commit write transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
WRITE_CONFLICTS = Counter(
    "ledger_write_conflicts", "Commands refused at write time because they lost a version race"
)
PROJECTION_LAG = Gauge(
    "ledger_projection_lag_events",
    "Events in the store that a projection has not processed yet",
    ["projection"],
    multiprocess_mode="mostrecent",
)

PROJECTION_ERRORS = Gauge(
    "ledger_projection_errors",
    "Events a projection projected in a safe form (unsafe_text) or could not project",
    ["projection", "problem"],
    multiprocess_mode="mostrecent",
)


def set_projection_errors(counts: dict[tuple[str, str], int]) -> None:
    """Report each projection's recorded events by problem (zero for those with none)."""
    for name in NAMES:
        for code in PROBLEMS:
            PROJECTION_ERRORS.labels(name, code).set(counts.get((name, code), 0))


TAMPER_PROBLEMS = Gauge(
    "ledger_tamper_problems",
    "Problems the last background verify pass found in the store (0: none)",
    multiprocess_mode="mostrecent",
)


HORIZON_LAG = Gauge(
    "ledger_log_horizon_lag_events",
    "Committed events at or above the log's horizon: readers wait for an older transaction",
    multiprocess_mode="mostrecent",
)
HORIZON_HOLDER_AGE = Gauge(
    "ledger_log_horizon_holder_age_seconds",
    "Age of the oldest open transaction of the cluster (the one holding the horizon back)",
    multiprocess_mode="mostrecent",
)


REPLICA_UP = Gauge(
    "ledger_replica_up",
    "Whether a read replica answered its last check (1) or not (0)",
    ["replica"],
    multiprocess_mode="mostrecent",
)
REPLICA_LAG = Gauge(
    "ledger_replica_lag_seconds",
    "How long ago the primary first wrote WAL that the replica has not replayed yet",
    ["replica"],
    multiprocess_mode="mostrecent",
)
REPLICA_READS = Counter(
    "ledger_replica_reads", "Reads a replica could serve, by who served them", ["source"]
)
REPLICA_SKIPS = Counter(
    "ledger_replica_skips", "Reads that passed a replica over, by reason", ["replica", "reason"]
)
UNKNOWN_TOKEN_READS = Counter(
    "ledger_unknown_token_primary_reads",
    "Verify misses a replica did not know: asked of the primary again, or over the budget",
    ["outcome"],
)


def set_projection_lag(projection: str, lag: int) -> None:
    """Report how far ``projection`` is behind the event store (the projection runner calls it)."""
    PROJECTION_LAG.labels(projection).set(lag)


def observe_batch(commands: int, conflicts: int) -> None:
    """The writer's ``on_batch`` hook."""
    WRITE_BATCH.observe(commands)
    if conflicts:
        WRITE_CONFLICTS.inc(conflicts)


class CacheStatsSync:
    """Copies the growth of one ledger's ``VerifierCache.stats`` into the counters.

    The cache counts in plain integers (no metrics library on its hot path); this adds what
    was counted since the last sync, from a background thread every ``interval_s`` and at each
    scrape of this worker.
    """

    def __init__(self, ledger: PostgresLedger, interval_s: float = 5.0) -> None:
        self._stats = ledger.cache_stats()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._periodic = Periodic("ledger-metrics-sync", interval_s, self.sync, at_stop=True)

    def sync(self) -> None:
        with self._lock:
            hits, misses = self._stats.hits, self._stats.misses
            if hits > self._hits:
                VERIFY_CACHE.labels("hit").inc(hits - self._hits)
            if misses > self._misses:
                VERIFY_CACHE.labels("miss").inc(misses - self._misses)
            self._hits, self._misses = hits, misses

    def start(self) -> None:
        global _scrape_sync  # noqa: PLW0603 - one running sync per worker process
        self._periodic.start()
        _scrape_sync = self

    def stop(self) -> None:
        global _scrape_sync  # noqa: PLW0603 - see start
        if _scrape_sync is self:
            _scrape_sync = None
        self._periodic.stop()


_scrape_sync: CacheStatsSync | None = None
"""The worker's running ``CacheStatsSync``, synced again at each scrape it serves."""


def sync_at_scrape() -> None:
    """Bring this worker's cache counters up to date before a scrape is rendered."""
    sync = _scrape_sync
    if sync is not None:
        sync.sync()


class ReplicaStatsSync:
    """Sets the replica gauges and adds the growth of the read counters, every
    ``interval_s`` (the router counts in plain integers, as the verify cache does)."""

    def __init__(self, ledger: PostgresLedger, interval_s: float = 2.0) -> None:
        self._ledger = ledger
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, ...], int] = {}
        self._periodic = Periodic(
            "ledger-replica-sync", interval_s, self.sync, at_start=True, at_stop=True
        )

    def _add(self, counter: Counter, labels: tuple[str, ...], total: int) -> None:
        key = (str(id(counter)), *labels)
        grown = total - self._seen.get(key, 0)
        if grown > 0:
            counter.labels(*labels).inc(grown)
        self._seen[key] = max(total, self._seen.get(key, 0))

    def sync(self) -> None:
        with self._lock:
            reports = self._ledger.replica_report()
            for report in reports:
                REPLICA_UP.labels(report.name).set(1 if report.up else 0)
                REPLICA_LAG.labels(report.name).set(report.lag_s if report.up else float("inf"))
                self._add(REPLICA_READS, (report.name,), report.reads)
                for reason, count in report.skips.items():
                    self._add(REPLICA_SKIPS, (report.name, reason), count)
            if reports:
                self._add(REPLICA_READS, ("primary",), self._ledger.primary_reads())
                unknown = self._ledger.unknown_token_stats()
                self._add(UNKNOWN_TOKEN_READS, ("asked",), unknown.asked_primary)
                self._add(UNKNOWN_TOKEN_READS, ("over_budget",), unknown.over_budget)

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()


class ProjectionLagSync:
    """Sets ``ledger_projection_lag_events`` from the tracking rows,
    ``ledger_projection_errors`` from the recorded problems and the log horizon's gauges, every
    ``interval_s``."""

    def __init__(self, ledger: PostgresLedger, interval_s: float = 5.0) -> None:
        self._projections = ledger.projections
        self._periodic = Periodic("ledger-lag-sync", interval_s, self.sync, at_start=True)
        self._failing: str | None = None

    def sync(self) -> None:
        try:
            lags = self._projections.lag()
            errors = self._projections.problem_counts()
        except (LedgerError, PersistenceError, psycopg.Error) as error:
            self._failed(error)
            return
        for name, lag in lags.items():
            set_projection_lag(name, lag)
        set_projection_errors(errors)
        try:
            horizon = self._projections.horizon()
        except (LedgerError, PersistenceError, psycopg.Error) as error:
            self._failed(error)
            return
        self._failing = None
        HORIZON_LAG.set(horizon.behind_events)
        HORIZON_HOLDER_AGE.set(horizon.holder_age_seconds or 0.0)

    def _failed(self, error: Exception) -> None:
        """The gauges keep their last values. A store that is away shows on /readyz; a refusal
        (e.g. a runtime role without a grant) would not: say why, once per cause."""
        reason = f"{type(error).__name__}: {str(error).strip()}"
        if reason != self._failing:
            _log.warning("projection lag metrics not updated: %s", reason)
            self._failing = reason

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()


def _hit_ratio(metrics: Iterable[Metric]) -> GaugeMetricFamily:
    totals = {"hit": 0.0, "miss": 0.0}
    for metric in metrics:
        if metric.name == "ledger_verify_cache_lookups":
            for sample in metric.samples:
                result = sample.labels.get("result", "")
                if sample.name.endswith("_total") and result in totals:
                    totals[result] += sample.value
    lookups = totals["hit"] + totals["miss"]
    return GaugeMetricFamily(
        "ledger_verify_cache_hit_ratio",
        "Verifier cache hits / lookups since the service started (all workers)",
        value=totals["hit"] / lookups if lookups else 0.0,
    )


class _Scrape(Collector):
    """Everything the process (or every worker) recorded, plus the derived hit ratio."""

    def __init__(self, source: Collector | CollectorRegistry) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        metrics = list(self._source.collect())
        yield from metrics
        yield _hit_ratio(metrics)


EXPIRING_WINDOW = timedelta(days=7)
EXPIRING_CACHE_S = 15.0


class ExpiringSoon(Collector):
    """``ledger_tokens_expiring_soon{kind}``, computed at scrape time and kept for
    ``cache_s`` seconds of the ledger's clock (a scrape storm costs one query per window).
    When the store does not answer the family is left out of that scrape."""

    def __init__(self, ledger: PostgresLedger, cache_s: float = EXPIRING_CACHE_S) -> None:
        self._ledger = ledger
        self._cache = timedelta(seconds=cache_s)
        self._lock = threading.Lock()
        self._counted_at: datetime | None = None
        self._counts: dict[str, int] = {}

    def counts(self) -> dict[str, int] | None:
        """Credentials expiring within 7 days by kind (every kind, zeros included)."""
        now = self._ledger.clock.now()
        with self._lock:
            if self._counted_at is None or not (
                self._counted_at <= now < self._counted_at + self._cache
            ):
                try:
                    counted = self._ledger.credentials.count_expiring(now, now + EXPIRING_WINDOW)
                except (LedgerError, PersistenceError, psycopg.Error):
                    return None
                self._counts = {kind.value: counted.get(kind.value, 0) for kind in TokenKind}
                self._counted_at = now
            return dict(self._counts)

    def collect(self) -> Iterator[Metric]:
        counts = self.counts()
        if counts is None:
            return
        family = GaugeMetricFamily(
            "ledger_tokens_expiring_soon",
            "Credentials neither revoked nor consumed that expire within the next 7 days",
            labels=["kind"],
        )
        for kind, count in counts.items():
            family.add_metric([kind], count)
        yield family


def render(*extra: Collector) -> bytes:
    """The Prometheus text exposition of the service's metrics (plus ``extra`` collectors,
    computed by the scraping worker)."""
    source: Collector | CollectorRegistry = REGISTRY
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        source = MultiProcessCollector(None, path=path)  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(source))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)
