"""Aggregates built directly (no application, no store), for rule tests."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from ledger.domain import Actor, Credential, Role, TokenKind, Workspace
from ledger.domain.tokens import issue

T0 = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)


def workspace_with(*roles: Role) -> tuple[Workspace, list[UUID]]:
    """A workspace whose first member is its owner, then one member per given role."""
    owner = uuid4()
    workspace = Workspace.create(id=uuid4(), name="acme", owner_id=owner, at=T0)
    ids = [owner]
    for role in roles:
        user = uuid4()
        workspace.add_member(by=owner, user_id=user, role=role, at=T0)
        ids.append(user)
    return workspace, ids


def personal_access_token(user_id: UUID, at: datetime = T0) -> Credential:
    token = issue(TokenKind.PERSONAL_ACCESS_TOKEN)
    return Credential.mint_personal_access_token(
        token_hash=token.token_hash,
        token_prefix=token.display_prefix,
        name="laptop",
        user_id=user_id,
        expires_at=None,
        at=at,
        actor=Actor.user(user_id),
    )


def install_token(workspace_id: UUID, issuer_id: UUID, at: datetime = T0) -> Credential:
    token = issue(TokenKind.INSTALL_TOKEN)
    return Credential.mint_install_token(
        token_hash=token.token_hash,
        token_prefix=token.display_prefix,
        workspace_id=workspace_id,
        issuer_id=issuer_id,
        at=at,
        actor=Actor.user(issuer_id),
    )


def daemon_token(install: Credential, at: datetime = T0) -> Credential:
    token = issue(TokenKind.DAEMON_TOKEN)
    return Credential.mint_daemon_token(
        token_hash=token.token_hash,
        token_prefix=token.display_prefix,
        install_token=install,
        daemon_id="host-1",
        at=at,
        actor=Actor.system("test"),
    )
