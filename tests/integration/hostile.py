"""A poisoned event store: events as an older service (or a newer one) left them.

The events go in through the ledger's own write path (``Ledger.save`` or its group-commit
writer), bypassing today's input rules, the way an old service that accepted them wrote them:
a workspace named ``a\\x00b``, control characters in a ``daemon_id``, a 100,000-character
``daemon_id``, a name with a lone surrogate, text where an id or an instant belongs, an event type
from a newer version, a payload that is not JSON. What the inline auth table cannot hold (a NUL)
is written without its auth row: a projection must survive whatever the events table holds.

``poison`` returns where each hostile event landed and what a projection should make of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import StoredEvent

from ledger.adapters.recorder import BatchCommand
from ledger.bootstrap import PostgresLedger
from ledger.domain import Actor, Credential, RevocationReason, TokenKind, Workspace
from ledger.domain.base import LedgerAggregate
from ledger.domain.clock import ManualClock
from ledger.domain.tokens import issue
from tests.support.principals import UserPrincipal, load_credential

NUL_NAME = "a\x00b"
CONTROL_DAEMON_ID = "d\x01\x1b[2J\x7fx"
LONG_DAEMON_ID = "x" * 100_000
SURROGATE_NAME = "laptop \ud800"
MARKUP_NAME = "[/] :smile: [bold]"
"""Valid under any input rule, but Rich markup: a table that read it as markup would fail."""
NEWER_TOPIC = "ledger.domain.credential:Credential.Suspended"


@dataclass
class Poisoned:
    """What ``poison`` stored: ids, and the expected problem of each hostile position."""

    owner: UserPrincipal
    workspace_id: UUID
    control_daemon: UUID
    long_daemon: UUID
    nul_pat: UUID
    surrogate_pat: UUID
    wrong_types_pat: UUID
    markup_pat: UUID
    problems: dict[int, str] = field(default_factory=dict)
    """Position → the problem code a projection that reads the event records."""
    audit_only: dict[int, str] = field(default_factory=dict)
    """Problems of events the Credentials projection ignores (membership events)."""


def _submit(ledger: PostgresLedger, *events: StoredEvent) -> list[int]:
    """Append stored events as they are, with no auth-table row (``Ledger._record``'s path)."""
    ids = ledger.writer.submit(BatchCommand(list(events)))
    assert isinstance(ids, list)
    return ids


def _stored(ledger: PostgresLedger, aggregate: LedgerAggregate) -> list[StoredEvent]:
    return [ledger.mapper.to_stored_event(e) for e in aggregate.collect_events()]


def _patched(event: StoredEvent, **changes: Any) -> StoredEvent:
    """The event with fields of its JSON state replaced by raw JSON values."""
    state = json.loads(event.state)
    state.update(changes)
    return StoredEvent(
        event.originator_id,
        event.originator_version,
        event.topic,
        json.dumps(state).encode(),
    )


def _pat(owner: UserPrincipal, at: Any, name: str) -> Credential:
    token = issue(TokenKind.PERSONAL_ACCESS_TOKEN)
    return Credential.mint_personal_access_token(
        token_hash=token.token_hash,
        token_prefix=token.display_prefix,
        name=name,
        user_id=owner.user_id,
        expires_at=None,
        at=at,
        actor=Actor.user(owner.user_id),
    )


def _daemon(
    ledger: PostgresLedger, owner: UserPrincipal, workspace_id: UUID, daemon_id: str
) -> tuple[UUID, int]:
    """An exchange as the old service did it, with ``daemon_id`` unchecked: the daemon token's
    id and the position of its ``Minted``."""
    clock = ledger.clock
    install = load_credential(ledger, ledger.mint_install_token(owner, workspace_id).id)
    token = issue(TokenKind.DAEMON_TOKEN)
    actor = Actor.daemon(Credential.create_id(token.token_hash))
    daemon = Credential.mint_daemon_token(
        token_hash=token.token_hash,
        token_prefix=token.display_prefix,
        install_token=install,
        daemon_id=daemon_id,
        at=clock.now(),
        actor=actor,
    )
    install.consume(daemon_token_id=daemon.id, at=clock.now(), actor=actor)
    recordings = ledger.save(install, daemon)
    [minted] = [r.notification.id for r in recordings if r.notification.originator_id == daemon.id]
    return daemon.id, minted


def poison(ledger: PostgresLedger, clock: ManualClock, owner: UserPrincipal) -> Poisoned:
    """Store every hostile event of this module (and the normal ones they need)."""
    now = clock.now()
    workspace = Workspace.create(id=uuid4(), name=NUL_NAME, owner_id=owner.user_id, at=now)
    [created] = ledger.save(workspace)
    control_daemon, control_minted = _daemon(ledger, owner, workspace.id, CONTROL_DAEMON_ID)
    long_daemon, long_minted = _daemon(ledger, owner, workspace.id, LONG_DAEMON_ID)

    markup_pat = ledger.mint_personal_access_token(owner, MARKUP_NAME, 30).info.id

    # A NUL in a token's name and in a revocation reason: the events table holds them.
    nul_pat = _pat(owner, now, "n\x00me")
    nul_pat.revoke(reason=RevocationReason.USER_REQUEST, at=now, actor=Actor.user(owner.user_id))
    nul_minted, nul_revoked = _stored(ledger, nul_pat)
    nul_ids = _submit(ledger, nul_minted, _patched(nul_revoked, reason="bad\x00reason"))

    surrogate_pat = _pat(owner, now, "laptop")
    [surrogate_minted] = _stored(ledger, surrogate_pat)
    surrogate_ids = _submit(ledger, _patched(surrogate_minted, name=SURROGATE_NAME))

    # Wrong types: text where an id or an instant belongs, a dict where text belongs.
    wrong = ledger.mint_personal_access_token(owner, "wrong types", 30).info.id
    wrong_aggregate = load_credential(ledger, wrong)
    wrong_aggregate.revoke(
        reason=RevocationReason.USER_REQUEST, at=now, actor=Actor.user(owner.user_id)
    )
    [revoked] = _stored(ledger, wrong_aggregate)
    wrong_ids = _submit(ledger, _patched(revoked, reason={"nested": ["x"]}))
    renewed = StoredEvent(
        wrong,
        3,
        "ledger.domain.credential:Credential.Renewed",
        _patched(revoked, expires_at_before=None, expires_at_after="next tuesday").state,
    )
    bad_instant = StoredEvent(wrong, 4, revoked.topic, _patched(revoked, timestamp=12).state)
    bad_member = StoredEvent(
        uuid4(),
        1,
        "ledger.domain.workspace:Workspace.MemberAdded",
        _patched(revoked, role="member").state,  # no user_id
    )
    bad_mint = _pat(owner, now, "bad ids")
    [bad_mint_event] = _stored(ledger, bad_mint)
    odd_ids = _submit(
        ledger,
        renewed,
        bad_instant,
        bad_member,
        _patched(bad_mint_event, workspace_id="not-a-uuid"),
    )

    # A newer version's event type, a foreign topic, a payload that is not JSON, nor UTF-8.
    foreign_ids = _submit(
        ledger,
        StoredEvent(uuid4(), 1, NEWER_TOPIC, revoked.state),
        StoredEvent(uuid4(), 1, "builtins:dict", revoked.state),
        StoredEvent(uuid4(), 1, revoked.topic, b'{"timestamp": {"_type_": "datetime_iso", "_da'),
        StoredEvent(uuid4(), 1, revoked.topic, b"\xff\xfe\x00"),
    )
    problems = {
        control_minted: "unsafe_text",
        long_minted: "unsafe_text",
        nul_ids[0]: "unsafe_text",
        nul_ids[1]: "unsafe_text",
        surrogate_ids[0]: "unsafe_text",
        wrong_ids[0]: "unsafe_text",
        odd_ids[0]: "invalid_value",
        odd_ids[1]: "invalid_value",
        odd_ids[3]: "invalid_value",
        foreign_ids[0]: "unknown_event_type",
        foreign_ids[1]: "unknown_event_type",
        foreign_ids[2]: "undecodable",
        foreign_ids[3]: "undecodable",
    }
    audit_only = {created.notification.id: "unsafe_text", odd_ids[2]: "invalid_value"}
    return Poisoned(
        owner=owner,
        workspace_id=workspace.id,
        control_daemon=control_daemon,
        long_daemon=long_daemon,
        nul_pat=nul_pat.id,
        surrogate_pat=surrogate_pat.id,
        wrong_types_pat=wrong,
        markup_pat=markup_pat,
        problems=problems,
        audit_only=audit_only,
    )
