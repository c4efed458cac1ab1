"""Fast, valid seeding of credentials: stored events and credentials-table rows by ``COPY``.

Minting a million credentials through ``Ledger`` would take ~20 minutes on this machine, so the
seeder renders events from templates instead: for each kind of credential it builds one real
event through the aggregates and the ledger's own mapper, then substitutes the values that vary
(credential id, token hash, display prefix, user) into the encoded state. A ``Revoked`` event's
``prev_hash`` is the SHA-256 of the ``Minted`` event's canonical encoding (ADR 0004), rendered
from a template the same way. The ``ledger_credentials`` row of each credential is written in the
same transaction (one transaction id for the chunk's events, in notification-id order), so the
auth table matches the events.

``check_sample`` replays seeded streams through the ledger's repository, checks their hash
chains and compares ``CredentialRow.of(aggregate)`` with the table's row: a template bug fails
the run instead of skewing it.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg

from ledger.adapters.credentials_table import WRITE_COLUMNS
from ledger.adapters.postgres import CREDENTIALS_TABLE, EVENTS_TABLE
from ledger.bootstrap import PostgresLedger
from ledger.domain import Actor, Credential, RevocationReason, TokenKind
from ledger.domain.base import LedgerAggregate
from ledger.domain.chain import canonical_encoding, verify_chain
from ledger.domain.credential_row import CredentialRow
from ledger.domain.tokens import DISPLAY_PREFIX_LENGTH, IssuedToken, issue

CHUNK = 50_000
"""Credentials per transaction: bounds memory and how long the events-table lock is held."""

_COPY_EVENTS = f"COPY {EVENTS_TABLE} (originator_id, originator_version, topic, state) FROM STDIN"
_COPY_ROWS = f"COPY {CREDENTIALS_TABLE} ({', '.join(WRITE_COLUMNS)}) FROM STDIN"
_LOCK = f"LOCK TABLE {EVENTS_TABLE} IN EXCLUSIVE MODE"


@dataclass(frozen=True, slots=True)
class SeedSpec:
    """What to seed: ``count`` credentials of one kind, all minted at ``at``.

    Personal access tokens are spread round-robin over ``users``; install tokens belong to
    ``workspace_id`` and were issued by ``issuer_id``. Every ``revoke_every``-th credential is
    also revoked at ``at`` (0: none). Every ``raw_every``-th credential gets a real token text,
    returned in ``Seeded.raw`` for the operations that present it (1: all; 0: none); the others
    get a random hash with no text behind it, which is cheaper.
    """

    kind: TokenKind
    count: int
    at: datetime
    expires_at: datetime | None
    users: Sequence[UUID] = ()
    workspace_id: UUID | None = None
    issuer_id: UUID | None = None
    name: str = "seeded"
    revoke_every: int = 0
    raw_every: int = 0


@dataclass(slots=True)
class Seeded:
    """What a seeding wrote."""

    credentials: int = 0
    events: int = 0
    ids: list[UUID] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)


class _Template:
    """Encoded bytes with named holes, filled by ``%`` formatting (no JSON encoding per row)."""

    def __init__(self, text: bytes, holes: dict[str, bytes]) -> None:
        escaped = text.replace(b"%", b"%%")
        for name, placeholder in holes.items():
            if placeholder not in escaped:
                msg = f"placeholder for {name!r} not found in the template"
                raise ValueError(msg)
            escaped = escaped.replace(placeholder, b"%(" + name.encode() + b")s")
        self._format = escaped

    def render(self, values: dict[bytes, bytes]) -> bytes:
        # bytes %-formatting looks names up as bytes
        return self._format % values


@dataclass(frozen=True, slots=True)
class _KindTemplates:
    minted_state: _Template
    minted_canonical: _Template
    revoked_state: _Template
    minted_topic: bytes
    revoked_topic: bytes


def _placeholder_user() -> UUID:
    return uuid4()


class CredentialSeeder:
    """Seeds credentials into the database of ``ledger`` (which provides the mapper)."""

    def __init__(self, ledger: PostgresLedger, database_url: str) -> None:
        self._ledger = ledger
        self._url = database_url

    # ------------------------------------------------------------------------- templates

    def _templates(self, spec: SeedSpec) -> _KindTemplates:
        token = issue(spec.kind)
        user = _placeholder_user()
        if spec.kind is TokenKind.PERSONAL_ACCESS_TOKEN:
            credential = Credential.mint_personal_access_token(
                token_hash=token.token_hash,
                token_prefix=token.display_prefix,
                name=spec.name,
                user_id=user,
                expires_at=spec.expires_at,
                at=spec.at,
                actor=Actor.user(user),
            )
        elif spec.kind is TokenKind.INSTALL_TOKEN:
            assert spec.workspace_id is not None and spec.issuer_id is not None
            user = spec.issuer_id
            credential = Credential.mint_install_token(
                token_hash=token.token_hash,
                token_prefix=token.display_prefix,
                workspace_id=spec.workspace_id,
                issuer_id=spec.issuer_id,
                at=spec.at,
                actor=Actor.user(spec.issuer_id),
            )
            if credential.expires_at != spec.expires_at:
                msg = "an install token's expiry is fixed: at + 15 minutes"
                raise ValueError(msg)
        else:  # pragma: no cover - daemon tokens come from exchanges only
            msg = f"cannot seed {spec.kind}"
            raise ValueError(msg)
        credential.revoke(reason=RevocationReason.ADMIN, at=spec.at, actor=Actor.user(user))
        minted, revoked = credential.collect_events()
        assert isinstance(revoked, LedgerAggregate.Event)
        mapper = self._ledger.mapper
        minted_stored = mapper.to_stored_event(minted)
        revoked_stored = mapper.to_stored_event(revoked)
        holes_state = {
            "hash": token.token_hash.encode(),
            "prefix": token.display_prefix.encode(),
        }
        holes_canonical = {**holes_state, "id": str(credential.id).encode()}
        if spec.kind is TokenKind.PERSONAL_ACCESS_TOKEN:
            holes_state["user_hex"] = user.hex.encode()
            holes_state["user_str"] = str(user).encode()
            holes_canonical["user_str"] = str(user).encode()
        revoked_holes = {"prev": revoked.prev_hash.encode()}
        if spec.kind is TokenKind.PERSONAL_ACCESS_TOKEN:
            revoked_holes["user_str"] = str(user).encode()
        return _KindTemplates(
            minted_state=_Template(minted_stored.state, holes_state),
            minted_canonical=_Template(canonical_encoding(minted), holes_canonical),
            revoked_state=_Template(revoked_stored.state, revoked_holes),
            minted_topic=minted_stored.topic.encode(),
            revoked_topic=revoked_stored.topic.encode(),
        )

    # ---------------------------------------------------------------------------- seeding

    def seed(self, spec: SeedSpec) -> Seeded:
        """Write ``spec.count`` credentials (their events and rows) in chunks of ``CHUNK``."""
        templates = self._templates(spec)
        result = Seeded()
        with psycopg.connect(self._url) as conn:
            for start in range(0, spec.count, CHUNK):
                size = min(CHUNK, spec.count - start)
                events, rows = self._render(spec, templates, start, size, result)
                with conn.transaction():
                    conn.execute(_LOCK)
                    with conn.cursor().copy(_COPY_EVENTS) as copy:
                        copy.write(events)
                    with conn.cursor().copy(_COPY_ROWS) as copy:
                        copy.write(rows)
        return result

    def _render(
        self, spec: SeedSpec, t: _KindTemplates, start: int, size: int, result: Seeded
    ) -> tuple[bytes, bytes]:
        users = [(u.hex.encode(), str(u).encode()) for u in spec.users] or [(b"", b"")]
        kind = spec.kind.value.encode()
        name = _text(spec.name if spec.kind is TokenKind.PERSONAL_ACCESS_TOKEN else None)
        workspace = _text(spec.workspace_id)
        at = _text(spec.at)
        expires = _text(spec.expires_at)
        reason = RevocationReason.ADMIN.value.encode()
        events: list[bytes] = []
        rows: list[bytes] = []
        for n in range(start, start + size):
            keep_raw = spec.raw_every > 0 and n % spec.raw_every == 0
            token = _token(spec.kind, keep_raw=keep_raw)
            credential_id = Credential.create_id(token.token_hash)
            id_text = str(credential_id).encode()
            user_hex, user_str = users[n % len(users)]
            values = {
                b"hash": token.token_hash.encode(),
                b"prefix": token.display_prefix.encode(),
                b"user_hex": user_hex,
                b"user_str": user_str,
                b"id": id_text,
            }
            events.append(_event_line(id_text, 1, t.minted_topic, t.minted_state.render(values)))
            revoked = spec.revoke_every > 0 and n % spec.revoke_every == spec.revoke_every - 1
            if revoked:
                prev = hashlib.sha256(t.minted_canonical.render(values)).hexdigest().encode()
                state = t.revoked_state.render({b"prev": prev, b"user_str": user_str})
                events.append(_event_line(id_text, 2, t.revoked_topic, state))
            created_by = user_str if spec.kind is TokenKind.PERSONAL_ACCESS_TOKEN else b""
            if spec.kind is TokenKind.INSTALL_TOKEN:
                created_by = _text(spec.issuer_id)
            rows.append(
                b"\t".join(
                    (
                        id_text,  # credential_id
                        values[b"hash"],
                        kind,
                        values[b"prefix"],
                        name,
                        user_str or b"\\N",  # user_id
                        workspace,
                        b"\\N",  # daemon_id
                        b"\\N",  # install_token_id
                        created_by or b"\\N",
                        at,  # created_at
                        expires,
                        at if revoked else b"\\N",  # revoked_at
                        reason if revoked else b"\\N",
                        b"\\N",  # consumed_at
                        b"2" if revoked else b"1",  # version
                    )
                )
                + b"\n"
            )
            result.credentials += 1
            result.events += 2 if revoked else 1
            result.ids.append(credential_id)
            if keep_raw:
                result.raw.append(token.raw)
        return b"".join(events), b"".join(rows)

    # ---------------------------------------------------------------------------- checks

    def check_sample(self, ids: Sequence[UUID], size: int = 200) -> None:
        """Replay a sample of seeded credentials; raise if a stream or its row is wrong."""
        sample = random.sample(list(ids), min(size, len(ids)))
        for credential_id in sample:
            aggregate: Any = self._ledger.repository.get(credential_id)
            assert isinstance(aggregate, Credential)
            events = self._ledger.repository.event_store.get(credential_id)
            verify_chain(events)
            row = self._ledger.credentials.get(credential_id)
            expected = CredentialRow.of(aggregate)
            if row != expected:
                msg = f"seeded row of {credential_id} differs from its events: {row} != {expected}"
                raise AssertionError(msg)


def _text(value: object) -> bytes:
    """A value in COPY text format."""
    if value is None:
        return b"\\N"
    if isinstance(value, datetime):
        return value.isoformat().encode()
    return str(value).encode()


def _event_line(id_text: bytes, version: int, topic: bytes, state: bytes) -> bytes:
    # bytea in COPY text format: \x + hex, the backslash itself escaped.
    return b"%s\t%d\t%s\t\\\\x%s\n" % (id_text, version, topic, state.hex().encode())


def _token(kind: TokenKind, *, keep_raw: bool) -> IssuedToken:
    if keep_raw:
        return issue(kind)
    # No text exists for these: a random hash, and a display prefix that looks like one.
    digest = os.urandom(32).hex()
    prefix = kind.prefix + secrets.token_hex(4)
    return IssuedToken(raw="", token_hash=digest, display_prefix=prefix[:DISPLAY_PREFIX_LENGTH])


def users(count: int) -> list[UUID]:
    """``count`` user ids to spread seeded personal access tokens over."""
    return [uuid4() for _ in range(count)]


__all__ = ["CHUNK", "CredentialSeeder", "SeedSpec", "Seeded", "users"]
