"""A ``Ledger`` in memory: the library's POPO persistence plus small in-memory adapters.

The application runs unchanged; only its ports are different. ``MemoryCredentials`` keeps each
credential's row as the write port hands it over (as the auth table does, in the same call);
``MemoryAudit`` answers the audit queries from the event log, with the audit trail's own row
builder and the as-of fold. What only PostgreSQL can show (concurrency, SQL, migrations) stays in
the integration tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent

from ledger.application import Ledger
from ledger.application.audit import (
    DEFAULT_LIMIT,
    AuditEvent,
    AuditPage,
    CredentialHistory,
    CredentialState,
    current_workspaces,
)
from ledger.application.ports import AuthRow, Ports, Refused, WriteOutcome
from ledger.application.verify import Verifier, VerifierCache
from ledger.domain import Actor, Credential, TokenKind
from ledger.domain.base import LedgerAggregate
from ledger.domain.clock import Clock
from ledger.domain.credential_row import CredentialRow
from ledger.domain.errors import CredentialNotFound, InvalidQueryParameter, TokenLimitReached
from ledger.domain.exchange import ExchangePolicy
from ledger.domain.limits import LimitSettings, TokenLimit, check_under_limit, counts_toward
from ledger.projections.audit_trail import audit_row, minted_context
from ledger.projections.positioned import Positioned
from ledger.projections.queries import parse_cursor, states_as_of

MEMORY_ENV = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


class MemoryCredentials:
    """The auth lookup table as a dict, written by the write port with the events."""

    def __init__(self) -> None:
        self._rows: dict[UUID, CredentialRow] = {}
        self._lock = threading.Lock()

    def put(self, rows: list[CredentialRow]) -> None:
        with self._lock:
            for row in rows:
                old = self._rows.get(row.credential_id)
                last_used = old.last_used_at if old is not None else None
                self._rows[row.credential_id] = replace(row, last_used_at=last_used)

    def select(self, keep: Callable[[CredentialRow], bool]) -> list[CredentialRow]:
        """Every row that ``keep`` accepts."""
        return self._select(keep)

    def _select(self, keep: Callable[[CredentialRow], bool]) -> list[CredentialRow]:
        with self._lock:
            return [r for r in self._rows.values() if keep(r)]

    def get(self, credential_id: UUID) -> CredentialRow | None:
        return self._rows.get(credential_id)

    def auth_row(self, credential_id: UUID) -> AuthRow | None:
        row = self._rows.get(credential_id)
        if row is None:
            return None
        return AuthRow(
            kind=row.kind,
            user_id=row.user_id,
            workspace_id=row.workspace_id,
            daemon_id=row.daemon_id,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            consumed_at=row.consumed_at,
        )

    @staticmethod
    def _newest_first(rows: list[CredentialRow]) -> list[CredentialRow]:
        rows.sort(key=lambda r: r.credential_id)
        rows.sort(key=lambda r: r.created_at, reverse=True)
        return rows

    def personal_access_tokens(self, user_id: UUID) -> list[CredentialRow]:
        return self._newest_first(
            self._select(
                lambda r: (
                    r.user_id == user_id
                    and r.kind == TokenKind.PERSONAL_ACCESS_TOKEN.value
                    and r.revoked_at is None
                )
            )
        )

    def of_workspace(self, workspace_id: UUID, kind: TokenKind) -> list[CredentialRow]:
        return self._newest_first(
            self._select(lambda r: r.workspace_id == workspace_id and r.kind == kind.value)
        )

    def personal_access_tokens_page(
        self,
        user_id: UUID,
        *,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
        expiring: tuple[datetime, datetime] | None = None,
    ) -> list[CredentialRow]:
        rows = self.personal_access_tokens(user_id)
        if after is not None:
            rows = [
                r for r in rows if (r.created_at, -r.credential_id.int) < (after[0], -after[1].int)
            ]
        if expiring is not None:
            start, end = expiring
            rows = [r for r in rows if r.expires_at is not None and start < r.expires_at <= end]
        return rows[:limit]

    def live_of_user(self, user_id: UUID) -> list[CredentialRow]:
        rows = self._select(
            lambda r: (
                r.revoked_at is None
                and (
                    (r.user_id == user_id and r.kind == TokenKind.PERSONAL_ACCESS_TOKEN.value)
                    or (
                        r.created_by == user_id
                        and (
                            r.kind == TokenKind.DAEMON_TOKEN.value
                            or (r.kind == TokenKind.INSTALL_TOKEN.value and r.consumed_at is None)
                        )
                    )
                )
            )
        )
        return sorted(rows, key=lambda r: (r.created_at, r.credential_id))

    def expiring(
        self, start: datetime, end: datetime, workspace_id: UUID | None = None
    ) -> list[CredentialRow]:
        rows = self._select(
            lambda r: (
                r.revoked_at is None
                and r.consumed_at is None
                and r.expires_at is not None
                and start < r.expires_at <= end
                and (workspace_id is None or r.workspace_id == workspace_id)
            )
        )
        return sorted(rows, key=lambda r: (r.expires_at or start, r.credential_id))

    def live_issued_by(self, workspace_id: UUID, user_id: UUID) -> list[CredentialRow]:
        rows = self._select(
            lambda r: (
                r.workspace_id == workspace_id
                and r.created_by == user_id
                and r.revoked_at is None
                and (
                    r.kind == TokenKind.DAEMON_TOKEN.value
                    or (r.kind == TokenKind.INSTALL_TOKEN.value and r.consumed_at is None)
                )
            )
        )
        return sorted(rows, key=lambda r: (r.created_at, r.credential_id))


class MemoryAudit:
    """The audit queries over the whole event log, folded on every call (tests are small)."""

    def __init__(self, ledger: Ledger, credentials: MemoryCredentials) -> None:
        self._ledger = ledger
        self._credentials = credentials

    def _all(self) -> list[AuditEvent]:
        notifications = self._ledger.recorder.select_notifications(start=1, limit=1_000_000)
        positioned = []
        for n in notifications:
            event = self._ledger.mapper.to_domain_event(n)
            assert isinstance(event, LedgerAggregate.Event)
            positioned.append(Positioned(n.id, event))
        contexts = {
            p.event.originator_id: minted_context(p.event)
            for p in positioned
            if isinstance(p.event, Credential.Minted)
        }
        events = []
        for item in positioned:
            row = audit_row(item, contexts.get(item.event.originator_id))
            if row is None:
                continue
            events.append(
                AuditEvent(
                    position=row.position,
                    type=row.type,
                    at=row.at,
                    actor=Actor(type=row.actor_type, id=row.actor_id),  # type: ignore[arg-type]
                    credential_id=row.credential_id,
                    kind=row.kind,
                    workspace_id=row.workspace_id,
                    user_id=row.user_id,
                    data=row.data,
                )
            )
        return events

    def history(self, credential_id: UUID) -> CredentialHistory:
        events = [e for e in self._all() if e.credential_id == credential_id]
        state = states_as_of(events, None).get(credential_id)
        if state is None:
            raise CredentialNotFound
        row = self._credentials.get(credential_id)
        if row is not None:
            state = replace(state, last_used_at=row.last_used_at)
        return CredentialHistory(credential=state, events=events)

    def events(
        self,
        *,
        workspace: UUID | None = None,
        user: UUID | None = None,
        type: str | None = None,  # noqa: A002 - the contract's parameter name
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> AuditPage:
        if not 1 <= limit <= 1000:
            raise InvalidQueryParameter
        after = parse_cursor(cursor)
        selected = [
            e
            for e in self._all()
            if e.position > after
            and (workspace is None or e.workspace_id == workspace)
            and (user is None or e.user_id == user)
            and (type is None or e.type == type)
            and (since is None or e.at >= since)
            and (until is None or e.at < until)
        ]
        page = selected[:limit]
        more = len(selected) > limit
        return AuditPage(events=page, next_cursor=str(page[-1].position) if more else None)

    def valid_at(
        self, at: datetime, *, workspace: UUID | None = None, user: UUID | None = None
    ) -> list[CredentialState]:
        events = [
            e
            for e in self._all()
            if (workspace is None or e.workspace_id == workspace)
            and (user is None or e.user_id == user)
        ]
        states = states_as_of(events, at).values()
        return sorted((s for s in states if s.is_usable(at)), key=lambda s: s.created_at)

    def workspaces_of(self, user_id: UUID) -> list[UUID]:
        return current_workspaces(e for e in self._all() if e.user_id == user_id)


MEMORY_EXCHANGE_KEY = bytes(range(32))
"""The exchange key of in-memory ledgers (a fixed one: tests compare derived tokens)."""


def memory_ledger(
    clock: Clock,
    *,
    cache_ttl: timedelta = timedelta(seconds=60),
    exchange_policy: ExchangePolicy | None = None,
    limits: LimitSettings | None = None,
    exchange_key: bytes = MEMORY_EXCHANGE_KEY,
) -> Ledger:
    """A ledger on in-memory persistence, reading time from ``clock``."""
    credentials = MemoryCredentials()
    write_lock = threading.Lock()

    def wire(ledger: Ledger) -> Ports:
        recorder = ledger.recorder

        def write(
            events: list[StoredEvent], rows: list[CredentialRow], limit: TokenLimit | None
        ) -> WriteOutcome:
            with write_lock:  # the count and the write as one step, as the store's lock does
                if limit is not None:
                    held = len(credentials.select(lambda r: counts_toward(r, limit)))
                    try:
                        check_under_limit(held, limit)
                    except TokenLimitReached:
                        return Refused.LIMIT_REACHED
                try:
                    ids = recorder.insert_events(events)
                except IntegrityError:
                    return None
                credentials.put(rows)
            assert ids is not None
            return list(ids)

        cache = VerifierCache(max_ttl=cache_ttl, max_entries=1000)
        return Ports(
            credentials=credentials,
            verifier=Verifier(credentials, cache, ledger.clock),
            audit=MemoryAudit(ledger, credentials),
            write=write,
            exchange_keys=(exchange_key,),
        )

    return Ledger(
        MEMORY_ENV, ports=wire, clock=clock, exchange_policy=exchange_policy, limits=limits
    )
