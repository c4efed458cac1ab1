"""Reads from streaming replicas, never behind what a read must see (ADR 0023).

- ``WrittenAt`` remembers, per credential id, the primary's WAL position (LSN) at which its
  latest change was known to be committed: a read of that credential must come from a server
  that has replayed at least that far. Writers note their own batches (the LSN read after the
  commit); the cache invalidator notes what other processes announce (each announcement carries
  an LSN read after the commits it covers) and what its log backstop finds. The map is bounded:
  what it drops, and what the process may have missed (before its invalidator listened, while
  it was disconnected), raises a floor that every read must see.
- ``ReadRouter`` keeps a pool per replica (``LEDGER_READ_DATABASE_URLS``) and a thread that
  samples the primary's WAL position and each replica's replay position; a replica that does not
  answer, or whose replay trails the primary by more than ``LEDGER_REPLICA_MAX_LAG_MS``, is
  skipped (counted by reason). A read names the LSN it needs; the router reads the replica's
  replay position on the connection first, then runs the read there (its snapshot is taken
  after, so it holds everything replayed up to that position), or else on the primary.
- ``TokenBucket`` bounds the reads that go to the primary for tokens a replica did not know.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from uuid import UUID

import psycopg
import psycopg_pool
from psycopg.rows import TupleRow

from ledger.adapters.postgres import CONNECT_TIMEOUT_S, LivenessCheck

log = logging.getLogger(__name__)

T = TypeVar("T")
Conn = psycopg.Connection[TupleRow]

PRIMARY = "primary"
"""The name reads served by the primary are counted under."""

PRIMARY_LSN = "SELECT pg_current_wal_insert_lsn()::text"
"""The primary's WAL position, read after a commit: at or past that commit's record."""

PRIMARY_WRITTEN_LSN = "SELECT pg_current_wal_lsn()::text"
"""What the primary has written out (what a replica can have received): lag is measured to it."""

REPLAY_LSN = (
    "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
    "ELSE pg_current_wal_insert_lsn() END::text"
)
"""How far a read server has replayed (a server that is not a standby: all it has)."""

UNKNOWN_LSN = 2**63
"""Noted for a change whose WAL position could not be read: reads of it go to the primary."""

SKIP_REASONS = ("down", "lagging", "behind")
"""Why a replica was passed over: it did not answer; it trails the primary by more than the
allowed lag; it had not yet replayed what this read must see."""


def parse_lsn(text: str) -> int:
    """An LSN (``16/B374D848``) as one integer."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


class WrittenAt:
    """Per credential, the LSN that a read of it must see; bounded, with a floor for the rest."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max_entries = max_entries
        self._lsns: OrderedDict[UUID, int] = OrderedDict()
        self._floor = 0
        self._high = 0
        self._lock = threading.Lock()

    def note(self, credential_ids: Iterable[UUID], lsn: int) -> None:
        """These credentials changed in commits at or before ``lsn``."""
        with self._lock:
            lsns = self._lsns
            for credential_id in credential_ids:
                if lsns.get(credential_id, 0) < lsn:
                    lsns[credential_id] = lsn
                lsns.move_to_end(credential_id)
            if lsn < UNKNOWN_LSN:
                self._high = max(self._high, lsn)
            while len(lsns) > self._max_entries:
                _, dropped = lsns.popitem(last=False)
                self._floor = max(self._floor, dropped if dropped < UNKNOWN_LSN else self._high)

    def note_everything(self, lsn: int) -> None:
        """Anything may have changed at or before ``lsn`` (changes were not heard of)."""
        with self._lock:
            self._floor = max(self._floor, lsn)
            self._high = max(self._high, lsn)

    def required(self, credential_id: UUID) -> int:
        """The LSN a read of this credential must see."""
        with self._lock:
            return max(self._lsns.get(credential_id, 0), self._floor)

    def known(self, credential_id: UUID) -> bool:
        """Whether a change of this credential was noted (and is still remembered)."""
        with self._lock:
            return credential_id in self._lsns

    @property
    def high(self) -> int:
        """The highest LSN noted: a read must see it to see everything this process knows of."""
        with self._lock:
            return self._high

    def settle(self, replayed: int) -> None:
        """Forget what every usable replica has replayed (oldest first), keeping it as floor
        (a replica that comes back from behind must pass it before it serves)."""
        with self._lock:
            lsns = self._lsns
            while lsns:
                credential_id, lsn = next(iter(lsns.items()))
                if lsn > replayed:
                    break
                del lsns[credential_id]
                self._floor = max(self._floor, lsn)

    def __len__(self) -> int:
        with self._lock:
            return len(self._lsns)


class TokenBucket:
    """At most ``rate`` takes per second on average, ``rate`` at once (``rate`` 0: none)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._tokens = rate
        self._clock = clock
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._rate, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


