"""The two systems under test, each with the operations of a cell and the records to check.

Every operation that succeeds is *acknowledged*: the side keeps what it was told (the token id
minted, the daemon token an exchange returned, the token it renewed or revoked). After the write
cells, ``check`` looks for each acknowledged change in the store; anything missing is an
invariant violation, as is a race round with other than exactly one winner.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg

from bench.baseline import BaselineStore
from bench.runner import Exhausted, Op
from bench.seed import CredentialSeeder, SeedSpec
from ledger.adapters import migrations
from ledger.application import Principal
from ledger.bootstrap import PostgresLedger, build_ledger
from ledger.config import Settings
from ledger.domain import TokenKind
from ledger.domain.credential import INSTALL_TOKEN_LIFETIME
from ledger.domain.errors import InstallTokenAlreadyUsed, InvalidToken, LedgerError

POOL_SIZE = 16
PAT_DAYS = 30
RENEWABLE_DAYS = 3
"""Seeded tokens for the renew cells expire in 3 days: inside the 7-day renewal window."""
VERIFY_TOKENS = 1_000
"""Distinct valid tokens the verify cells cycle through (all fit the cache)."""


@dataclass(slots=True)
class Acknowledged:
    """What clients were told succeeded (list.append is atomic under the GIL)."""

    minted: list[Any] = field(default_factory=list)
    exchanged: list[Any] = field(default_factory=list)
    renewed: list[Any] = field(default_factory=list)
    revoked: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Violations:
    """Invariant violations found in one store (each a count of cases)."""

    double_spends: int = 0
    double_renewals: int = 0
    missing_acknowledged: int = 0
    detail: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.double_spends + self.double_renewals + self.missing_acknowledged

    def __add__(self, other: Violations) -> Violations:
        return Violations(
            self.double_spends + other.double_spends,
            self.double_renewals + other.double_renewals,
            self.missing_acknowledged + other.missing_acknowledged,
            self.detail + other.detail,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "double_spends": self.double_spends,
            "double_renewals": self.double_renewals,
            "missing_acknowledged": self.missing_acknowledged,
            "total": self.total,
            "detail": list(self.detail),
        }


def _popper(items: deque[Any]) -> Callable[[], Any]:
    def pop() -> Any:
        try:
            return items.popleft()
        except IndexError:
            raise Exhausted from None

    return pop


def cycler(values: Sequence[str]) -> Callable[[], str]:
    """The next value of ``values``, round robin, shared by all threads."""
    counter = itertools.count()
    size = len(values)
    return lambda: values[next(counter) % size]


def race(threads: int, attempt: Callable[[], bool]) -> int:
    """Run ``attempt`` in ``threads`` threads released at once; how many reported a win."""
    barrier = threading.Barrier(threads)
    wins: list[bool] = []

    def run() -> None:
        barrier.wait()
        wins.append(attempt())

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return sum(wins)


# ----------------------------------------------------------------------------- ledger


_LEDGER_EXCHANGE_CHECK = """
WITH daemons AS (
    SELECT install_token_id, count(*) AS n FROM ledger_credentials
    WHERE kind = 'daemon_token' GROUP BY install_token_id
), consumed AS (
    SELECT credential_id FROM ledger_credentials
    WHERE kind = 'install_token' AND consumed_at IS NOT NULL
)
SELECT count(*) FROM consumed c FULL JOIN daemons d ON d.install_token_id = c.credential_id
WHERE c.credential_id IS NULL OR d.n IS DISTINCT FROM 1
"""
_LEDGER_PRESENT = """
SELECT count(*) FROM ledger_credentials c
WHERE c.credential_id = ANY(%s) AND EXISTS (
    SELECT 1 FROM ledger_events e WHERE e.originator_id = c.credential_id)
"""
_LEDGER_RENEWED_ONCE = """
SELECT count(*) FROM ledger_credentials c WHERE c.credential_id = ANY(%s)
AND c.expires_at > now() + interval '80 days'
AND (SELECT count(*) FROM ledger_events e WHERE e.originator_id = c.credential_id
     AND e.topic LIKE '%%Credential.Renewed') = 1
