"""The composition root: the one place where a running ledger is assembled from ``Settings``.

``build_ledger`` wires the ``Ledger`` application to its PostgreSQL adapters (event recorder,
group-commit writer and its post-commit change announcer, credentials table, usage flusher,
verify cache and its invalidator, projections and audit queries). ``open_ledger`` finds the
database first (the embedded server when ``LEDGER_DATABASE_URL`` is unset, migrated on first
use; a configured one must be at the schema's head). The HTTP service, every CLI command, the
demo, the benchmarks and the tests build their ledgers here; entry points then use the narrow
surface of ``PostgresLedger`` (``ready``, ``cache_stats``, ``observe_writes``,
``projections``), not its parts.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from psycopg import sql
from psycopg_pool import ConnectionPool

from ledger.adapters import migrations
from ledger.adapters.announcer import ChangeAnnouncer
from ledger.adapters.audit_watch import AuditWatch
from ledger.adapters.credentials_table import CredentialsTable
from ledger.adapters.exchange_keys import key_path, load_or_create_keys
from ledger.adapters.invalidation import CacheInvalidator
from ledger.adapters.postgres import (
    CREDENTIALS_TABLE,
    check_liveness,
    connection_pool,
    database_url,
    embedded_server,
    eventsourcing_env,
    guard_transactions,
    translate_store_errors,
    with_database,
)
from ledger.adapters.recorder import BatchCommand, LedgerRecorder
from ledger.adapters.replica_reads import RoutedCredentials, UnknownTokenStats
from ledger.adapters.replicas import (
    UNKNOWN_LSN,
    ReadRouter,
    ReplicaReport,
    WrittenAt,
    primary_lsn,
)
from ledger.adapters.stored_hash_mapper import StoredHashMapper
from ledger.adapters.usage import UsageRecorder
from ledger.adapters.writer import GroupCommitWriter
from ledger.application import Ledger
from ledger.application.ledger import event_transcoder
from ledger.application.ports import Ports, WriteOutcome
from ledger.application.verify import CacheStats, Verifier, VerifierCache
from ledger.config import Settings
from ledger.domain.clock import Clock
from ledger.domain.credential_row import CredentialRow
from ledger.domain.errors import SchemaMissing, ServiceUnavailable
from ledger.domain.exchange import ExchangePolicy
from ledger.domain.limits import LimitSettings, TokenLimit
from ledger.projections import AuditQueries, Projections

log = logging.getLogger(__name__)


def check_schema(url: str) -> None:
    """Raise ``SchemaMissing`` unless the database is migrated to this version's head."""
    with translate_store_errors(), psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT to_regclass('alembic_version')").fetchone()
        version = None
        if row is not None and row[0] is not None:
            found = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            version = found[0] if found else None
    if version != migrations.head_revision():
        msg = f"the database schema is at {version or 'nothing'}: run `ledger migrate` first"
        raise SchemaMissing(msg)


