"""The credential aggregate: one stream per token, whatever its kind."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from ledger.domain.base import LedgerAggregate
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


def usable_at(
    at: datetime,
    *,
    minted_at: datetime,
    expires_at: datetime | None,
    revoked_at: datetime | None,
    consumed_at: datetime | None,
) -> bool:
    """The contract's rule: usable at ``at`` iff minted at or before it, ``at`` before the
    expiry (if any), and neither revoked nor consumed at or before it. Every view of a credential
    (the aggregate, the auth table's row, a state as of an instant) decides with this one."""
    return (
        minted_at <= at
        and (expires_at is None or at < expires_at)
        and (revoked_at is None or revoked_at > at)
        and (consumed_at is None or consumed_at > at)
    )


@dataclass(frozen=True, slots=True)
class RenewalOutcome:
    """What a renewal did: ``renewed`` is true for exactly one of any set of racing renewals."""

    renewed: bool
    expires_at: datetime | None


class Credential(LedgerAggregate):
    """A token's lifecycle: minted, then possibly consumed (install), renewed (PAT), revoked."""

    kind: TokenKind
    token_hash: str
    token_prefix: str
    name: str | None
    user_id: UUID | None
    workspace_id: UUID | None
    daemon_id: str | None
    install_token_id: UUID | None
    created_by: UUID | None
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: RevocationReason | None
    consumed_at: datetime | None
    daemon_token_id: UUID | None
    replays_recorded: int
    last_replay_at: datetime | None

    def __init__(self) -> None:
        self.revoked_at = None
        self.revoked_reason = None
        self.consumed_at = None
        self.daemon_token_id = None
        self.replays_recorded = 0
        self.last_replay_at = None

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
            cred: Credential = aggregate
            cred.kind = TokenKind(self.kind)
            cred.token_hash = self.token_hash
            cred.token_prefix = self.token_prefix
            cred.name = self.name
            cred.user_id = self.user_id
            cred.workspace_id = self.workspace_id
            cred.daemon_id = self.daemon_id
            cred.install_token_id = self.install_token_id
            cred.created_by = self.created_by
            cred.expires_at = self.expires_at

    class Consumed(LedgerAggregate.Event):
        daemon_token_id: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.consumed_at = self.timestamp
            aggregate.daemon_token_id = self.daemon_token_id

    class ReplayDetected(LedgerAggregate.Event):
        """A used install token was presented again, not as a retry of its exchange."""

        daemon_id: str
        replays: int
        """How many replays of the token are recorded, this one included."""

        def apply(self, aggregate: Any) -> None:
            aggregate.replays_recorded = self.replays
            aggregate.last_replay_at = self.timestamp

    class Renewed(LedgerAggregate.Event):
        expires_at_before: datetime
        expires_at_after: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.expires_at = self.expires_at_after

    class Revoked(LedgerAggregate.Event):
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.revoked_at = self.timestamp
            aggregate.revoked_reason = RevocationReason(self.reason)

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
        return self.created_on

    def is_usable(self, at: datetime) -> bool:
        """Usable at ``at`` iff minted at or before it, not expired, neither revoked nor
        consumed at or before it."""
        return usable_at(
            at,
            minted_at=self.minted_at,
            expires_at=self.expires_at,
            revoked_at=self.revoked_at,
            consumed_at=self.consumed_at,
        )

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

    def revoke(self, *, reason: RevocationReason, at: datetime, actor: Actor) -> bool:
        """Revoke; a second revocation changes nothing and returns False."""
        if self.revoked_at is not None:
            return False
        self._emit(self.Revoked, at=at, actor=actor, reason=reason.value)
        return True
