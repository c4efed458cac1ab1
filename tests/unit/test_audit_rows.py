"""The audit trail's rows and the as-of fold, from domain events alone (no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from ledger.domain import Actor, Credential, RevocationReason, Role, TokenKind, Workspace
from ledger.domain.tokens import issue
from ledger.projections import AuditEvent, states_as_of
from ledger.projections.audit_trail import AuditRow, audit_row, minted_context
from ledger.projections.base import Positioned

T0 = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)
USER = uuid4()
ACTOR = Actor.user(USER)


def rows_of(*aggregates: Credential | Workspace) -> list[AuditRow]:
    """The rows of every pending event, positions in order."""
    events = [e for a in aggregates for e in a.collect_events()]
    contexts = {
        e.originator_id: minted_context(e) for e in events if isinstance(e, Credential.Minted)
    }
    rows = []
    for position, event in enumerate(events, start=1):
        row = audit_row(Positioned(position, event), contexts.get(event.originator_id))  # type: ignore[arg-type]
        assert row is not None
        rows.append(row)
    return rows


def as_events(rows: list[AuditRow]) -> list[AuditEvent]:
    return [
        AuditEvent(
            position=r.position,
            type=r.type,
            at=r.at,
            actor=Actor(type=r.actor_type, id=r.actor_id),  # type: ignore[arg-type]
            credential_id=r.credential_id,
            kind=r.kind,
            workspace_id=r.workspace_id,
            user_id=r.user_id,
            data=r.data,
        )
        for r in rows
    ]


def pat(expires_at: datetime | None) -> Credential:
    token = issue(TokenKind.PERSONAL_ACCESS_TOKEN)
    return Credential.mint_personal_access_token(
        token_hash=token.token_hash,
        token_prefix=token.display_prefix,
        name="laptop",
        user_id=USER,
        expires_at=expires_at,
        at=T0,
        actor=ACTOR,
    )


def test_renewal_row_carries_expiry_before_and_after() -> None:
    credential = pat(T0 + timedelta(days=5))
    credential.renew(at=T0 + timedelta(days=1), actor=ACTOR)
    minted, renewed = rows_of(credential)
    assert (minted.type, minted.kind, minted.user_id) == ("minted", "personal_access_token", USER)
    assert minted.data["token_prefix"] == credential.token_prefix
    assert renewed.type == "renewed"
    assert renewed.data == {
        "expires_at_before": "2026-03-06T14:00:00Z",
        "expires_at_after": "2026-05-31T14:00:00Z",
    }
    assert (renewed.kind, renewed.user_id) == ("personal_access_token", USER)


def test_consumed_row_names_the_daemon_token_and_the_issuer() -> None:
    workspace_id = uuid4()
    token = issue(TokenKind.INSTALL_TOKEN)
    install = Credential.mint_install_token(
        token_hash=token.token_hash,
        token_prefix=token.display_prefix,
        workspace_id=workspace_id,
        issuer_id=USER,
        at=T0,
        actor=ACTOR,
    )
    daemon_token_id = uuid4()
    install.consume(daemon_token_id=daemon_token_id, at=T0, actor=Actor.daemon(daemon_token_id))
    _, consumed = rows_of(install)
    assert consumed.type == "consumed"
    assert consumed.data == {"daemon_token_id": str(daemon_token_id)}
    assert (consumed.workspace_id, consumed.user_id) == (workspace_id, USER)
    assert (consumed.actor_type, consumed.actor_id) == ("daemon", str(daemon_token_id))


def test_membership_events_become_member_rows() -> None:
    other = uuid4()
    workspace = Workspace.create(id=uuid4(), name="ws", owner_id=USER, at=T0)
    workspace.add_member(by=USER, user_id=other, role=Role.MEMBER, at=T0)
    workspace.change_role(by=USER, user_id=other, role=Role.ADMIN, at=T0)
    workspace.remove_member(by=USER, user_id=other, at=T0)
    rows = rows_of(workspace)
    assert [r.type for r in rows] == [
        "member_added",
        "member_added",
        "member_role_changed",
        "member_removed",
    ]
    assert all(r.credential_id is None and r.workspace_id == workspace.id for r in rows)
    assert [r.user_id for r in rows] == [USER, other, other, other]
    assert rows[2].data == {"role_before": "member", "role_after": "admin"}
    assert rows[3].data == {"role": "admin", "left": False}


def test_state_as_of_an_instant_folds_only_earlier_events() -> None:
    credential = pat(T0 + timedelta(days=5))
    credential.renew(at=T0 + timedelta(days=1), actor=ACTOR)
    credential.revoke(reason=RevocationReason.USER_REQUEST, at=T0 + timedelta(days=2), actor=ACTOR)
    events = as_events(rows_of(credential))

    before_mint = states_as_of(events, T0 - timedelta(microseconds=1))
    assert before_mint == {}
    at_mint = states_as_of(events, T0)[credential.id]
    assert at_mint.expires_at == T0 + timedelta(days=5)
    assert at_mint.is_usable(T0)
    renewed = states_as_of(events, T0 + timedelta(days=1))[credential.id]
    assert renewed.expires_at == T0 + timedelta(days=91)
    revoked_at = T0 + timedelta(days=2)
    assert states_as_of(events, revoked_at - timedelta(microseconds=1))[credential.id].is_usable(
        revoked_at - timedelta(microseconds=1)
    )
    now = states_as_of(events, None)[credential.id]
    assert now.revoked_at == revoked_at
    assert not now.is_usable(revoked_at)  # revoked "at or before t"
