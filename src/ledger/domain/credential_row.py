"""A credential's state, declared once, and the one fold of its events into that state.

``CredentialRow`` is the declaration: each field says its SQL type, whether a later event may
change it, and whether the auth lookup table holds it (``column``). The aggregate's state, the
auth table's SQL, the credentials view, the audit trail's states and the point-in-time query
derive from it. ``fold(state, change)`` is the only code that turns a credential event into
state; ``FOLDS`` says, per event type, which fields it sets and from what. Every reader brings
its events as ``Change``: the aggregate from its domain events (``change_of``), the
point-in-time query from the audit trail's rows.

Adding a field: a ``column`` here (and a migration when a table holds it). Adding an event
type: its class in ``ledger.domain.credential``, a row in ``EVENT_TYPES`` and one in ``FOLDS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from ledger.domain.model import TokenKind

UUID_SQL = "uuid"
TEXT_SQL = "text"
INSTANT_SQL = "timestamptz"
INTEGER_SQL = "bigint"


def column(
    sql_type: str, *, mutable: bool = False, in_table: bool = True, written: bool = True
) -> dict[str, Any]:
    """A field's declaration (its ``metadata``): its SQL type; ``mutable`` if a later event may
    change it; ``in_table`` if the auth lookup table holds it; ``written`` if the event-insert
    transaction writes it (the usage timestamp is written apart)."""
    return {"sql_type": sql_type, "mutable": mutable, "in_table": in_table, "written": written}


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
class CredentialRow:
    """A credential's current state: the aggregate's, and the auth lookup table's row."""

    credential_id: UUID = field(metadata=column(UUID_SQL))
    token_hash: str = field(metadata=column(TEXT_SQL))
    kind: str = field(metadata=column(TEXT_SQL))
    token_prefix: str = field(metadata=column(TEXT_SQL))
    name: str | None = field(metadata=column(TEXT_SQL))
    user_id: UUID | None = field(metadata=column(UUID_SQL))
    workspace_id: UUID | None = field(metadata=column(UUID_SQL))
    daemon_id: str | None = field(metadata=column(TEXT_SQL))
    install_token_id: UUID | None = field(metadata=column(UUID_SQL))
    created_by: UUID | None = field(metadata=column(UUID_SQL))
    created_at: datetime = field(metadata=column(INSTANT_SQL))
    expires_at: datetime | None = field(metadata=column(INSTANT_SQL, mutable=True))
    revoked_at: datetime | None = field(metadata=column(INSTANT_SQL, mutable=True))
    revoked_reason: str | None = field(metadata=column(TEXT_SQL, mutable=True))
    consumed_at: datetime | None = field(metadata=column(INSTANT_SQL, mutable=True))
    version: int = field(metadata=column(INTEGER_SQL, mutable=True))
    last_used_at: datetime | None = field(default=None, metadata=column(INSTANT_SQL, written=False))
    """Approximate, written in batches by ``ledger.adapters.usage``; never by the event-insert
    path."""
    daemon_token_id: UUID | None = field(
        default=None, metadata=column(UUID_SQL, mutable=True, in_table=False)
    )
    """The daemon token an install token was exchanged for (the views show it; verify does
    not need it, so the auth table does not hold it)."""
    replays_recorded: int = field(
        default=0, metadata=column(INTEGER_SQL, mutable=True, in_table=False)
    )
    """How many replays of a used install token are recorded (``ledger.domain.exchange``)."""
    last_replay_at: datetime | None = field(
        default=None, metadata=column(INSTANT_SQL, mutable=True, in_table=False)
    )
    """When the last of them was."""

    @classmethod
    def of(cls, credential: HasState) -> CredentialRow:
        """The aggregate's state (its ``state`` is this row)."""
        return credential.state

    @property
    def token_kind(self) -> TokenKind:
        return TokenKind(self.kind)

    def is_usable(self, at: datetime) -> bool:
        """The contract's usability rule (``usable_at``)."""
        return usable_at(
            at,
            minted_at=self.created_at,
            expires_at=self.expires_at,
            revoked_at=self.revoked_at,
            consumed_at=self.consumed_at,
        )


class HasState(Protocol):
    @property
    def state(self) -> CredentialRow: ...


