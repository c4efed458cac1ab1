"""The Credentials projection: every credential's current state, built from its events.

Personal access tokens by user, daemon and install tokens by workspace, with ``created_by``,
``install_token_id``, ``revoked_at``, ``consumed_at``... It is the event-built twin of the inline
auth table (which commits with the events and serves authentication and the list routes); a
test checks that the two agree row for row. ``last_used_at`` is not an event (it would cost a
write per request): queries join it from the inline table.

Every value is checked before it is written: text in a safe form, an event with an id or
instant of the wrong type changes nothing; either way the event is recorded in
``ledger_projection_errors`` (docs/adr/0016). For such events the view and the inline table
differ: the inline table holds what the command wrote.
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
from ledger.domain.credential_row import INSTANT_SQL, SQL_TYPES
from ledger.projections.base import (
    Curs,
    LedgerProjection,
    LedgerView,
    Positioned,
    copy_checked,
    event_problem,
)
from ledger.projections.eventlog import EventLog
from ledger.projections.problems import (
    INVALID_VALUE,
    UNSAFE_TEXT,
    InvalidValue,
    Problem,
    RowCheck,
    check_id,
    check_instant,
    clean_text,
)

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
"""The view's columns: fields of the credential's declaration (``CredentialRow``), by name."""
_COPY_NAMES = {INSTANT_SQL: "timestamp with time zone"}  # the name binary COPY knows it by
VIEW_TYPES = {c: _COPY_NAMES.get(SQL_TYPES[c], SQL_TYPES[c]) for c in VIEW_COLUMNS}
"""The types of ``VIEW_COLUMNS``, in their order (binary ``COPY`` sends exactly these)."""
VIEW_CHECK = RowCheck(
    VIEW_TYPES, required=("credential_id", "kind", "token_prefix", "created_at", "version")
)
"""What a new row must hold before it is written (see ``RowCheck``)."""
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


def _change(event: Any, notes: list[str]) -> dict[str, Any]:
    """The fields a later event sets, checked (``InvalidValue`` if one is not what it must
    be, before anything is changed)."""
    version = event.originator_version
    if type(version) is not int:
        msg = "originator_version is not an integer"
        raise InvalidValue(msg)
    if isinstance(event, Credential.Renewed):
        return {
            "version": version,
            "expires_at": check_instant(event.expires_at_after, "expires_at_after"),
        }
    if isinstance(event, Credential.ReplayDetected):
        return {"version": version}
    at = check_instant(event.timestamp, "timestamp")
    if isinstance(event, Credential.Revoked):
        reason = clean_text(event.reason, "reason", notes)
        return {"version": version, "revoked_at": at, "revoked_reason": reason}
    daemon_token_id = check_id(event.daemon_token_id, "daemon_token_id")
    return {"version": version, "consumed_at": at, "daemon_token_id": daemon_token_id}


def _minted_row(event: Credential.Minted, notes: list[str]) -> CredentialViewRow:
    row = CredentialViewRow.minted(event)
    values = _row_values(row)
    checked = VIEW_CHECK(values, notes)
    return row if checked is values else CredentialViewRow(*checked)


def _sources(events: Sequence[Positioned], new: dict[UUID, CredentialViewRow]) -> list[Positioned]:
    """The ``Minted`` each new row comes from, in the rows' order (the last of a stream's)."""
    minted = {
        item.event.originator_id: item
        for item in events
        if isinstance(item.event, Credential.Minted) and item.event.originator_id in new
    }
    return [minted[cid] for cid in new]


LATER_EVENTS = (
    Credential.Consumed,
    Credential.Renewed,
    Credential.Revoked,
    Credential.ReplayDetected,
)


class CredentialsView(LedgerView):
    """The ``ledger_credentials_view`` table and its tracking row."""

    tables = (CREDENTIALS_VIEW,)
    tracking_table = "ledger_credentials_view_tracking"
    projection = "credentials"

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

    def prepare(
        self, curs: Curs, events: Sequence[Positioned], problems: list[Problem]
    ) -> CredentialWrites:
        """Rows of credentials minted in the batch (as ``COPY`` data, with what their later
        events in the batch changed), and the changes to credentials minted before it."""
        new: dict[UUID, CredentialViewRow] = {}
        changed: dict[UUID, _Change] = {}
        notes: list[str] = []
        for item in events:
            event = item.event
            try:
                if isinstance(event, Credential.Minted):
                    new[event.originator_id] = (
                        CredentialViewRow.minted(event) if item.clean else _minted_row(event, notes)
                    )
                elif isinstance(event, LATER_EVENTS):
                    fields = _change(event, notes)
                    target: CredentialViewRow | _Change | None = new.get(event.originator_id)
                    if target is None:
                        target = changed.setdefault(
                            event.originator_id, _Change(version=fields["version"])
                        )
                    for name, value in fields.items():
                        setattr(target, name, value)
            except Exception as error:  # noqa: BLE001 - whatever the event holds: its problem
                problems.append(event_problem(item, INVALID_VALUE, error))
                notes.clear()
                continue
            if notes:
                problems.append(event_problem(item, UNSAFE_TEXT, "; ".join(notes)))
                notes.clear()
        rows = (
            copy_checked(
                curs,
                list(map(_row_values, new.values())),
                lambda: _sources(events, new),
                VIEW_TYPES.values(),
                problems,
            )
            if new
            else b""
        )
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
