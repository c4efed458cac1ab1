"""Users as principals, and aggregates loaded by id, through the application's public API."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from uuid import UUID

from ledger.application import Ledger
from ledger.domain import Credential, TokenKind
from ledger.domain.principal import Principal

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
"""Where the tests' manual clocks start."""


@dataclass(frozen=True, slots=True)
class UserPrincipal(Principal):
    """A principal known to be a user (tests need not re-check ``user_id``)."""

    user_id: UUID


def new_user(ledger: Ledger, name: str = "user") -> tuple[UserPrincipal, str]:
    """A new user, as the principal their initial token verifies to, and that raw token."""
    created = ledger.create_user(name)
    principal = ledger.verify(created.token, {TokenKind.PERSONAL_ACCESS_TOKEN})
    assert principal.user_id is not None
    return UserPrincipal(**{**asdict(principal), "user_id": principal.user_id}), created.token


def load_credential(ledger: Ledger, credential_id: UUID) -> Credential:
    """The credential aggregate, replayed from the event store."""
    aggregate: object = ledger.repository.get(credential_id)
    assert isinstance(aggregate, Credential)
    return aggregate
