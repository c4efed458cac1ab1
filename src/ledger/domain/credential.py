"""The credential aggregate: one stream per token, whatever its kind."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from ledger.domain.base import LedgerAggregate
from ledger.domain.credential_row import Change, CredentialRow, fold, sources
from ledger.domain.errors import (
    InstallTokenAlreadyUsed,
    InvalidInstallToken,
    NotRenewable,
    TokenNoLongerValid,
)
from ledger.domain.exchange import should_record_replay
from ledger.domain.model import Actor, RevocationReason, TokenKind

CREDENTIAL_NAMESPACE = UUID("6f1c3a52-8b1e-4e57-9d0a-2c4b7e9f5a10")
"""Namespace of the uuid5 that turns a token hash into a credential id."""

PAT_RENEWAL_WINDOW = timedelta(days=7)
PAT_RENEWAL_EXTENSION = timedelta(days=90)
INSTALL_TOKEN_LIFETIME = timedelta(minutes=15)
INITIAL_PAT_LIFETIME = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class RenewalOutcome:
    """What a renewal did: ``renewed`` is true for exactly one of any set of racing renewals."""

    renewed: bool
    expires_at: datetime | None


class Credential(LedgerAggregate):
    """A token's lifecycle: minted, then possibly consumed (install), renewed (PAT), revoked.

    Its state is a ``CredentialRow``, which every event changes through the one ``fold``
    (``ledger.domain.credential_row``); the aggregate checks the rules and emits events."""

    state: CredentialRow

    def __init__(self) -> None:
        """State is set by the events (``Minted`` first)."""

    @staticmethod
    def create_id(token_hash: str) -> UUID:
        """The credential id is derived from the token hash: the store rejects a duplicate
        mint, and a lookup by hash needs no index."""
        return uuid.uuid5(CREDENTIAL_NAMESPACE, token_hash)

    class Minted(LedgerAggregate.Created):
        kind: str
        token_hash: str
        token_prefix: str
        name: str | None
        user_id: UUID | None
        workspace_id: UUID | None
        daemon_id: str | None
        install_token_id: UUID | None
        created_by: UUID | None
        expires_at: datetime | None

        def apply(self, aggregate: Any) -> None:
            TokenKind(self.kind)  # an unknown kind cannot be a credential
            _fold(aggregate, self)

    class Consumed(LedgerAggregate.Event):
        daemon_token_id: UUID

        def apply(self, aggregate: Any) -> None:
            _fold(aggregate, self)

    class ReplayDetected(LedgerAggregate.Event):
        """A used install token was presented again, not as a retry of its exchange."""

        daemon_id: str
        replays: int
        """How many replays of the token are recorded, this one included."""

        def apply(self, aggregate: Any) -> None:
            _fold(aggregate, self)

    class Renewed(LedgerAggregate.Event):
        expires_at_before: datetime
        expires_at_after: datetime

        def apply(self, aggregate: Any) -> None:
            _fold(aggregate, self)

    class Revoked(LedgerAggregate.Event):
        """``note``: the revoker's own words, if any (version 2; version 1 had none)."""

        class_version = 2

        reason: str
        note: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["note"] = None

        def apply(self, aggregate: Any) -> None:
            RevocationReason(self.reason)  # an unknown reason cannot be a revocation
            _fold(aggregate, self)

    # ----------------------------------------------------------------------------- state

    @property
    def kind(self) -> TokenKind:
        return TokenKind(self.state.kind)

    @property
    def token_hash(self) -> str:
        return self.state.token_hash

    @property
    def token_prefix(self) -> str:
        return self.state.token_prefix

    @property
    def name(self) -> str | None:
        return self.state.name

    @property
    def user_id(self) -> UUID | None:
        return self.state.user_id

    @property
    def workspace_id(self) -> UUID | None:
        return self.state.workspace_id

    @property
    def daemon_id(self) -> str | None:
        return self.state.daemon_id

    @property
    def install_token_id(self) -> UUID | None:
        return self.state.install_token_id

    @property
    def created_by(self) -> UUID | None:
        return self.state.created_by

    @property
    def expires_at(self) -> datetime | None:
        return self.state.expires_at

    @property
    def revoked_at(self) -> datetime | None:
        return self.state.revoked_at

    @property
    def revoked_reason(self) -> RevocationReason | None:
        reason = self.state.revoked_reason
        return None if reason is None else RevocationReason(reason)

    @property
    def consumed_at(self) -> datetime | None:
        return self.state.consumed_at

    @property
    def daemon_token_id(self) -> UUID | None:
        return self.state.daemon_token_id

    @property
    def replays_recorded(self) -> int:
        return self.state.replays_recorded

    @property
    def last_replay_at(self) -> datetime | None:
        return self.state.last_replay_at

    # ----------------------------------------------------------------------------- creation

    @classmethod
    def mint_personal_access_token(
        cls,
        *,
        token_hash: str,
        token_prefix: str,
        name: str,
        user_id: UUID,
        expires_at: datetime | None,
        at: datetime,
        actor: Actor,
    ) -> Credential:
        return cls._mint(
            TokenKind.PERSONAL_ACCESS_TOKEN,
            token_hash=token_hash,
            token_prefix=token_prefix,
            name=name,
            user_id=user_id,
            created_by=user_id,
            expires_at=expires_at,
            at=at,
            actor=actor,
        )

    @classmethod
    def mint_install_token(
        cls,
        *,
        token_hash: str,
        token_prefix: str,
        workspace_id: UUID,
        issuer_id: UUID,
        at: datetime,
        actor: Actor,
    ) -> Credential:
        return cls._mint(
            TokenKind.INSTALL_TOKEN,
            token_hash=token_hash,
            token_prefix=token_prefix,
            workspace_id=workspace_id,
            created_by=issuer_id,
            expires_at=at + INSTALL_TOKEN_LIFETIME,
            at=at,
            actor=actor,
        )

    @classmethod
    def mint_daemon_token(
        cls,
        *,
        token_hash: str,
        token_prefix: str,
        install_token: Credential,
        daemon_id: str,
        at: datetime,
        actor: Actor,
    ) -> Credential:
        return cls._mint(
            TokenKind.DAEMON_TOKEN,
            token_hash=token_hash,
            token_prefix=token_prefix,
            workspace_id=install_token.workspace_id,
            daemon_id=daemon_id,
            install_token_id=install_token.id,
            created_by=install_token.created_by,
            expires_at=None,
            at=at,
            actor=actor,
        )

    @classmethod
    def _mint(
        cls,
        kind: TokenKind,
        *,
        token_hash: str,
        token_prefix: str,
        at: datetime,
        actor: Actor,
        expires_at: datetime | None,
        name: str | None = None,
        user_id: UUID | None = None,
        workspace_id: UUID | None = None,
        daemon_id: str | None = None,
        install_token_id: UUID | None = None,
        created_by: UUID | None = None,
    ) -> Credential:
        return cls._start(
            cls.Minted,
            id=cls.create_id(token_hash),
            at=at,
            actor=actor,
            kind=kind.value,
            token_hash=token_hash,
            token_prefix=token_prefix,
            name=name,
            user_id=user_id,
            workspace_id=workspace_id,
            daemon_id=daemon_id,
            install_token_id=install_token_id,
            created_by=created_by,
            expires_at=expires_at,
        )

    # ----------------------------------------------------------------------------- queries

    @property
    def minted_at(self) -> datetime:
        return self.state.created_at

    def is_usable(self, at: datetime) -> bool:
        """Usable at ``at`` iff minted at or before it, not expired, neither revoked nor
        consumed at or before it."""
        return self.state.is_usable(at)

    # ----------------------------------------------------------------------------- commands

    def check_exchangeable(self, at: datetime) -> None:
        """Raise unless this install token can be exchanged at ``at``."""
        if self.kind is not TokenKind.INSTALL_TOKEN:
            raise InvalidInstallToken
        if self.consumed_at is not None:
            raise InstallTokenAlreadyUsed
        if not self.is_usable(at):
            raise InvalidInstallToken

    def consume(self, *, daemon_token_id: UUID, at: datetime, actor: Actor) -> None:
        """Mark this install token as exchanged for the daemon token ``daemon_token_id``."""
        self.check_exchangeable(at)
        self._emit(self.Consumed, at=at, actor=actor, daemon_token_id=daemon_token_id)

    def record_replay(self, *, daemon_id: str, at: datetime, actor: Actor) -> bool:
        """Record that this used install token was presented again (``daemon_id``: the one
        presented), unless replays of it are being recorded too often already
        (``should_record_replay``); whether it was recorded."""
        if self.kind is not TokenKind.INSTALL_TOKEN or self.consumed_at is None:
            raise InvalidInstallToken
        if not should_record_replay(
            recorded=self.replays_recorded, last_recorded_at=self.last_replay_at, at=at
        ):
            return False
        self._emit(
            self.ReplayDetected,
            at=at,
            actor=actor,
            daemon_id=daemon_id,
            replays=self.replays_recorded + 1,
        )
        return True

    def renew(self, *, at: datetime, actor: Actor) -> RenewalOutcome:
        """Extend a personal access token to ``at`` + 90 days when 7 days or less remain."""
        if self.kind is not TokenKind.PERSONAL_ACCESS_TOKEN:
            raise NotRenewable
        if not self.is_usable(at):
            raise TokenNoLongerValid
        if self.expires_at is None:
            return RenewalOutcome(renewed=False, expires_at=None)
        if self.expires_at - at > PAT_RENEWAL_WINDOW:
            return RenewalOutcome(renewed=False, expires_at=self.expires_at)
        after = at + PAT_RENEWAL_EXTENSION
        self._emit(
            self.Renewed,
            at=at,
            actor=actor,
            expires_at_before=self.expires_at,
            expires_at_after=after,
        )
        return RenewalOutcome(renewed=True, expires_at=after)

    def revoke(
        self,
        *,
        reason: RevocationReason,
        at: datetime,
        actor: Actor,
        note: str | None = None,
    ) -> bool:
        """Revoke, recording why (``reason``) and the revoker's ``note`` (checked by the
        caller: ``ledger.application.validation.note``); a second revocation changes nothing
        and returns False."""
        if self.revoked_at is not None:
            return False
        self._emit(self.Revoked, at=at, actor=actor, reason=reason.value, note=note)
        return True


EVENT_TYPES: dict[type[LedgerAggregate.Event], str] = {
    Credential.Minted: "minted",
    Credential.Consumed: "consumed",
    Credential.Renewed: "renewed",
    Credential.Revoked: "revoked",
    Credential.ReplayDetected: "replay_detected",
}
"""Every credential event class and its type (the audit trail's name, a key of ``FOLDS``)."""


_SOURCES = {event_class: sources(type_) for event_class, type_ in EVENT_TYPES.items()}


def change_of(event: LedgerAggregate.Event) -> Change:
    """A credential event as the fold reads it."""
    event_class = type(event)
    return Change(
        EVENT_TYPES[event_class],
        event.originator_id,
        event.timestamp,
        event.originator_version,
        {source: getattr(event, source) for source in _SOURCES[event_class]},
    )


def _fold(aggregate: Credential, event: LedgerAggregate.Event) -> None:
    state = fold(getattr(aggregate, "state", None), change_of(event))
    assert state is not None, "a credential's first event is its Minted"
    aggregate.state = state