@dataclass(slots=True)
class ReplicaState:
    """What the router knows of one replica (``name`` is ``replica-N``: never its URL)."""

    name: str
    pool: psycopg_pool.ConnectionPool[Conn]
    up: bool = False
    replayed: int = 0
    lag_s: float = float("inf")
    reads: int = 0
    skips: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))


@dataclass(frozen=True, slots=True)
class ReplicaReport:
    """A snapshot of one replica's state and counters (for metrics)."""

    name: str
    usable: bool
    up: bool
    lag_s: float
    replayed: int
    reads: int
    skips: dict[str, int]


@dataclass(frozen=True, slots=True)
class Served(Generic[T]):
    """A read's result and where it came from (``PRIMARY`` or a replica's name)."""

    value: T
    source: str

    @property
    def by_replica(self) -> bool:
        return self.source != PRIMARY


def _replica_pool(
    url: str, name: str, size: int, configure: Callable[[Conn], None] | None
) -> psycopg_pool.ConnectionPool[Conn]:
    """A pool that opens connections only when reads come (a replica may be down at start) and
    drops one whose server went away before a read gets it (a restarted replica)."""
    check = LivenessCheck()
    pool: psycopg_pool.ConnectionPool[Conn] = psycopg_pool.ConnectionPool(
        url,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
        min_size=0,
        max_size=size,
        timeout=CONNECT_TIMEOUT_S,
        check=check,
        open=True,
        name=name,
        configure=configure,
    )
    check.pool = pool
    return pool