"""
_LEDGER_REVOKED = """
SELECT count(*) FROM ledger_credentials c WHERE c.credential_id = ANY(%s)
AND c.revoked_at IS NOT NULL AND EXISTS (
    SELECT 1 FROM ledger_events e WHERE e.originator_id = c.credential_id
    AND e.topic LIKE '%%Credential.Revoked')
"""


@dataclass(slots=True)
class LedgerSide:
    """The ledger under test: a cached ledger (default settings) and an uncached one."""

    database_url: str
    ledger: PostgresLedger
    uncached: PostgresLedger
    principal: Principal
    workspace_id: UUID
    seeder: CredentialSeeder
    acks: Acknowledged = field(default_factory=Acknowledged)
    race_violations: Violations = field(default_factory=Violations)

    name = "ledger"

    @classmethod
    def start(cls, database_url: str, *, settings: Settings | None = None) -> LedgerSide:
        migrations.upgrade(database_url)
        settings = settings or Settings(pool_size=POOL_SIZE)
        ledger = build_ledger(database_url, settings=settings)
        uncached = build_ledger(
            database_url,
            settings=settings.model_copy(update={"verify_cache_max_ttl_s": 0.0}),
        )
        created = ledger.create_user("bench")
        principal = ledger.verify(created.token)
        workspace = ledger.create_workspace(principal, "bench")
        return cls(
            database_url=database_url,
            ledger=ledger,
            uncached=uncached,
            principal=principal,
            workspace_id=workspace.id,
            seeder=CredentialSeeder(ledger, database_url),
        )

    def close(self) -> None:
        self.uncached.close()
        self.ledger.close()

    @property
    def user_id(self) -> UUID:
        assert self.principal.user_id is not None
        return self.principal.user_id

    # -------------------------------------------------------------------------- inputs

    def install_tokens(self, count: int) -> deque[str]:
        at = datetime.now(UTC) - timedelta(seconds=1)
        seeded = self.seeder.seed(
            SeedSpec(
                kind=TokenKind.INSTALL_TOKEN,
                count=count,
                at=at,
                expires_at=at + INSTALL_TOKEN_LIFETIME,
                workspace_id=self.workspace_id,
                issuer_id=self.user_id,
                raw_every=1,
            )
        )
        return deque(seeded.raw)

    def personal_access_tokens(self, count: int, days: int) -> tuple[list[str], list[UUID]]:
        at = datetime.now(UTC) - timedelta(seconds=1)
        seeded = self.seeder.seed(
            SeedSpec(
                kind=TokenKind.PERSONAL_ACCESS_TOKEN,
                count=count,
                at=at,
                expires_at=at + timedelta(days=days),
                users=[self.user_id],
                raw_every=1,
            )
        )
        return seeded.raw, seeded.ids

    # ---------------------------------------------------------------------- operations

    def mint(self, _: int) -> None:
        minted = self.ledger.mint_personal_access_token(self.principal, "bench", PAT_DAYS)
        self.acks.minted.append(minted.info.id)

    def exchanger(self, tokens: deque[str]) -> Op:
        pop = _popper(tokens)

        def exchange(client: int) -> None:
            daemon = self.ledger.exchange_install_token(pop(), f"daemon-{client}")
            self.acks.exchanged.append(daemon.token_id)

        return exchange

    def renewer(self, tokens: deque[tuple[str, UUID]]) -> Op:
        pop = _popper(tokens)

        def renew(_: int) -> None:
            raw, credential_id = pop()
            if not self.ledger.renew_personal_access_token(raw).renewed:
                msg = "a renewable token was not renewed"
                raise RuntimeError(msg)
            self.acks.renewed.append(credential_id)

        return renew

    def revoker(self, ids: deque[UUID]) -> Op:
        pop = _popper(ids)

        def revoke(_: int) -> None:
            credential_id = pop()
            self.ledger.revoke_personal_access_token(self.principal, credential_id)
            self.acks.revoked.append(credential_id)

        return revoke

    def verifier(self, tokens: Sequence[str], *, cached: bool) -> Op:
        ledger = self.ledger if cached else self.uncached
        nxt = cycler(tokens)
        if cached:
            for raw in tokens:  # warm the cache
                ledger.verify(raw)

        def verify(_: int) -> None:
            ledger.verify(nxt())

        return verify

    def unknown_verifier(self, tokens: Sequence[str]) -> Op:
        nxt = cycler(tokens)

        def verify(_: int) -> None:
            try:
                self.ledger.verify(nxt())
            except InvalidToken:
                return
            msg = "an unknown token was accepted"
            raise RuntimeError(msg)

        return verify

    # --------------------------------------------------------------------------- races

    def race_exchange(self, rounds: int, threads: int) -> None:
        """``rounds`` times, ``threads`` clients exchange one install token at once."""
        tokens = self.install_tokens(rounds)
        bad = 0
        for raw in tokens:

            def attempt(raw: str = raw) -> bool:
                try:
                    self.ledger.exchange_install_token(raw, f"racer-{uuid4().hex[:8]}")
                except InstallTokenAlreadyUsed:
                    return False
                return True

            bad += race(threads, attempt) != 1
        self.race_violations += Violations(double_spends=bad)

    def race_renew(self, rounds: int, threads: int) -> None:
        """``rounds`` times, ``threads`` clients renew one renewable token at once."""
        raws, ids = self.personal_access_tokens(rounds, RENEWABLE_DAYS)
        bad = 0
        for raw in raws:

            def attempt(raw: str = raw) -> bool:
                return self.ledger.renew_personal_access_token(raw).renewed

            bad += race(threads, attempt) != 1
        missing = rounds - self._count(_LEDGER_RENEWED_ONCE, ids)
        self.race_violations += Violations(double_renewals=bad + missing)

    # --------------------------------------------------------------------------- check

    def _count(self, statement: str, ids: Sequence[UUID]) -> int:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(statement, (list(ids),)).fetchone()
        assert row is not None
        return int(row[0])

    def check(self) -> Violations:
        """Every acknowledged change is in the store, and every exchange is paired."""
        acks = self.acks
        missing = {
            "minted": len(acks.minted) - self._count(_LEDGER_PRESENT, acks.minted),
            "exchanged": len(acks.exchanged) - self._count(_LEDGER_PRESENT, acks.exchanged),
            "renewed": len(acks.renewed) - self._count(_LEDGER_RENEWED_ONCE, acks.renewed),
            "revoked": len(acks.revoked) - self._count(_LEDGER_REVOKED, acks.revoked),
        }
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(_LEDGER_EXCHANGE_CHECK).fetchone()
        unpaired = int(row[0]) if row else 0
        detail = tuple(f"ledger: {n} acknowledged {k} missing" for k, n in missing.items() if n)
        if unpaired:
            detail += (f"ledger: {unpaired} install/daemon tokens unpaired",)
        return self.race_violations + Violations(
            double_spends=unpaired, missing_acknowledged=sum(missing.values()), detail=detail
        )


# --------------------------------------------------------------------------- baseline


@dataclass(slots=True)
class BaselineSide:
    """The baseline store, with the user and workspace every operation acts for."""

    store: BaselineStore
    user_id: UUID = field(default_factory=uuid4)
    workspace_id: UUID = field(default_factory=uuid4)
    acks: Acknowledged = field(default_factory=Acknowledged)
    race_violations: Violations = field(default_factory=Violations)
    exchanges_reported: int = 0
    renew_started: datetime = field(default_factory=lambda: datetime.now(UTC))

    name = "baseline"

    @classmethod
    def start(cls, database_url: str) -> BaselineSide:
        store = BaselineStore(database_url, pool_size=POOL_SIZE)
        store.create_schema()
        return cls(store)

    def close(self) -> None:
        self.store.close()

    def install_tokens(self, count: int) -> deque[str]:
        return deque(self.store.insert_install_tokens(self.workspace_id, count))

    def personal_access_tokens(self, count: int, days: int) -> tuple[list[str], list[UUID]]:
        seeded = self.store.insert_personal_access_tokens(self.user_id, count, timedelta(days=days))
        return seeded.raw, seeded.ids

    def mint(self, _: int) -> None:
        token = self.store.mint_personal_access_token(self.user_id, PAT_DAYS)
        self.acks.minted.append(token.token_hash)

    def exchanger(self, tokens: deque[str]) -> Op:
        pop = _popper(tokens)

        def exchange(client: int) -> None:
            daemon = self.store.exchange_install_token(pop(), f"daemon-{client}")
            if daemon is None:
                msg = "install token refused"
                raise RuntimeError(msg)
            self.acks.exchanged.append(daemon.token_hash)

        return exchange

    def renewer(self, tokens: deque[tuple[str, UUID]]) -> Op:
        pop = _popper(tokens)

        def renew(_: int) -> None:
            raw, _id = pop()
            outcome = self.store.renew_personal_access_token(raw)
            if outcome is None or not outcome.renewed:
                msg = "a renewable token was not renewed"
                raise RuntimeError(msg)
            self.acks.renewed.append(raw)

        return renew

    def revoker(self, ids: deque[UUID]) -> Op:
        pop = _popper(ids)

        def revoke(_: int) -> None:
            token_id = pop()
            if not self.store.revoke_personal_access_token(self.user_id, token_id):
                msg = "token not found"
                raise RuntimeError(msg)
            self.acks.revoked.append(token_id)

        return revoke

    def verifier(self, tokens: Sequence[str]) -> Op:
        nxt = cycler(tokens)

        def verify(_: int) -> None:
            if self.store.verify(nxt()) is None:
                msg = "a valid token was refused"
                raise RuntimeError(msg)

        return verify

    def unknown_verifier(self, tokens: Sequence[str]) -> Op:
        nxt = cycler(tokens)

        def verify(_: int) -> None:
            if self.store.verify(nxt()) is not None:
                msg = "an unknown token was accepted"
                raise RuntimeError(msg)

        return verify

    def race_exchange(self, rounds: int, threads: int) -> None:
        tokens = self.install_tokens(rounds)
        bad = 0
        for raw in tokens:

            def attempt(raw: str = raw) -> bool:
                return self.store.exchange_install_token(raw, "racer") is not None

            bad += race(threads, attempt) != 1
        self.race_violations += Violations(double_spends=bad)

    def race_renew(self, rounds: int, threads: int) -> None:
        raws, _ids = self.personal_access_tokens(rounds, RENEWABLE_DAYS)
        bad = 0
        for raw in raws:

            def attempt(raw: str = raw) -> bool:
                outcome = self.store.renew_personal_access_token(raw)
                return outcome is not None and outcome.renewed

            bad += race(threads, attempt) != 1
        self.race_violations += Violations(double_renewals=bad)

    def check(self) -> Violations:
        acks = self.acks
        store = self.store
        later = datetime.now(UTC) + timedelta(days=80)
        missing = {
            "minted": len(acks.minted) - store.count_existing(acks.minted),
            "exchanged": len(acks.exchanged) - store.count_existing(acks.exchanged),
            "renewed": len(acks.renewed) - store.count_renewed(acks.renewed, later),
            "revoked": len(acks.revoked) - store.count_revoked(acks.revoked),
        }
        counts = store.exchange_counts()
        # The rows do not link a daemon token to its install token: compare the counts.
        unpaired = abs(counts.used_install_tokens - counts.daemon_tokens)
        detail = tuple(f"baseline: {n} acknowledged {k} missing" for k, n in missing.items() if n)
        if unpaired:
            detail += (f"baseline: {unpaired} install/daemon tokens unpaired",)
        return self.race_violations + Violations(
            double_spends=unpaired, missing_acknowledged=sum(missing.values()), detail=detail
        )


Side = LedgerSide | BaselineSide

__all__ = [
    "PAT_DAYS",
    "POOL_SIZE",
    "RENEWABLE_DAYS",
    "VERIFY_TOKENS",
    "Acknowledged",
    "BaselineSide",
    "LedgerError",
    "LedgerSide",
    "Side",
    "Violations",
    "cycler",
    "race",
]
