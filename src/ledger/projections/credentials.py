"""The Credentials projection: every credential's current state, built from its events.

Personal access tokens by user, daemon and install tokens by workspace, with ``created_by``,
``install_token_id``, ``revoked_at``, ``consumed_at``... It is the event-built twin of the inline
auth table (which commits with the events and serves authentication and the list routes); a
test checks that the two agree row for row. ``last_used_at`` is not an event (it would cost a
write per request): queries join it from the inline table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter
from typing import Any, ClassVar
from uuid import UUID

from psycopg import sql

from ledger.domain import Credential
from ledger.projections.base import Curs, LedgerProjection, LedgerView, Positioned, copy_data
from ledger.projections.eventlog import EventLog

CREDENTIALS_VIEW = "ledger_credentials_view"


@dataclass(slots=True)
class CredentialViewRow:
    """A credential's state in the Credentials projection."""

    credential_id: UUID
    kind: str
    token_prefix: str
    name: str | None
    user_id: UUID | None
    workspace_id: UUID | None
    daemon_id: str | None
    install_token_id: UUID | None
    created_by: UUID | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str | None
    consumed_at: datetime | None
    daemon_token_id: UUID | None
    version: int

    @classmethod
    def minted(cls, event: Credential.Minted) -> CredentialViewRow:
        return cls(
            credential_id=event.originator_id,
            kind=event.kind,
            token_prefix=event.token_prefix,
            name=event.name,
            user_id=event.user_id,
            workspace_id=event.workspace_id,
            daemon_id=event.daemon_id,
            install_token_id=event.install_token_id,
            created_by=event.created_by,
            created_at=event.timestamp,
            expires_at=event.expires_at,
            revoked_at=None,
            revoked_reason=None,
            consumed_at=None,
            daemon_token_id=None,
            version=event.originator_version,
        )


VIEW_COLUMNS = tuple(f.name for f in fields(CredentialViewRow))
_INSTANT = "timestamp with time zone"
VIEW_TYPES = {
    "credential_id": "uuid",
    "kind": "text",
    "token_prefix": "text",
    "name": "text",
    "user_id": "uuid",
    "workspace_id": "uuid",
    "daemon_id": "text",
    "install_token_id": "uuid",
    "created_by": "uuid",
    "created_at": _INSTANT,
    "expires_at": _INSTANT,
    "revoked_at": _INSTANT,
    "revoked_reason": "text",
    "consumed_at": _INSTANT,
    "daemon_token_id": "uuid",
    "version": "bigint",
}
"""The types of ``VIEW_COLUMNS``, in their order (binary ``COPY`` sends exactly these)."""
_row_values = attrgetter(*VIEW_COLUMNS)  # dataclasses.astuple deep-copies every value


@dataclass(slots=True)
class _Change:
    """What later events changed on a row minted in an earlier batch."""

    version: int
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
    consumed_at: datetime | None = None
    daemon_token_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class CredentialWrites:
    """A prepared batch: new rows as binary ``COPY`` data, changes to rows of earlier batches."""

    rows: bytes
    changed: dict[UUID, _Change]


def _apply(target: CredentialViewRow | _Change, event: Any) -> None:
    target.version = event.originator_version
    if isinstance(event, Credential.Renewed):
        target.expires_at = event.expires_at_after
    elif isinstance(event, Credential.Revoked):
        target.revoked_at = event.timestamp
        target.revoked_reason = event.reason
    elif isinstance(event, Credential.Consumed):
        target.consumed_at = event.timestamp
        target.daemon_token_id = event.daemon_token_id


class CredentialsView(LedgerView):
    """The ``ledger_credentials_view`` table and its tracking row."""

    tables = (CREDENTIALS_VIEW,)
    tracking_table = "ledger_credentials_view_tracking"

    def __init__(self, datastore: Any, log: EventLog) -> None:
        super().__init__(datastore, log)
        table = sql.Identifier(CREDENTIALS_VIEW)
        self._copy = (
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)")
            .format(table, sql.SQL(", ").join(sql.Identifier(c) for c in VIEW_COLUMNS))
            .as_string()
        )
        # A field a batch did not change is NULL in the arrays and keeps its value.
        self._update = (
            sql.SQL(
                "UPDATE {} AS v SET version = u.version, "
                "expires_at = coalesce(u.expires_at, v.expires_at), "
                "revoked_at = coalesce(u.revoked_at, v.revoked_at), "
                "revoked_reason = coalesce(u.revoked_reason, v.revoked_reason), "
                "consumed_at = coalesce(u.consumed_at, v.consumed_at), "
                "daemon_token_id = coalesce(u.daemon_token_id, v.daemon_token_id) "
                "FROM unnest(%s::uuid[], %s::bigint[], %s::timestamptz[], %s::timestamptz[], "
                "%s::text[], %s::timestamptz[], %s::uuid[]) "
                "AS u(id, version, expires_at, revoked_at, revoked_reason, consumed_at, "
                "daemon_token_id) "
                "WHERE v.credential_id = u.id"
            )
            .format(table)
            .as_string()
        )

    def prepare(self, curs: Curs, events: Sequence[Positioned]) -> CredentialWrites:
        """Rows of credentials minted in the batch (as ``COPY`` data, with what their later
        events in the batch changed), and the changes to credentials minted before it."""
        new: dict[UUID, CredentialViewRow] = {}
        changed: dict[UUID, _Change] = {}
        for item in events:
            event = item.event
            if isinstance(event, Credential.Minted):
                new[event.originator_id] = CredentialViewRow.minted(event)
            elif isinstance(event, Credential.Consumed | Credential.Renewed | Credential.Revoked):
                target: CredentialViewRow | _Change | None = new.get(event.originator_id)
                if target is None:
                    target = changed.setdefault(
                        event.originator_id, _Change(version=event.originator_version)
                    )
                _apply(target, event)
        rows = copy_data(curs, map(_row_values, new.values()), VIEW_TYPES.values()) if new else b""
        return CredentialWrites(rows, changed)

    def apply(self, curs: Curs, prepared: CredentialWrites) -> None:
        if prepared.rows:
            with curs.copy(self._copy) as copy:
                copy.write(prepared.rows)
        if prepared.changed:
            changes = list(prepared.changed.values())
            curs.execute(
                self._update,
                (
                    list(prepared.changed),
                    [c.version for c in changes],
                    [c.expires_at for c in changes],
                    [c.revoked_at for c in changes],
                    [c.revoked_reason for c in changes],
                    [c.consumed_at for c in changes],
                    [c.daemon_token_id for c in changes],
                ),
            )


class Credentials(LedgerProjection[CredentialsView]):
    """Every credential's current state (``ledger_credentials_view``)."""

    name = "credentials"
    view_class: ClassVar[type[LedgerView]] = CredentialsView