class ReadRouter:
    """Sends reads to a replica that has what they need, else to the primary."""

    def __init__(
        self,
        primary: psycopg_pool.ConnectionPool[Conn],
        replica_urls: Iterable[str],
        *,
        max_lag_s: float,
        pool_size: int = 4,
        poll_s: float = 0.1,
        configure: Callable[[Conn], None] | None = None,
    ) -> None:
        self._primary = primary
        self._max_lag_s = max_lag_s
        self._poll_s = poll_s
        self.replicas = [
            ReplicaState(
                name=f"replica-{n}",
                pool=_replica_pool(url, f"ledger-replica-{n}", pool_size, configure),
            )
            for n, url in enumerate(replica_urls)
        ]
        self.primary_reads = 0
        self._turn = itertools.count()
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._checked = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_settled: Callable[[int], None] | None = None
        """Called with the lowest replay position of the usable replicas after each check."""

    @property
    def enabled(self) -> bool:
        return bool(self.replicas)

    # ------------------------------------------------------------------------------ reads

    def read(self, required: int, work: Callable[[Conn], T]) -> Served[T]:
        """``work`` on a usable replica that has replayed ``required``, else on the primary."""
        for replica in self._candidates():
            if replica.replayed < required:
                # Known behind (replay positions only grow): no round trip to find it out.
                self._skip(replica, "behind")
                continue
            try:
                with replica.pool.connection() as conn:
                    row = conn.execute(REPLAY_LSN, prepare=True).fetchone()
                    replayed = parse_lsn(row[0]) if row and row[0] else 0
                    with self._lock:
                        replica.replayed = max(replica.replayed, replayed)
                    if replayed < required:
                        self._skip(replica, "behind")
                        continue
                    value = work(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout):
                with self._lock:
                    replica.up = False
                self._skip(replica, "down")
                continue
            except psycopg.Error:
                # The replica refused the read itself: it has not replayed a migration the
                # statement needs yet (right after a deploy). The primary has it.
                self._skip(replica, "behind")
                continue
            with self._lock:
                replica.reads += 1
            return Served(value, replica.name)
        return Served(self.on_primary(work), PRIMARY)

    def on_primary(self, work: Callable[[Conn], T]) -> T:
        with self._primary.connection() as conn:
            value = work(conn)
        with self._lock:
            self.primary_reads += 1
        return value

    @contextlib.contextmanager
    def connection(self, required: int = 0) -> Iterator[tuple[Conn, str]]:
        """A connection for a long read (an export): a usable replica's that has replayed
        ``required`` (as last checked), else the primary's; and its source's name."""
        with contextlib.ExitStack() as stack:
            for replica in self._candidates():
                if replica.replayed < required:
                    self._skip(replica, "behind")
                    continue
                try:
                    conn = stack.enter_context(replica.pool.connection())
                except (psycopg.OperationalError, psycopg_pool.PoolTimeout):
                    with self._lock:
                        replica.up = False
                    self._skip(replica, "down")
                    continue
                with self._lock:
                    replica.reads += 1
                yield conn, replica.name
                return
            conn = stack.enter_context(self._primary.connection())
            with self._lock:
                self.primary_reads += 1
            yield conn, PRIMARY

    def _candidates(self) -> list[ReplicaState]:
        """The usable replicas, each read starting at the next one (load spread evenly);
        the others are counted as skipped."""
        if not self.replicas:
            return []
        self._ensure_monitor()
        start = next(self._turn) % len(self.replicas)
        ordered = self.replicas[start:] + self.replicas[:start]
        usable = []
        with self._lock:
            states = [(r, r.up, r.lag_s) for r in ordered]
        for replica, up, lag in states:
            if not up:
                self._skip(replica, "down")
            elif lag > self._max_lag_s:
                self._skip(replica, "lagging")
            else:
                usable.append(replica)
        return usable

    def count_primary(self) -> None:
        """Count a read served by the primary through another way than this router's pool."""
        with self._lock:
            self.primary_reads += 1

    def skip_behind(self, source: str) -> None:
        """Count a read that the replica ``source`` served but could not answer (it lacked what
        the read needed, found out within the read); the caller reads the primary next."""
        for replica in self.replicas:
            if replica.name == source:
                with self._lock:
                    replica.reads -= 1
                self._skip(replica, "behind")

    def _skip(self, replica: ReplicaState, reason: str) -> None:
        with self._lock:
            replica.skips[reason] += 1

    # ---------------------------------------------------------------------------- monitor

    def _ensure_monitor(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="ledger-replicas", daemon=True)
            self._thread.start()
        self._checked.wait(CONNECT_TIMEOUT_S)

    def start(self) -> None:
        """Start checking the replicas (and wait for the first check)."""
        if self.replicas:
            self._ensure_monitor()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # a defect must not stop the checks; replicas look down meanwhile
                log.exception("replica check failed")
            self._checked.set()
            self._stop.wait(self._poll_s)

    def check(self) -> None:
        """Sample the primary's position and each replica's replay position; work out lags."""
        now = time.monotonic()
        try:
            with self._primary.connection() as conn:
                row = conn.execute(PRIMARY_WRITTEN_LSN, prepare=True).fetchone()
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            row = None
        if row is not None:
            with self._lock:
                self._samples.append((now, parse_lsn(row[0])))
                # Keep enough history to tell "behind by at most max lag" from "further".
                while len(self._samples) > 1 and self._samples[1][0] < now - 2 * self._max_lag_s:
                    self._samples.popleft()
        lowest: int | None = None
        for replica in self.replicas:
            replayed = self._replayed(replica)
            with self._lock:
                if replayed is None:
                    replica.up = False
                    continue
                replica.up = True
                replica.replayed = max(replica.replayed, replayed)
                replica.lag_s = self._lag(replica.replayed, now)
                if replica.lag_s <= self._max_lag_s:
                    lowest = replica.replayed if lowest is None else min(lowest, replica.replayed)
        if lowest is not None and self.on_settled is not None:
            self.on_settled(lowest)

    def _replayed(self, replica: ReplicaState) -> int | None:
        try:
            with replica.pool.connection(timeout=CONNECT_TIMEOUT_S) as conn:
                row = conn.execute(REPLAY_LSN, prepare=True).fetchone()
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            return None
        return parse_lsn(row[0]) if row and row[0] else 0

    def _lag(self, replayed: int, now: float) -> float:
        """Seconds since the primary first wrote past what the replica has replayed (0 when it
        has replayed the newest sample)."""
        for at, lsn in self._samples:
            if lsn > replayed:
                return max(0.0, now - at)
        return 0.0

    def report(self) -> list[ReplicaReport]:
        """Each replica's state and counters (the checks start with the first report)."""
        if self.replicas:
            self._ensure_monitor()
        with self._lock:
            return [
                ReplicaReport(
                    name=r.name,
                    usable=r.up and r.lag_s <= self._max_lag_s,
                    up=r.up,
                    lag_s=r.lag_s,
                    replayed=r.replayed,
                    reads=r.reads,
                    skips=dict(r.skips),
                )
                for r in self.replicas
            ]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for replica in self.replicas:
            replica.pool.close()


def primary_lsn(pool: psycopg_pool.ConnectionPool[Conn]) -> int:
    """The primary's WAL insert position now (at or past every commit that has returned)."""
    with pool.connection() as conn:
        row: Any = conn.execute(PRIMARY_LSN, prepare=True).fetchone()
    return parse_lsn(row[0])
