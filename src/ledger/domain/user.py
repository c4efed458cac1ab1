"""The user aggregate: a person known to the ledger, created by an operator."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from ledger.domain.base import LedgerAggregate
from ledger.domain.model import Actor


class User(LedgerAggregate):
    """A user. Personal access tokens are account-wide and point at the user's id."""

    name: str
    email: str | None

    def __init__(self) -> None:
        self.email = None

    class Created(LedgerAggregate.Created):
        name: str
        email: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.name = self.name
            aggregate.email = self.email

    @classmethod
    def create(
        cls,
        *,
        id: UUID,  # noqa: A002
        name: str,
        email: str | None,
        at: datetime,
        actor: Actor,
    ) -> User:
        return cls._start(cls.Created, id=id, at=at, actor=actor, name=name, email=email)
