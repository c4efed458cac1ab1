"""Who may do what to a credential: the rules that span a credential and its workspace.

Each rule is a pure function of domain values (aggregates, flat credential rows, ids) and raises
the contract's error, so the application only loads what a rule needs and calls it, and unit
tests check the rules without a store. Rules that concern one aggregate alone live on it
(``Credential.check_exchangeable``, ``Workspace.check_administrator``).
"""

from __future__ import annotations

from uuid import UUID

from ledger.domain.credential import Credential
from ledger.domain.credential_row import CredentialRow
from ledger.domain.errors import (
    CredentialNotFound,
    DaemonTokenNotFound,
    InvalidInstallToken,
    IssuerNotAdmin,
    TokenNotFound,
)
from ledger.domain.model import TokenKind
from ledger.domain.workspace import Workspace


def check_issuer_still_admin(install_token: Credential, workspace: Workspace | None) -> None:
    """An install token is exchanged only while the member who minted it is still an owner or
    admin of its workspace (``IssuerNotAdmin``); a token without a workspace or issuer is
    ``InvalidInstallToken``."""
    if workspace is None or install_token.created_by is None:
        raise InvalidInstallToken
    if workspace.id != install_token.workspace_id:
        raise InvalidInstallToken
    role = workspace.role_of(install_token.created_by)
    if role is None or not role.can_administer:
        raise IssuerNotAdmin


def check_personal_token_owner(credential: Credential, user_id: UUID) -> None:
    """Only its holder may act on a personal access token; to anyone else (and for any other
    kind of credential) it does not exist: ``TokenNotFound``."""
    if credential.kind is not TokenKind.PERSONAL_ACCESS_TOKEN or credential.user_id != user_id:
        raise TokenNotFound


def check_daemon_token_of(credential: Credential, workspace_id: UUID) -> None:
    """A workspace's admins act only on that workspace's daemon tokens; any other credential is
    ``DaemonTokenNotFound`` to them."""
    if credential.kind is not TokenKind.DAEMON_TOKEN or credential.workspace_id != workspace_id:
        raise DaemonTokenNotFound


def history_workspace(row: CredentialRow) -> UUID | None:
    """The workspace whose owners and admins may read this credential's history (``None``: a
    personal access token, readable by its holder only)."""
    if row.token_kind is TokenKind.PERSONAL_ACCESS_TOKEN:
        return None
    return row.workspace_id


def check_may_read_history(row: CredentialRow, user_id: UUID, workspace: Workspace | None) -> None:
    """A credential's history is for the holder of a personal access token, or the owners and
    admins of a daemon or install token's workspace (``workspace``, loaded by the caller from
    ``history_workspace``). To anyone else it does not exist: ``CredentialNotFound``."""
    if row.token_kind is TokenKind.PERSONAL_ACCESS_TOKEN:
        allowed = row.user_id == user_id
    else:
        role = workspace.role_of(user_id) if workspace is not None else None
        allowed = (
            workspace is not None
            and workspace.id == row.workspace_id
            and role is not None
            and role.can_administer
        )
    if not allowed:
        raise CredentialNotFound
