"""The ledger application: every operation of the contract is one call.

Each command loads what it needs, lets the aggregates check the rules, and ends in one
``save()``: atomic across all the aggregates it names. Saves go through the group-commit writer;
a save that lost an optimistic race raises ``ConcurrencyConflict`` and the whole command runs
again on freshly loaded aggregates (that is how single use and exactly-once renewal hold).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import (
    JSONTranscoder,
    Notification,
    Recording,
    Transcoding,
)
from eventsourcing.utils import Environment

from ledger.adapters.announcer import ChangeAnnouncer
from ledger.adapters.credentials_table import CredentialRow, CredentialsTable
from ledger.adapters.postgres import connection_pool, eventsourcing_env, translate_store_errors
from ledger.adapters.recorder import BatchCommand, LedgerRecorder
from ledger.adapters.writer import GroupCommitWriter
from ledger.application import validation
from ledger.application.views import (
    CreatedUser,
    DaemonTokenInfo,
    ExchangedDaemonToken,
    MintedInstallToken,
    MintedToken,
    Principal,
    TokenInfo,
    UserInfo,
    WorkspaceInfo,
)
from ledger.clock import Clock, SystemClock
from ledger.config import Settings
from ledger.domain import (
    Actor,
    Credential,
    Member,
    RenewalOutcome,
    RevocationReason,
    TokenKind,
    User,
    Workspace,
)
from ledger.domain.base import LedgerAggregate
from ledger.domain.credential import INITIAL_PAT_LIFETIME
from ledger.errors import (
    ConcurrencyConflict,
    CredentialNotFound,
    DaemonTokenNotFound,
    InvalidCredentialId,
    InvalidInstallToken,
    InvalidToken,
    InvalidTokenId,
    IssuerNotAdmin,
    LedgerError,
    MalformedInstallToken,
    NotRenewable,
    ServiceUnavailable,
    TokenNoLongerValid,
    TokenNotFound,
    UserNotFound,
    WorkspaceNotFound,
)
from ledger.projections import (
    AuditPage,
    AuditQueries,
    CredentialHistory,
    CredentialState,
    Projections,
)
from ledger.projections.queries import DEFAULT_LIMIT
from ledger.tokens import hash_token, issue, parse_kind
from ledger.usage import UsageRecorder
from ledger.verifier import ALL_KINDS, CacheInvalidator, Verifier, VerifierCache

log = logging.getLogger(__name__)

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
        for _ in range(self.settings.command_attempts):
            try:
                with translate_store_errors():
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
        with translate_store_errors():
            return method(self, *args, **kwargs)

    return wrapper


class Ledger(Application[UUID]):
    """The credential ledger on PostgreSQL (run ``ledger migrate`` first)."""

    name = "Ledger"

    def __init__(
        self,
        database_url: str,
        *,
        settings: Settings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.clock: Clock = clock or SystemClock()
        with translate_store_errors():
            super().__init__(eventsourcing_env(database_url, self.settings))
        recorder = self.recorder
        if not isinstance(recorder, LedgerRecorder):  # pragma: no cover - configuration error
            msg = "the ledger needs its own recorder"
            raise TypeError(msg)
        self._recorder = recorder
        self._database_url = database_url
        self._pool = connection_pool(database_url, self.settings, name="ledger-credentials")
        self.credentials = CredentialsTable(self._pool, schema=recorder.datastore.schema)
        recorder.use_read_pool(self._pool)
        cache = VerifierCache(
            max_ttl=timedelta(seconds=self.settings.verify_cache_max_ttl_s),
            max_entries=self.settings.verify_cache_max_entries,
        )
        self.usage = UsageRecorder(
            self.credentials,
            interval_s=self.settings.last_used_flush_s,
            max_entries=self.settings.last_used_max_entries,
        )
        self.verifier = Verifier(
            self.credentials,
            cache,
            self.clock,
            self.usage,
            before_read=self._ensure_invalidator if cache.enabled else None,
        )
        self._invalidator: CacheInvalidator | None = None
        self._invalidator_lock = threading.Lock()
        self.projections = Projections(
            self,
            recorder.datastore,
            database_url=database_url,
            events_table=recorder.events_table_name,
            channel=recorder.channel_name,
            clock=self.clock,
            batch_size=self.settings.projection_batch_size,
            wait_timeout_s=self.settings.audit_wait_s,
        )
        self.audit = AuditQueries(self.projections, recorder.datastore)
        self.writer = GroupCommitWriter(
            recorder,
            max_batch=self.settings.max_batch,
            threads=self.settings.writer_threads,
            linger_s=self.settings.write_linger_ms / 1000,
        )
        # Other processes hear of each committed batch after its commit (ADR 0018).
        self.announcer = ChangeAnnouncer(
            database_url, channel=recorder.channel_name, origin=recorder.origin
        )
        self.writer.after_commit = self._announce

    # ----------------------------------------------------------------------- infrastructure

    def construct_env(self, name: str, env: Any = None) -> Environment:
        # Configuration comes from Settings only: no stray POSTGRES_* variable may change it.
        return Environment(name, dict(env or {}))

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(ActorAsDict())

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        """Write the pending events of the given aggregates atomically (one command).

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
        return self._record(processing_event)

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        """Save through the group-commit writer, with the credentials-table rows."""
        events = processing_event.events
        stored = [self.mapper.to_stored_event(e) for e in events]
        rows = [
            CredentialRow.of(a)
            for a in processing_event.aggregates.values()
            if isinstance(a, Credential)
        ]
        notification_ids = self.writer.submit(BatchCommand(stored, rows))
        if notification_ids is None:
            raise ConcurrencyConflict
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

    def _announce(self, commands: Sequence[BatchCommand]) -> None:
        self.announcer.announce(
            row.credential_id for command in commands for row in command.credential_rows
        )

    @property
    def database_url(self) -> str:
        return self._database_url

    def close(self) -> None:
        self.projections.stop()
        if self._invalidator is not None:
            self._invalidator.stop()
        self.usage.close()
        self.writer.close()
        self.announcer.close()
        self._pool.close()
        super().close()

    def _ensure_invalidator(self) -> None:
        """Start following other processes' changes before the cache holds anything."""
        if self._invalidator is not None or not self.verifier.cache.enabled:
            return
        with self._invalidator_lock:
            if self._invalidator is None:
                invalidator = CacheInvalidator(
                    self._database_url,
                    self.verifier.cache,
                    events_table=self._recorder.events_table_name,
                    channel=self._recorder.channel_name,
                    own_origin=self._recorder.origin,
                )
                invalidator.start()
                self._invalidator = invalidator

    def _load(self, cls: type[A], aggregate_id: UUID, missing: type[LedgerError]) -> A:
        try:
            aggregate: object = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise missing from None
        if not isinstance(aggregate, cls):
            raise missing
        return aggregate

    def _load_credential_and_workspace(
        self, credential_id: UUID
    ) -> tuple[Credential | None, Workspace | None]:
        """A credential and its workspace, replayed from one query (an exchange needs both)."""
        streams: dict[UUID | str, LedgerAggregate | None] = {}
        for stored in self._recorder.select_credential_and_workspace(credential_id):
            event = self.mapper.to_domain_event(stored)
            assert isinstance(event, LedgerAggregate.Event)
            streams[stored.originator_id] = event.mutate(streams.get(stored.originator_id))
        credential = streams.get(credential_id)
        if not isinstance(credential, Credential):
            return None, None
        workspace = streams.get(credential.workspace_id) if credential.workspace_id else None
        return credential, workspace if isinstance(workspace, Workspace) else None

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
        the propagation bound (``ledger.verifier``), never later than
        ``LEDGER_VERIFY_CACHE_MAX_TTL_S``.
        """
        # Not @query: a cache hit does no I/O, and the verifier translates its reads' errors.
        return self.verifier.verify(raw, allowed_kinds)

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
        user = self._load(User, user_id, UserNotFound)
        return UserInfo(user_id=user.id, name=user.name, email=user.email)

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
        self.save(credential)
        return MintedToken(info=TokenInfo.of(CredentialRow.of(credential)), token=token.raw)

    @query
    def list_personal_access_tokens(self, by: Principal) -> list[TokenInfo]:
        """The caller's tokens that are not revoked (expired included), newest first."""
        return [TokenInfo.of(r) for r in self.credentials.personal_access_tokens(self._user_id(by))]

    @command
    def revoke_personal_access_token(self, by: Principal, token_id: UUID | str) -> None:
        """Revoke one of the caller's tokens; revoking a revoked one is a no-op."""
        user_id = self._user_id(by)
        credential_id = validation.uuid(token_id, InvalidTokenId)
        credential = self._load(Credential, credential_id, TokenNotFound)
        if credential.kind is not TokenKind.PERSONAL_ACCESS_TOKEN or credential.user_id != user_id:
            raise TokenNotFound
        if credential.revoke(
            reason=RevocationReason.USER_REQUEST, at=self.clock.now(), actor=Actor.user(user_id)
        ):
            self.save(credential)

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
        the version race, run again, and find the token consumed.
        """
        raw = raw.strip() if isinstance(raw, str) else None
        if raw is None or parse_kind(raw) is not TokenKind.INSTALL_TOKEN:
            raise MalformedInstallToken
        daemon = validation.daemon_id(daemon_id)
        now = self.clock.now()
        install, workspace = self._load_credential_and_workspace(
            Credential.create_id(hash_token(raw))
        )
        if install is None:
            raise InvalidInstallToken
        install.check_exchangeable(now)
        if workspace is None or install.created_by is None:
            raise InvalidInstallToken
        issuer_role = workspace.role_of(install.created_by)
        if issuer_role is None or not issuer_role.can_administer:
            raise IssuerNotAdmin
        token = issue(TokenKind.DAEMON_TOKEN)
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
        self.save(install, daemon_token)
        return ExchangedDaemonToken(
            token_id=daemon_token.id,
            token=token.raw,
            workspace_id=workspace.id,
            daemon_id=daemon,
            expires_at=None,
        )

    @query
    def list_daemon_tokens(self, by: Principal, workspace_id: UUID) -> list[DaemonTokenInfo]:
        workspace = self._workspace(workspace_id)
        workspace.check_administrator(self._user_id(by))
        rows = self.credentials.of_workspace(workspace.id, TokenKind.DAEMON_TOKEN)
        return [DaemonTokenInfo.of(r) for r in rows]

    @command
    def revoke_daemon_token(self, by: Principal, workspace_id: UUID, token_id: UUID | str) -> None:
        """Revoke a daemon token of the workspace (owner/admin); idempotent."""
        user_id = self._user_id(by)
        workspace = self._workspace(workspace_id)
        workspace.check_administrator(user_id)
        credential_id = validation.uuid(token_id, InvalidTokenId)
        credential = self._load(Credential, credential_id, DaemonTokenNotFound)
        if credential.kind is not TokenKind.DAEMON_TOKEN or credential.workspace_id != workspace.id:
            raise DaemonTokenNotFound
        if credential.revoke(
            reason=RevocationReason.ADMIN, at=self.clock.now(), actor=Actor.user(user_id)
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
        if row.token_kind is TokenKind.PERSONAL_ACCESS_TOKEN:
            allowed = row.user_id == user_id
        else:
            assert row.workspace_id is not None
            workspace = self._load(Workspace, row.workspace_id, CredentialNotFound)
            role = workspace.role_of(user_id)
            allowed = role is not None and role.can_administer
        if not allowed:
            raise CredentialNotFound
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
