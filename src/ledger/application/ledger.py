"""The ledger application: every operation of the contract is one call.

Each command loads what it needs, lets the aggregates check the rules, and ends in one
``save()``: atomic across all the aggregates it names. Saves go through the group-commit writer;
a save that lost an optimistic race raises ``ConcurrencyConflict`` and the whole command runs
again on freshly loaded aggregates (that is how single use and exactly-once renewal hold).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    Notification,
    Recording,
    Transcoding,
    UUIDAsHex,
)
from eventsourcing.utils import Environment

from ledger.application import paging, validation
from ledger.application.audit import (
    DEFAULT_LIMIT,
    AuditPage,
    CredentialHistory,
    CredentialState,
)
from ledger.application.ports import Ports, Refused, StoreErrors
from ledger.application.verify import ALL_KINDS
from ledger.application.views import (
    CreatedUser,
    DaemonTokenInfo,
    ExchangedDaemonToken,
    ExpiringCredential,
    MembershipInfo,
    MintedInstallToken,
    MintedToken,
    TokenInfo,
    TokenPage,
    UserInfo,
    WorkspaceInfo,
)
from ledger.domain import (
    Actor,
    Credential,
    Member,
    RenewalOutcome,
    RevocationReason,
    TokenKind,
    User,
    Workspace,
    rules,
)
from ledger.domain.base import LedgerAggregate
from ledger.domain.clock import Clock, SystemClock
from ledger.domain.credential import INITIAL_PAT_LIFETIME
from ledger.domain.credential_row import CredentialRow
from ledger.domain.errors import (
    ConcurrencyConflict,
    CredentialNotFound,
    DaemonTokenNotFound,
    InstallTokenAlreadyUsed,
    InvalidCredentialId,
    InvalidInstallToken,
    InvalidToken,
    InvalidTokenId,
    InvalidUserId,
    LedgerError,
    MalformedInstallToken,
    NotRenewable,
    ServiceUnavailable,
    TokenLimitReached,
    TokenNoLongerValid,
    TokenNotFound,
    UserNotFound,
    WorkspaceNotFound,
)
from ledger.domain.exchange import ExchangePolicy, Presentation, daemon_token_for, presentation
from ledger.domain.limits import LimitSettings, TokenLimit
from ledger.domain.principal import Principal
from ledger.domain.tokens import hash_token, issue, parse_kind

log = logging.getLogger(__name__)

USER_CACHE_ENTRIES = 100_000
"""Users whose ``get_user`` answer a process keeps (all forgotten at once when full)."""

P = ParamSpec("P")
R = TypeVar("R")
A = TypeVar("A", bound=LedgerAggregate)


class ActorAsDict(Transcoding):
    """Stores an ``Actor`` as ``{"type", "id"}``."""

    type = Actor
    name = "actor"

    def encode(self, obj: Actor) -> dict[str, str]:
        return {"type": obj.type, "id": obj.id}

    def decode(self, data: dict[str, str]) -> Actor:
        return Actor(type=data["type"], id=data["id"])  # type: ignore[arg-type]


def command(
    method: Callable[Concatenate[Ledger, P], R],
) -> Callable[Concatenate[Ledger, P], R]:
    """Run a command, again on fresh state if it lost an optimistic race; translate store
    errors to ledger errors."""

    @functools.wraps(method)
    def wrapper(self: Ledger, /, *args: P.args, **kwargs: P.kwargs) -> R:
        for _ in range(self.command_attempts):
            try:
                with self.store_errors():
                    return method(self, *args, **kwargs)
            except ConcurrencyConflict:
                continue
        msg = "too many concurrent changes"
        raise ServiceUnavailable(msg)

    return wrapper


def query(
    method: Callable[Concatenate[Ledger, P], R],
) -> Callable[Concatenate[Ledger, P], R]:
    """Run a read; translate store errors to ledger errors."""

    @functools.wraps(method)
    def wrapper(self: Ledger, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.store_errors():
            return method(self, *args, **kwargs)

    return wrapper


class Ledger(Application[UUID]):
    """The credential ledger: every operation of the contract, over ports.

    ``ledger.bootstrap`` builds the running one (PostgreSQL and every adapter); unit tests build
    one on the library's in-memory persistence with fakes (``tests/support``).
    """

    name = "Ledger"

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        ports: Callable[[Ledger], Ports],
        clock: Clock | None = None,
        command_attempts: int = 20,
        store_errors: StoreErrors = contextlib.nullcontext,
        mapper_class: type[Mapper[UUID]] = Mapper,
        exchange_policy: ExchangePolicy | None = None,
        limits: LimitSettings | None = None,
    ) -> None:
        """``env`` configures the event store (the eventsourcing library's persistence
        settings); ``ports`` is called once the ledger's recorder and mapper exist and returns
        the adapters the ledger talks to; ``mapper_class`` turns events into stored events;
        ``exchange_policy`` and ``limits`` are the configurable rules of exchanges and mints."""
        self._mapper_class = mapper_class
        self.exchange_policy = exchange_policy or ExchangePolicy()
        self.limits = limits or LimitSettings()
        self.clock: Clock = clock or SystemClock()
        self.command_attempts = command_attempts
        self.store_errors = store_errors
        self._users: dict[UUID, UserInfo] = {}
        with store_errors():
            super().__init__(dict(env))
        self._ports = ports(self)
        self.credentials = self._ports.credentials
        self.verifier = self._ports.verifier
        self.audit = self._ports.audit
        if not self._ports.exchange_keys:
            msg = "the ledger needs at least one exchange key"
            raise ValueError(msg)

    # ----------------------------------------------------------------------- infrastructure

    def construct_env(self, name: str, env: Any = None) -> Environment:
        # The environment is the one given (by the composition root): no stray POSTGRES_*
        # variable of the process may change it.
        return Environment(name, dict(env or {}))

    def construct_mapper(self) -> Mapper[UUID]:
        # The composition root picks the mapper class (upcast events carry their stored hash
        # there: the chain links stored states, ADR 0019).
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=self._mapper_class
        )

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        register_transcodings(transcoder)

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        limit: TokenLimit | None = None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        """Write the pending events of the given aggregates atomically (one command), within
        ``limit`` if one is given (``TokenLimitReached``: nothing written).

        Ledger aggregates are collected directly: the library's generic path checks runtime
        protocols for every object, which costs more than the rest of a mint. The ledger takes
        no snapshots and has no ``notify`` hook, so nothing else of the library's ``save`` is
        skipped.
        """
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, LedgerAggregate):
                processing_event.events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            elif obj is not None:
                processing_event.collect_events(obj, **kwargs)
        return self._record(processing_event, limit)

    def _record(
        self, processing_event: ProcessingEvent[UUID], limit: TokenLimit | None = None
    ) -> list[Recording[UUID]]:
        """Write the events and the credential rows they produce through the ``write`` port."""
        events = processing_event.events
        stored = [self.mapper.to_stored_event(e) for e in events]
        rows = [
            CredentialRow.of(a)
            for a in processing_event.aggregates.values()
            if isinstance(a, Credential)
        ]
        notification_ids = self._ports.write(stored, rows, limit)
        if notification_ids is None:
            raise ConcurrencyConflict
        if notification_ids is Refused.LIMIT_REACHED:
            raise TokenLimitReached
        # This process refuses what it just revoked the moment the call returns.
        self.verifier.cache.evict(row.credential_id for row in rows)
        return [
            Recording(
                domain_event=event,
                notification=Notification(
                    id=notification_id,
                    originator_id=s.originator_id,
                    originator_version=s.originator_version,
                    topic=s.topic,
                    state=s.state,
                ),
            )
            for event, s, notification_id in zip(events, stored, notification_ids, strict=True)
        ]

    def close(self) -> None:
        self._ports.close()
        super().close()

    def _load(self, cls: type[A], aggregate_id: UUID, missing: type[LedgerError]) -> A:
        aggregate = self._get(aggregate_id)
        if not isinstance(aggregate, cls):
            raise missing
        return aggregate

    def _load_credential_and_workspace(
        self, credential_id: UUID
    ) -> tuple[Credential | None, Workspace | None]:
        """A credential and its workspace, replayed from one query (an exchange needs both)."""
        read_streams = self._ports.read_streams
        if read_streams is None:
            credential = self._get(credential_id)
            if not isinstance(credential, Credential):
                return None, None
            wid = credential.workspace_id
            workspace = self._get(wid) if wid else None
            return credential, workspace if isinstance(workspace, Workspace) else None
        streams: dict[UUID | str, LedgerAggregate | None] = {}
        for stored in read_streams(credential_id):
            event = self.mapper.to_domain_event(stored)
            assert isinstance(event, LedgerAggregate.Event)
            streams[stored.originator_id] = event.mutate(streams.get(stored.originator_id))
        credential = streams.get(credential_id)
        if not isinstance(credential, Credential):
            return None, None
        workspace = streams.get(credential.workspace_id) if credential.workspace_id else None
        return credential, workspace if isinstance(workspace, Workspace) else None

    def _get(self, aggregate_id: UUID) -> object:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def _loaded(self, credential_ids: Iterable[UUID]) -> list[Credential]:
        """The credentials of ``credential_ids`` that exist, loaded (the candidates of a bulk
        revocation: a row the table listed is always a stored credential)."""
        return [c for c in map(self._get, credential_ids) if isinstance(c, Credential)]

    def _user_id(self, by: Principal) -> UUID:
        if by.kind is not TokenKind.PERSONAL_ACCESS_TOKEN or by.user_id is None:
            raise InvalidToken
        return by.user_id

    def _workspace(self, workspace_id: UUID) -> Workspace:
        return self._load(Workspace, workspace_id, WorkspaceNotFound)

    # ----------------------------------------------------------------------------- verify

    def verify(self, raw: str, allowed_kinds: Collection[TokenKind] = ALL_KINDS) -> Principal:
        """The principal behind a usable token, or ``InvalidToken``.

        The verifier's cache first (keyed by the token's hash); on a miss, format and checksum
        with no store access, then the credentials table (which commits with the events). A
        change made through this process is seen at once; one made by another process within
        the propagation bound (``ledger.application.verify``), never later than
        ``LEDGER_VERIFY_CACHE_MAX_TTL_S``.
        """
        # Not @query: a cache hit does no I/O, and the verifier translates its reads' errors.
        return self.verifier.verify(raw, allowed_kinds)

    def verify_cached(
        self, raw: str, allowed_kinds: Collection[TokenKind] = ALL_KINDS
    ) -> Principal | None:
        """``verify`` from the verifier's cache alone, with no I/O (callable on an event loop):
        ``None`` where ``verify`` would read the store."""
        return self.verifier.verify_cached(raw, allowed_kinds)

    # ------------------------------------------------------------------------------ users

    @command
    def create_user(self, name: str, email: str | None = None) -> CreatedUser:
        """Create a user (operator action) with an initial 90-day personal access token."""
        name = validation.name(name)
        email = validation.email(email)
        now = self.clock.now()
        operator = Actor.system("operator")
        user = User.create(id=uuid4(), name=name, email=email, at=now, actor=operator)
        token = issue(TokenKind.PERSONAL_ACCESS_TOKEN)
        credential = Credential.mint_personal_access_token(
            token_hash=token.token_hash,
            token_prefix=token.display_prefix,
            name="initial token",
            user_id=user.id,
            expires_at=now + INITIAL_PAT_LIFETIME,
            at=now,
            actor=operator,
        )
        self.save(user, credential)
        assert credential.expires_at is not None
        return CreatedUser(
            user_id=user.id,
            name=user.name,
            token=token.raw,
            token_prefix=token.display_prefix,
            expires_at=credential.expires_at,
        )

    @query
    def get_user(self, user_id: UUID) -> UserInfo:
        """A user's name and email. A user has no event after ``Created`` (nothing changes
        them), so each answer is kept: the next call for that user reads nothing."""
        info = self._users.get(user_id)
        if info is None:
            user = self._load(User, user_id, UserNotFound)
            info = UserInfo(user_id=user.id, name=user.name, email=user.email)
            if len(self._users) >= USER_CACHE_ENTRIES:
                self._users.clear()
            self._users[user_id] = info
        return info

    def cached_user(self, user_id: UUID) -> UserInfo | None:
        """``get_user`` if it was answered before in this process (no I/O), else ``None``."""
        return self._users.get(user_id)

    @command
    def offboard_user(self, user_id: UUID | str, note: str | None = None) -> int:
        """Revoke, in one commit, every personal access token of the user and every daemon
        and install token they issued in any workspace (reason ``offboarded``, operator
        action); returns how many were revoked.

        As in the member-removal cascade, an install token that an exchange consumed after the
        table was read leads to the daemon token it produced, and a racing exchange or
        revocation makes one of the two saves lose the version race.
        """
        uid = validation.uuid(user_id, InvalidUserId)
        note = validation.note(note)
        self._load(User, uid, UserNotFound)
        now = self.clock.now()
        operator = Actor.system("operator")
        targets: dict[UUID, Credential] = {}
        candidates = self._loaded(r.credential_id for r in self.credentials.live_of_user(uid))
        for candidate in candidates:
            target = candidate
            if candidate.kind is TokenKind.INSTALL_TOKEN and candidate.daemon_token_id:
                target = self._load(Credential, candidate.daemon_token_id, InvalidToken)
            targets.setdefault(target.id, target)
        revoked = [
            credential
            for credential in targets.values()
            if credential.revoke(
                reason=RevocationReason.OFFBOARDED, at=now, actor=operator, note=note
            )
        ]
        if revoked:
            self.save(*revoked)
        return len(revoked)

    @query
    def expiring_credentials(
        self, within_days: int, workspace_id: UUID | None = None
    ) -> list[ExpiringCredential]:
        """Credentials neither revoked nor consumed that expire after now and at most
        ``within_days`` days from now, soonest first, each with its holder (the user of a
        personal access token, the issuer of an install or daemon token) by id and name."""
        paging.check_days(within_days)
        now = self.clock.now()
        rows = self.credentials.expiring(now, now + timedelta(days=within_days), workspace_id)
        names: dict[UUID, str | None] = {}
        found: list[ExpiringCredential] = []
        for row in rows:
            holder = (
                row.user_id if row.token_kind is TokenKind.PERSONAL_ACCESS_TOKEN else row.created_by
            )
            if holder is not None and holder not in names:
                user = self._get(holder)
                names[holder] = user.name if isinstance(user, User) else None
            found.append(ExpiringCredential.of(row, holder, names.get(holder) if holder else None))
        return found

    # ------------------------------------------------------------ personal access tokens

    @command
    def mint_personal_access_token(
        self, by: Principal, name: str, expires_in_days: int | None = None
    ) -> MintedToken:
        user_id = self._user_id(by)
        name = validation.name(name)
        days = validation.expires_in_days(expires_in_days)
        now = self.clock.now()
        token = issue(TokenKind.PERSONAL_ACCESS_TOKEN)
        credential = Credential.mint_personal_access_token(
            token_hash=token.token_hash,
            token_prefix=token.display_prefix,
            name=name,
            user_id=user_id,
            expires_at=None if days is None else now + timedelta(days=days),
            at=now,
            actor=Actor.user(user_id),
        )
        self.save(credential, limit=self.limits.for_personal_access_tokens(user_id, now))
        return MintedToken(info=TokenInfo.of(CredentialRow.of(credential)), token=token.raw)

    @query
    def list_personal_access_tokens(self, by: Principal) -> list[TokenInfo]:
        """All the caller's tokens that are not revoked (expired included), newest first."""
        return [TokenInfo.of(r) for r in self.credentials.personal_access_tokens(self._user_id(by))]

    @query
    def page_personal_access_tokens(
        self,
        by: Principal,
        *,
        limit: int = paging.DEFAULT_LIMIT,
        cursor: str | None = None,
        expiring_within_days: int | None = None,
    ) -> TokenPage:
        """A page of the caller's tokens that are not revoked (expired included), newest
        first; with ``expiring_within_days``, only those that expire after now and at most
        that many days from now. ``next_cursor`` resumes after the page (``None``: last)."""
        user_id = self._user_id(by)
        paging.check_limit(limit)
        after = paging.decode_cursor(cursor)
        expiring = None
        if expiring_within_days is not None:
            paging.check_days(expiring_within_days)
            now = self.clock.now()
            expiring = (now, now + timedelta(days=expiring_within_days))
        rows = self.credentials.personal_access_tokens_page(
            user_id, limit=limit + 1, after=after, expiring=expiring
        )
        page = rows[:limit]
        more = len(rows) > limit
        last = page[-1] if page else None
        return TokenPage(
            tokens=[TokenInfo.of(r) for r in page],
            next_cursor=paging.encode_cursor(last.created_at, last.credential_id)
            if more and last is not None
            else None,
        )

    @command
    def revoke_personal_access_token(
        self, by: Principal, token_id: UUID | str, note: str | None = None
    ) -> None:
        """Revoke one of the caller's tokens, with an optional ``note``; revoking a revoked
        one is a no-op."""
        user_id = self._user_id(by)
        credential_id = validation.uuid(token_id, InvalidTokenId)
        note = validation.note(note)
        credential = self._load(Credential, credential_id, TokenNotFound)
        rules.check_personal_token_owner(credential, user_id)
        if credential.revoke(
            reason=RevocationReason.USER_REQUEST,
            at=self.clock.now(),
            actor=Actor.user(user_id),
            note=note,
        ):
            self.save(credential)

    @command
    def revoke_all_personal_access_tokens(
        self, by: Principal, *, keep_current: bool = False, note: str | None = None
    ) -> int:
        """Revoke, in one commit, every unrevoked personal access token of the caller (but
        the bearer itself when ``keep_current``); returns how many were revoked.

        The candidates come from the credentials table; each is loaded and revoked on its
        aggregate, so a racing renewal or revocation of one of them makes one of the two saves
        lose the version race, and this one runs again on fresh state.
        """
        user_id = self._user_id(by)
        note = validation.note(note)
        now = self.clock.now()
        actor = Actor.user(user_id)
        keep = by.credential_id if keep_current else None
        revoked = [
            credential
            for credential in self._loaded(
                row.credential_id
                for row in self.credentials.personal_access_tokens(user_id)
                if row.credential_id != keep
            )
            if credential.revoke(
                reason=RevocationReason.USER_REQUEST, at=now, actor=actor, note=note
            )
        ]
        if revoked:
            self.save(*revoked)
        return len(revoked)

    @command
    def renew_personal_access_token(self, raw: str | None) -> RenewalOutcome:
        """Renew the presented token when 7 days or less remain (now + 90 days).

        Of any number of racing renewals exactly one reports ``renewed``; the others lose the
        version race, run again, and report the winner's expiry.
        """
        if not isinstance(raw, str) or not raw.startswith(TokenKind.PERSONAL_ACCESS_TOKEN.prefix):
            raise NotRenewable
        if parse_kind(raw) is not TokenKind.PERSONAL_ACCESS_TOKEN:
            raise TokenNoLongerValid
        credential = self._load(
            Credential, Credential.create_id(hash_token(raw)), TokenNoLongerValid
        )
        assert credential.user_id is not None
        outcome = credential.renew(at=self.clock.now(), actor=Actor.user(credential.user_id))
        if outcome.renewed:
            self.save(credential)
        return outcome

    # ------------------------------------------------------------------------ workspaces

    @command
    def create_workspace(self, by: Principal, name: str) -> WorkspaceInfo:
        user_id = self._user_id(by)
        name = validation.name(name)
        workspace = Workspace.create(id=uuid4(), name=name, owner_id=user_id, at=self.clock.now())
        self.save(workspace)
        return WorkspaceInfo(id=workspace.id, name=workspace.name, created_at=workspace.created_on)

    @query
    def get_workspace(self, by: Principal, workspace_id: UUID) -> WorkspaceInfo:
        workspace = self._workspace(workspace_id)
        workspace.check_member(self._user_id(by))
        return WorkspaceInfo(id=workspace.id, name=workspace.name, created_at=workspace.created_on)

    @query
    def list_workspaces(self, by: Principal) -> list[MembershipInfo]:
        """The caller's workspaces with the caller's role in each, oldest first.

        Which workspaces: the caller's membership events (the audit trail, current with every
        command that returned before the call); the role and name: each workspace itself."""
        user_id = self._user_id(by)
        found: list[MembershipInfo] = []
        for workspace_id in self.audit.workspaces_of(user_id):
            workspace = self._get(workspace_id)
            if not isinstance(workspace, Workspace):
                continue
            role = workspace.role_of(user_id)
            if role is not None:
                found.append(
                    MembershipInfo(
                        id=workspace.id,
                        name=workspace.name,
                        role=role,
                        created_at=workspace.created_on,
                    )
                )
        found.sort(key=lambda m: (m.created_at, str(m.id)))
        return found

    @query
    def list_members(self, by: Principal, workspace_id: UUID) -> list[Member]:
        workspace = self._workspace(workspace_id)
        workspace.check_member(self._user_id(by))
        # Stable sort: members who joined at the same instant stay in the order they joined.
        return sorted(workspace.members.values(), key=lambda m: m.joined_at)

    @command
    def add_member(self, by: Principal, workspace_id: UUID, user_id: UUID, role: str) -> Member:
        actor_id = self._user_id(by)
        new_role = validation.role(role)
        workspace = self._workspace(workspace_id)
        workspace.check_administrator(actor_id)
        self._load(User, user_id, UserNotFound)
        member = workspace.add_member(
            by=actor_id, user_id=user_id, role=new_role, at=self.clock.now()
        )
        self.save(workspace)
        return member

    @command
    def change_role(self, by: Principal, workspace_id: UUID, user_id: UUID, role: str) -> Member:
        actor_id = self._user_id(by)
        new_role = validation.role(role)
        workspace = self._workspace(workspace_id)
        member = workspace.change_role(
            by=actor_id, user_id=user_id, role=new_role, at=self.clock.now()
        )
        self.save(workspace)
        return member

    @command
    def remove_member(self, by: Principal, workspace_id: UUID, user_id: UUID) -> int:
        """Remove a member and, in the same commit, revoke what they issued in the workspace.

        Returns how many credentials the cascade revoked.
        """
        actor_id = self._user_id(by)
        workspace = self._workspace(workspace_id)
        now = self.clock.now()
        workspace.remove_member(by=actor_id, user_id=user_id, at=now)
        return self._save_with_cascade(workspace, user_id, Actor.user(actor_id))

    @command
    def leave_workspace(self, by: Principal, workspace_id: UUID) -> int:
        """The caller leaves the workspace, with the same cascade as a removal."""
        user_id = self._user_id(by)
        workspace = self._workspace(workspace_id)
        workspace.leave(user_id=user_id, at=self.clock.now())
        return self._save_with_cascade(workspace, user_id, Actor.user(user_id))

    def _save_with_cascade(self, workspace: Workspace, user_id: UUID, actor: Actor) -> int:
        """Save the membership change and every revocation it implies in one ``save()``.

        The candidates come from the credentials table, but what is revoked is decided on the
        loaded aggregates: an install token that an exchange consumed after the table was read
        leads to the daemon token it produced. A racing exchange that commits after the loads
        writes the install token's stream too, so one of the two saves loses the version race
        and runs again with the other's outcome visible.
        """
        now = workspace.modified_on
        targets: dict[UUID, Credential] = {}
        for row in self.credentials.live_issued_by(workspace.id, user_id):
            credential = self._load(Credential, row.credential_id, InvalidToken)
            if credential.kind is TokenKind.INSTALL_TOKEN and credential.daemon_token_id:
                credential = self._load(Credential, credential.daemon_token_id, InvalidToken)
            targets.setdefault(credential.id, credential)
        revoked = [
            credential
            for credential in targets.values()
            if credential.revoke(reason=RevocationReason.MEMBER_REMOVED, at=now, actor=actor)
        ]
        self.save(workspace, *revoked)
        return len(revoked)

    # ------------------------------------------------------------ install and daemon tokens

    @command
    def mint_install_token(self, by: Principal, workspace_id: UUID) -> MintedInstallToken:
        user_id = self._user_id(by)
        workspace = self._workspace(workspace_id)
        workspace.check_administrator(user_id)
        now = self.clock.now()
        token = issue(TokenKind.INSTALL_TOKEN)
        credential = Credential.mint_install_token(
            token_hash=token.token_hash,
            token_prefix=token.display_prefix,
            workspace_id=workspace.id,
            issuer_id=user_id,
            at=now,
            actor=Actor.user(user_id),
        )
        self.save(credential)
        assert credential.expires_at is not None
        return MintedInstallToken(
            id=credential.id,
            token=token.raw,
            workspace_id=workspace.id,
            expires_at=credential.expires_at,
            created_at=now,
        )

    @command
    def exchange_install_token(
        self, raw: str | None, daemon_id: str | None
    ) -> ExchangedDaemonToken:
        """Consume an install token and mint a daemon token, atomically (one ``save()``).

        Of any number of racing exchanges of one token exactly one succeeds; the others lose
        the version race, run again, and find the token consumed: those that carry the winner's
        ``daemon_id`` within the retry window get the winner's answer (the daemon token is
        derived from the exchange key, the install token and the daemon id, ADR 0020), the
        others are replays (``InstallTokenAlreadyUsed``, recorded on the install token).
        """
        raw = raw.strip() if isinstance(raw, str) else None
        if raw is None or parse_kind(raw) is not TokenKind.INSTALL_TOKEN:
            raise MalformedInstallToken
        daemon = validation.daemon_id(daemon_id)
        now = self.clock.now()
        install, workspace = self._load_credential_and_workspace(
            Credential.create_id(hash_token(raw))
        )
        if install is None or install.kind is not TokenKind.INSTALL_TOKEN:
            raise InvalidInstallToken
        if install.consumed_at is not None:
            return self._present_again(raw, install, daemon, now)
        install.check_exchangeable(now)
        rules.check_issuer_still_admin(install, workspace)
        assert workspace is not None
        token = daemon_token_for(self._ports.exchange_keys[0], raw, daemon)
        daemon_token_id = Credential.create_id(token.token_hash)
        actor = Actor.daemon(daemon_token_id)
        daemon_token = Credential.mint_daemon_token(
            token_hash=token.token_hash,
            token_prefix=token.display_prefix,
            install_token=install,
            daemon_id=daemon,
            at=now,
            actor=actor,
        )
        install.consume(daemon_token_id=daemon_token.id, at=now, actor=actor)
        self.save(install, daemon_token, limit=self.limits.for_daemon_tokens(workspace.id, now))
        return ExchangedDaemonToken(
            token_id=daemon_token.id,
            token=token.raw,
            workspace_id=workspace.id,
            daemon_id=daemon,
            expires_at=None,
        )

    def _present_again(
        self, raw: str, install: Credential, daemon_id: str, now: datetime
    ) -> ExchangedDaemonToken:
        """A used install token presented again: the first exchange's answer for a retry of it
        whose daemon token is still unrevoked; otherwise ``InstallTokenAlreadyUsed``, and for a
        replay its record (and, if the policy says so, its daemon token revoked) first."""
        assert install.consumed_at is not None and install.daemon_token_id is not None
        daemon_token = self._load(Credential, install.daemon_token_id, InstallTokenAlreadyUsed)
        kind = presentation(
            consumed_at=install.consumed_at,
            consumed_by=daemon_token.daemon_id,
            daemon_id=daemon_id,
            at=now,
            policy=self.exchange_policy,
        )
        if kind is Presentation.RETRY:
            token = self._rederive(raw, daemon_id, daemon_token.id)
            if token is None or daemon_token.revoked_at is not None:
                raise InstallTokenAlreadyUsed
            assert daemon_token.workspace_id is not None
            return ExchangedDaemonToken(
                token_id=daemon_token.id,
                token=token,
                workspace_id=daemon_token.workspace_id,
                daemon_id=daemon_id,
                expires_at=None,
            )
        actor = Actor.system("exchange")
        recorded = install.record_replay(daemon_id=daemon_id, at=now, actor=actor)
        revoked = self.exchange_policy.replay_revokes and daemon_token.revoke(
            reason=RevocationReason.REPLAY_DETECTED, at=now, actor=actor
        )
        if recorded or revoked:
            self.save(install if recorded else None, daemon_token if revoked else None)
        raise InstallTokenAlreadyUsed

    def _rederive(self, raw: str, daemon_id: str, daemon_token_id: UUID) -> str | None:
        """The daemon token that ``raw`` and ``daemon_id`` yielded, if one of the exchange keys
        derives the token ``daemon_token_id`` from them (``None``: a key since retired)."""
        for key in self._ports.exchange_keys:
            token = daemon_token_for(key, raw, daemon_id)
            if Credential.create_id(token.token_hash) == daemon_token_id:
                return token.raw
        return None

    @query
    def list_daemon_tokens(self, by: Principal, workspace_id: UUID) -> list[DaemonTokenInfo]:
        workspace = self._workspace(workspace_id)
        workspace.check_administrator(self._user_id(by))
        rows = self.credentials.of_workspace(workspace.id, TokenKind.DAEMON_TOKEN)
        return [DaemonTokenInfo.of(r) for r in rows]

    @command
    def revoke_daemon_token(
        self,
        by: Principal,
        workspace_id: UUID,
        token_id: UUID | str,
        note: str | None = None,
    ) -> None:
        """Revoke a daemon token of the workspace (owner/admin), with an optional ``note``;
        idempotent."""
        user_id = self._user_id(by)
        workspace = self._workspace(workspace_id)
        workspace.check_administrator(user_id)
        credential_id = validation.uuid(token_id, InvalidTokenId)
        note = validation.note(note)
        credential = self._load(Credential, credential_id, DaemonTokenNotFound)
        rules.check_daemon_token_of(credential, workspace.id)
        if credential.revoke(
            reason=RevocationReason.ADMIN,
            at=self.clock.now(),
            actor=Actor.user(user_id),
            note=note,
        ):
            self.save(credential)

    # ------------------------------------------------------------------------------ audit

    @query
    def credential_history(self, by: Principal, credential_id: UUID | str) -> CredentialHistory:
        """A credential's state and events, for the holder of a personal access token or the
        owners and admins of a daemon or install token's workspace (others: not found)."""
        user_id = self._user_id(by)
        cid = validation.uuid(credential_id, InvalidCredentialId)
        row = self.credentials.get(cid)
        if row is None:
            raise CredentialNotFound
        workspace_id = rules.history_workspace(row)
        workspace = (
            self._load(Workspace, workspace_id, CredentialNotFound) if workspace_id else None
        )
        rules.check_may_read_history(row, user_id, workspace)
        return self.audit.history(cid)

    @query
    def workspace_audit(
        self,
        by: Principal,
        workspace_id: UUID,
        *,
        type: str | None = None,  # noqa: A002 - the contract's parameter name
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> AuditPage:
        """The workspace's audit feed (owners and admins), oldest first."""
        workspace = self._workspace(workspace_id)
        workspace.check_administrator(self._user_id(by))
        return self.audit.events(
            workspace=workspace.id, type=type, since=since, until=until, cursor=cursor, limit=limit
        )

    @query
    def workspace_valid_at(
        self, by: Principal, workspace_id: UUID, at: datetime
    ) -> list[CredentialState]:
        """The workspace's daemon and install tokens usable at ``at`` (owners and admins)."""
        workspace = self._workspace(workspace_id)
        workspace.check_administrator(self._user_id(by))
        return self.audit.valid_at(at, workspace=workspace.id)


__all__ = ["Ledger", "command", "query"]


def register_transcodings(transcoder: JSONTranscoder) -> None:
    """The values a ledger's events hold besides JSON's own: the library's application
    registers the first three; ``Actor`` is the ledger's."""
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), ActorAsDict()):
        transcoder.register(transcoding)


def event_transcoder() -> JSONTranscoder:
    """The transcoder a ledger's events are stored with, made without a ledger (no store, no
    connection, no thread): for bulk readers such as ``ledger audit verify``."""
    transcoder = JSONTranscoder()
    register_transcodings(transcoder)
    return transcoder
