"""The one credential fold: over random event sequences, the audit trail's point-in-time states
equal the aggregate's own replay, at every instant; and every credential shape is the
declaration's (``CredentialRow``)."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, DateTime, Table, Text, Uuid

from ledger.adapters.credentials_table import COLUMNS, MUTABLE_COLUMNS, WRITE_COLUMNS
from ledger.adapters.migrations import schema
from ledger.application.audit import STATE_FIELDS, CredentialState
from ledger.domain import Actor, Credential, RevocationReason, TokenKind
from ledger.domain.base import LedgerAggregate
from ledger.domain.credential import EVENT_TYPES, change_of
from ledger.domain.credential_row import FIELDS, FOLDS, SQL_TYPES, CredentialRow, fold
from ledger.domain.errors import LedgerError
from ledger.domain.tokens import issue
from ledger.projections import AuditEvent, states_as_of
from ledger.projections.audit_trail import EVENT_TYPES as AUDIT_TYPES
from ledger.projections.audit_trail import audit_row, minted_context
from ledger.projections.base import Positioned
from ledger.projections.credentials import VIEW_COLUMNS, VIEW_TYPES

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ISSUER = uuid4()
ACTOR = Actor.user(ISSUER)

Step = tuple[str, int]
"""A command and the minutes after ``T0`` at which it is attempted."""


def minted(kind: TokenKind, lifetime_minutes: int | None) -> Credential:
    token = issue(kind)
    expires_at = None if lifetime_minutes is None else T0 + timedelta(minutes=lifetime_minutes)
    if kind is TokenKind.PERSONAL_ACCESS_TOKEN:
        return Credential.mint_personal_access_token(
            token_hash=token.token_hash,
            token_prefix=token.display_prefix,
            name="laptop",
            user_id=ISSUER,
            expires_at=expires_at,
            at=T0,
            actor=ACTOR,
        )
    install = Credential.mint_install_token(
        token_hash=token.token_hash,
        token_prefix=token.display_prefix,
        workspace_id=uuid4(),
        issuer_id=ISSUER,
        at=T0,
        actor=ACTOR,
    )
    if kind is TokenKind.INSTALL_TOKEN:
        return install
    daemon = issue(TokenKind.DAEMON_TOKEN)
    return Credential.mint_daemon_token(
        token_hash=daemon.token_hash,
        token_prefix=daemon.display_prefix,
        install_token=install,
        daemon_id="box-1",
        at=T0,
        actor=ACTOR,
    )


def run(credential: Credential, steps: list[Step]) -> None:
    """Attempt each command in time order; the domain refuses some (that is part of it)."""
    for command, minutes in sorted(steps, key=lambda step: step[1]):
        at = T0 + timedelta(minutes=minutes)
        try:
            if command == "renew":
                credential.renew(at=at, actor=ACTOR)
            elif command == "revoke":
                credential.revoke(reason=RevocationReason.USER_REQUEST, at=at, actor=ACTOR)
            elif command == "replay":
                credential.record_replay(daemon_id="elsewhere", at=at, actor=ACTOR)
            else:
                credential.consume(daemon_token_id=uuid4(), at=at, actor=ACTOR)
        except LedgerError:
            pass


def audit_events(events: list[Any]) -> list[AuditEvent]:
    """The audit trail's rows of the events, read back as the queries read them."""
    context = minted_context(events[0])
    result = []
    for position, event in enumerate(events, start=1):
        row = audit_row(Positioned(position, event), context)
        assert row is not None
        result.append(
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
    return result


def replayed(events: list[Any]) -> Credential | None:
    """The aggregate rebuilt from these events by the event-sourcing library's replay."""
    aggregate: Credential | None = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


steps = st.lists(
    st.tuples(
        st.sampled_from(["renew", "revoke", "consume", "replay"]), st.integers(0, 60 * 24 * 120)
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(list(TokenKind)),
    lifetime=st.one_of(st.none(), st.integers(1, 60 * 24 * 100)),
    commands=steps,
    instants=st.lists(st.integers(-1, 60 * 24 * 130), min_size=1, max_size=5),
)
def test_states_as_of_any_instant_equal_the_aggregates_replay(
    kind: TokenKind, lifetime: int | None, commands: list[Step], instants: list[int]
) -> None:
    credential = minted(kind, lifetime)
    run(credential, commands)
    events: list[Any] = list(credential.collect_events())
    trail = audit_events(events)

    # After every event: the fold over domain events is the aggregate's state.
    state: CredentialRow | None = None
    for event in events:
        state = fold(state, change_of(event))
    assert state == credential.state == CredentialRow.of(credential)

    for minutes in instants:
        at = T0 + timedelta(minutes=minutes)
        aggregate = replayed([e for e in events if e.timestamp <= at])
        states = states_as_of(trail, at)
        if aggregate is None:
            assert states == {}
            continue
        assert states == {credential.id: CredentialState.of(aggregate.state)}
        assert states[credential.id].is_usable(at) == aggregate.is_usable(at)


def test_every_event_class_has_a_fold_and_an_audit_type() -> None:
    assert set(EVENT_TYPES.values()) == set(FOLDS)
    assert set(FOLDS) <= set(AUDIT_TYPES)
    for event_class in EVENT_TYPES:
        assert issubclass(event_class, LedgerAggregate.Event)
        assert event_class.__qualname__.startswith("Credential.")


# ------------------------------------------------------------------------ derived shapes

SQL_NAMES = {Uuid: "uuid", Text: "text", DateTime: "timestamptz", BigInteger: "bigint"}


def declared_columns(table: Table) -> dict[str, str]:
    """A table's columns and their SQL types, as ``SQL_TYPES`` spells them."""
    return {c.name: SQL_NAMES[type(c.type)] for c in table.columns}


def test_the_auth_table_holds_the_declared_fields_with_their_types() -> None:
    held = {f.name for f in FIELDS if f.metadata["in_table"]}
    assert set(COLUMNS) == held
    assert declared_columns(schema.credentials) == {c: SQL_TYPES[c] for c in COLUMNS}
    assert tuple(c for c in COLUMNS if c != "last_used_at") == WRITE_COLUMNS
    assert MUTABLE_COLUMNS == (
        "expires_at",
        "revoked_at",
        "revoked_reason",
        "consumed_at",
        "version",
    )


def test_the_credentials_view_holds_declared_fields_with_their_types() -> None:
    assert declared_columns(schema.credentials_view) == {c: SQL_TYPES[c] for c in VIEW_COLUMNS}
    assert VIEW_TYPES["created_at"] == "timestamp with time zone"  # the name COPY knows


@pytest.mark.parametrize("shape", [CredentialState])
def test_the_audit_state_is_made_of_declared_fields(shape: type[Any]) -> None:
    declared = {f.name: f.type for f in FIELDS}
    assert tuple(f.name for f in fields(shape)) == STATE_FIELDS
    for f in fields(shape):
        assert declared[f.name] == f.type, f.name


def test_a_change_before_the_mint_folds_to_nothing() -> None:
    credential = minted(TokenKind.PERSONAL_ACCESS_TOKEN, 60)
    credential.revoke(reason=RevocationReason.ADMIN, at=T0, actor=ACTOR)
    revoked: Any = credential.collect_events()[-1]
    assert fold(None, change_of(revoked)) is None


def test_a_second_revocation_changes_only_the_version() -> None:
    credential = minted(TokenKind.PERSONAL_ACCESS_TOKEN, 60)
    credential.revoke(reason=RevocationReason.ADMIN, at=T0, actor=ACTOR)
    first = credential.state
    last: Any = credential.collect_events()[-1]
    later = change_of(last)
    again = type(later)(later.type, later.credential_id, T0 + timedelta(hours=1), 9, later.values)
    folded = fold(first, again)
    assert folded is not None
    assert (folded.revoked_at, folded.revoked_reason, folded.version) == (T0, "admin", 9)
    assert isinstance(folded.credential_id, UUID)