FIELDS = fields(CredentialRow)
FIELD_NAMES = tuple(f.name for f in FIELDS)
SQL_TYPES = {f.name: f.metadata["sql_type"] for f in FIELDS}
"""Every field's SQL type."""
TABLE_COLUMNS = tuple(f.name for f in FIELDS if f.metadata["in_table"])
"""The auth lookup table's columns, in the order its reads return them."""
WRITE_COLUMNS = tuple(
    c for c in TABLE_COLUMNS if next(f for f in FIELDS if f.name == c).metadata["written"]
)
"""What the event-insert transaction writes: every column but the usage timestamp."""
MUTABLE_FIELDS = tuple(f.name for f in FIELDS if f.metadata["mutable"])
"""The fields a later event may change."""


# ------------------------------------------------------------------------------- the fold

AT = "@at"
"""A ``Fold`` source that stands for the event's instant."""


@dataclass(frozen=True, slots=True)
class Fold:
    """What one event type does to a credential's state: ``sets`` maps each field it sets to
    where the value comes from (an event attribute, or ``AT``); ``once`` names a field that,
    once set, makes the event change nothing but the version (revoked or consumed once)."""

    sets: Mapping[str, str]
    once: str | None = None
    creates: bool = False


MINTED_FIELDS = (
    "kind",
    "token_hash",
    "token_prefix",
    "name",
    "user_id",
    "workspace_id",
    "daemon_id",
    "install_token_id",
    "created_by",
    "expires_at",
)
"""What a ``Minted`` event carries (by the same names as the state's fields)."""

FOLDS: dict[str, Fold] = {
    "minted": Fold({"created_at": AT, **{name: name for name in MINTED_FIELDS}}, creates=True),
    "consumed": Fold({"consumed_at": AT, "daemon_token_id": "daemon_token_id"}, once="consumed_at"),
    "renewed": Fold({"expires_at": "expires_at_after"}),
    "revoked": Fold({"revoked_at": AT, "revoked_reason": "reason"}, once="revoked_at"),
    "replay_detected": Fold({"replays_recorded": "replays", "last_replay_at": AT}),
}
"""Every credential event type (by its audit trail name) and what it does to the state."""


class Change(NamedTuple):
    """One credential event as the fold reads it: its type (a key of ``FOLDS``), credential,
    instant, stream version, and the values its ``Fold`` sources name."""

    type: str
    credential_id: UUID
    at: datetime
    version: int
    values: Mapping[str, Any]


def sources(type_: str) -> tuple[str, ...]:
    """The event attributes a ``Change`` of this type must carry."""
    return tuple(source for source in FOLDS[type_].sets.values() if source != AT)


# The fold works on the row's values by position (a frozen dataclass is slow to ``replace``):
# each event type's plan is the positions it sets and where each value comes from.
_INDEX = {name: i for i, name in enumerate(FIELD_NAMES)}
_ALL_VALUES = attrgetter(*FIELD_NAMES)
_ID, _VERSION = _INDEX["credential_id"], _INDEX["version"]
_BLANK = tuple(None if f.default is MISSING else f.default for f in FIELDS)
"""A row before its ``Minted``: the fields no event set yet (``None`` unless declared)."""
_PLANS = {
    type_: tuple((_INDEX[name], source) for name, source in rule.sets.items())
    for type_, rule in FOLDS.items()
}


def fold(state: CredentialRow | None, change: Change) -> CredentialRow | None:
    """The state after ``change`` (``None``: a credential not minted yet, and still not)."""
    values = fold_values(None if state is None else list(_ALL_VALUES(state)), change)
    return None if values is None else CredentialRow(*values)


def fold_values(values: list[Any] | None, change: Change) -> list[Any] | None:
    """``fold`` on a state's values in ``FIELD_NAMES`` order (a bulk reader's form: no row
    object per event). ``values`` is changed in place; a minting starts a new list."""
    rule = FOLDS[change.type]
    if rule.creates:
        values = list(_BLANK)
        values[_ID] = change.credential_id
    elif values is None:
        return None
    elif rule.once is not None and values[_INDEX[rule.once]] is not None:
        values[_VERSION] = change.version
        return values
    values[_VERSION] = change.version
    given = change.values
    for index, source in _PLANS[change.type]:
        values[index] = change.at if source == AT else given[source]
    return values