class PostgresLedger(Ledger):
    """The ledger on a migrated PostgreSQL database, with every adapter wired in.

    Built by ``build_ledger``. Besides the contract's operations (``Ledger``) it offers entry
    points a narrow surface: ``ready()`` (readiness), ``cache_stats()`` (the verify cache's
    counters), ``observe_writes(callback)`` (each write batch's size and conflicts),
    ``audit_watch(on_problems)`` (scheduled checkpoints and verify passes) and ``projections``
    (the projection runner: start, stop, status, rebuild).
    """

    name = "Ledger"  # the library names tables after the application: the same for every build

    recorder: LedgerRecorder
    credentials: CredentialsTable
    audit: AuditQueries

    def __init__(self, database_url: str, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.database_url = database_url
        super().__init__(
            eventsourcing_env(database_url, settings),
            ports=self._wire,
            clock=clock,
            command_attempts=settings.command_attempts,
            store_errors=translate_store_errors,
            mapper_class=StoredHashMapper,
            exchange_policy=ExchangePolicy(
                retry_window=timedelta(seconds=settings.exchange_retry_window_s),
                replay_revokes=settings.replay_revokes,
            ),
            limits=LimitSettings(
                personal_access_tokens_per_user=settings.max_tokens_per_user,
                daemon_tokens_per_workspace=settings.max_daemon_tokens_per_workspace,
            ),
        )

    def _wire(self, ledger: Ledger) -> Ports:
        """The adapters, built once the application's recorder and mapper exist."""
        settings = self.settings
        recorder = self.recorder
        if not isinstance(recorder, LedgerRecorder):  # pragma: no cover - configuration error
            msg = "the ledger needs its own recorder"
            raise TypeError(msg)
        self.recorder = recorder
        # The library's pool (the writer's connections, projections, audit reads) finds a
        # connection that a database restart killed before handing it out, as the ledger's own
        # pool does.
        check_liveness(recorder.datastore.pool)
        self._pool = connection_pool(self.database_url, settings, name="ledger-credentials")
        # Reads that a replica may serve (ADR 0023); none configured: all on the primary.
        self.written = WrittenAt(max_entries=max(settings.verify_cache_max_entries, 1000))
        self.reads = ReadRouter(
            self._pool,
            settings.read_database_urls,
            max_lag_s=settings.replica_max_lag_ms / 1000,
            pool_size=settings.pool_size,
            configure=guard_transactions(settings),
        )
        self.reads.on_settled = self.written.settle
        table: CredentialsTable
        if self.reads.enabled:
            table = RoutedCredentials(
                self._pool,
                schema=recorder.datastore.schema,
                router=self.reads,
                written=self.written,
                unknown_token_primary_reads_per_s=settings.unknown_token_primary_reads_per_s,
                before_read=self._ensure_invalidator,
            )
        else:
            table = CredentialsTable(self._pool, schema=recorder.datastore.schema)
        recorder.use_read_pool(self._pool)
        self.usage = UsageRecorder(
            table,
            interval_s=settings.last_used_flush_s,
            max_entries=settings.last_used_max_entries,
        )
        cache = VerifierCache(
            max_ttl=timedelta(seconds=settings.verify_cache_max_ttl_s),
            max_entries=settings.verify_cache_max_entries,
        )
        self._invalidator: CacheInvalidator | None = None
        self._invalidator_lock = threading.Lock()
        verifier = Verifier(
            table,
            cache,
            ledger.clock,
            self.usage,
            # With replicas the invalidator also learns where others' changes are in the WAL,
            # which every miss needs, cache or not.
            before_read=self._ensure_invalidator if cache.enabled or self.reads.enabled else None,
            store_errors=translate_store_errors,
        )
        self.projections = Projections(
            ledger,
            recorder.datastore,
            database_url=self.database_url,
            events_table=recorder.events_table_name,
            channel=recorder.channel_name,
            clock=ledger.clock,
            batch_size=settings.projection_batch_size,
            wait_timeout_s=settings.audit_wait_s,
        )
        self.writer = GroupCommitWriter(
            recorder,
            max_batch=settings.max_batch,
            threads=settings.writer_threads,
            linger_s=settings.write_linger_ms / 1000,
        )
        # Other processes hear of each committed batch after its commit (ADR 0018).
        self.announcer = ChangeAnnouncer(
            self.database_url, channel=recorder.channel_name, origin=recorder.origin
        )
        self.writer.after_commit = self._announce
        writer = self.writer

        def write(
            events: list[StoredEvent], rows: list[CredentialRow], limit: TokenLimit | None
        ) -> WriteOutcome:
            return writer.submit(BatchCommand(events, rows, limit))

        return Ports(
            credentials=table,
            verifier=verifier,
            audit=AuditQueries(
                self.projections,
                recorder.datastore,
                credentials_table=CREDENTIALS_TABLE,
                router=self.reads,
            ),
            write=write,
            exchange_keys=load_or_create_keys(key_path(settings)),
            read_streams=recorder.select_credential_and_workspace,
            close=self._close_adapters,
        )

    @property
    def credentials_pool(self) -> ConnectionPool[Any]:
        """The auth table's connection pool (for operators and tests, not entry points)."""
        return self._pool

    # The narrow surface for entry points.

    def ready(self) -> None:
        """Raise ``ServiceUnavailable`` unless the store answers and the schema is there (one
        primary-key read of the auth table). Any database error counts: a probe must say
        "not ready", never fail (a dropped table is ``UndefinedTable``, not a connection error)."""
        try:
            with translate_store_errors():
                self.credentials.get(UUID(int=0))
        except psycopg.Error as error:
            raise ServiceUnavailable(type(error).__name__) from error

    def cache_stats(self) -> CacheStats:
        """The verify cache's live counters (hits, misses, evictions)."""
        return self.verifier.cache.stats

    def replica_report(self) -> list[ReplicaReport]:
        """Each read replica's state (usable, lag) and counters (reads, skips by reason)."""
        return self.reads.report()

    def primary_reads(self) -> int:
        """Reads that could have gone to a replica and were served by the primary."""
        return self.reads.primary_reads if self.reads.enabled else 0

    def unknown_token_stats(self) -> UnknownTokenStats:
        """Verify misses a replica answered "unknown" that were asked of the primary again, or
        not (over the budget)."""
        credentials = self.credentials
        if isinstance(credentials, RoutedCredentials):
            return credentials.unknown
        return UnknownTokenStats()

    @contextlib.contextmanager
    def read_connection(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """An autocommit connection for a long read that needs no read-after-write (an
        export): a usable replica's, else the primary's. The log read there below that
        server's horizon (``ledger.adapters.log_order``, which works on a hot standby too) is
        a prefix of the primary's log; a ``REPEATABLE READ`` transaction keeps one snapshot."""
        with self.reads.connection() as (conn, _):
            yield conn

    def observe_writes(self, callback: Callable[[int, int], None] | None) -> None:
        """Call ``callback(commands, conflicts)`` after each write batch (``None``: stop)."""
        self.writer.on_batch = callback

    def audit_watch(self, on_problems: Callable[[int], None]) -> AuditWatch:
        """Scheduled checkpoints and background verify passes as settings ask (ADR 0019); the
        caller starts and stops it. ``on_problems`` gets the count of each pass."""
        return AuditWatch(
            self.database_url, self.mapper, self.settings, self.clock, on_problems=on_problems
        )

    # Lifecycle.

    def _ensure_invalidator(self) -> None:
        """Start following other processes' changes before the cache holds anything."""
        if self._invalidator is not None:
            return
        with self._invalidator_lock:
            if self._invalidator is None:
                invalidator = CacheInvalidator(
                    self.database_url,
                    self.verifier.cache,
                    events_table=self.recorder.events_table_name,
                    channel=self.recorder.channel_name,
                    own_origin=self.recorder.origin,
                    written=self.written if self.reads.enabled else None,
                )
                invalidator.start()
                self._invalidator = invalidator

    def _announce(self, commands: Sequence[BatchCommand]) -> None:
        ids = [row.credential_id for command in commands for row in command.credential_rows]
        if self.reads.enabled and ids:
            # Before the writing command returns (and this process evicts its cache): its own
            # misses of these credentials read only what has replayed this commit.
            try:
                lsn = primary_lsn(self._pool)
            except (psycopg.Error, ServiceUnavailable):
                log.warning("no WAL position after a commit: its credentials read the primary")
                lsn = UNKNOWN_LSN
            self.written.note(ids, lsn)
        self.announcer.announce(ids)

    def _close_adapters(self) -> None:
        self.projections.stop()
        if self._invalidator is not None:
            self._invalidator.stop()
        self.usage.close()
        self.writer.close()
        self.announcer.close()
        self.reads.close()
        self._pool.close()


def build_ledger(
    database_url: str, settings: Settings | None = None, *, clock: Clock | None = None
) -> PostgresLedger:
    """A running ledger on ``database_url`` (migrated already), configured by ``settings``
    and reading time from ``clock`` (the wall clock by default). The caller closes it."""
    return PostgresLedger(database_url, settings or Settings(), clock)


def migrate(settings: Settings) -> None:
    """Create or upgrade every table of the ledger's database (``ledger migrate``)."""
    with database_url(settings) as url:
        migrations.upgrade(url)


@contextlib.contextmanager
def prepared_database(settings: Settings) -> Iterator[str]:
    """The URL of the ledger's database, at the schema's head; an embedded server is stopped
    on exit.

    With no ``LEDGER_DATABASE_URL`` the embedded server is used and migrated on first use;
    a configured server must have been migrated with ``ledger migrate`` (``SchemaMissing``).
    """
    with database_url(settings) as url:
        if settings.database_url is None:
            migrations.upgrade(url)
        check_schema(url)
        yield url


def stored_event_mapper() -> StoredHashMapper:
    """How a ledger's stored events decode, made without a ledger (no pool, no thread): what
    ``ledger audit verify`` and ``repair-auth`` read with (verify forks its helper process
    only from a process with one thread, ADR 0026)."""
    return StoredHashMapper(transcoder=event_transcoder())


@contextlib.contextmanager
def open_ledger(settings: Settings, *, clock: Clock | None = None) -> Iterator[PostgresLedger]:
    """A ready ledger for ``settings`` (``prepared_database``); closed on exit."""
    with prepared_database(settings) as url:
        ledger = build_ledger(url, settings, clock=clock)
        try:
            yield ledger
        finally:
            ledger.close()


@contextlib.contextmanager
def scratch_ledger(settings: Settings, dbname: str) -> Iterator[PostgresLedger]:
    """A ledger on a database ``dbname`` of the embedded server, dropped and created anew
    (``ledger demo``: never mixed with real data); closed, and the server stopped, on exit."""
    with embedded_server(settings.data_dir) as server_url:
        with translate_store_errors(), psycopg.connect(server_url, autocommit=True) as conn:
            name = sql.Identifier(dbname)
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
        url = with_database(server_url, dbname)
        migrations.upgrade(url)
        ledger = build_ledger(url, settings)
        try:
            yield ledger
        finally:
            ledger.close()


def rebuild_all(database_url: str, *, batch_size: int = 5000) -> int:
    """Rebuild every projection of the ledger at ``database_url`` from scratch; returns the
    ordinal reached (the number of events, for a log written after migration 0004)."""
    ledger = build_ledger(database_url, Settings(projection_batch_size=batch_size))
    try:
        return ledger.projections.rebuild()
    finally:
        ledger.close()
