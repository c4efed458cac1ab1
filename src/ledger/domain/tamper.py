"""What tampering with the store looks like: the problems ``ledger audit verify`` names, and the
checks of one stream's hash chain (pure: the caller reads and decodes the events).

A problem names the event by its position in the log (``position``, the number ``ledger audit
events`` shows) where the event still exists or was witnessed, by its stream and version, and by
the credential when the stream is one (``credential_id``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

from ledger.domain.chain import GENESIS_HASH


class ProblemCode(StrEnum):
    """The contract's names for what verify finds."""

    EVENT_ALTERED = "event_altered"
    EVENT_MISSING = "event_missing"
    EVENT_INSERTED = "event_inserted"
    EVENTS_REORDERED = "events_reordered"
    LOG_TRUNCATED = "log_truncated"
    BAD_SIGNATURE = "bad_signature"
    AUTH_ROW_MISMATCH = "auth_row_mismatch"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing found wrong, and where."""

    problem: ProblemCode
    detail: str
    position: int | None = None
    credential_id: UUID | None = None
    stream_id: UUID | None = None
    stream_version: int | None = None
    checkpoint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> tuple[object, ...]:
        """What two reports of the same problem share (one found by two checks is named once)."""
        if self.stream_id is not None and self.stream_version is not None:
            return (self.problem, self.stream_id, self.stream_version)
        return (self.problem, self.position, self.credential_id, self.checkpoint, self.detail)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"problem": self.problem.value}
        for name in ("position", "credential_id", "stream_id", "stream_version", "checkpoint"):
            value = getattr(self, name)
            if value is not None:
                body[name] = str(value) if isinstance(value, UUID) else value
        body.update(self.extra)
        body["detail"] = self.detail
        return body


@dataclass(frozen=True, slots=True)
class StoredLink:
    """What the chain check needs of one stored event of a stream (``hash`` may be left empty
    for the last: nothing links to it)."""

    position: int
    version: int
    prev_hash: object
    hash: str


def check_chain(
    stream_id: UUID, links: Iterable[StoredLink], *, credential_id: UUID | None
) -> Iterator[Problem]:
    """The problems of one stream's chain, its events given in version order.

    A version gap is ``event_missing`` (one per absent version); an event whose ``prev_hash``
    is not the hash of the stored event before it means that event (or the link) was altered:
    ``event_altered``, naming the predecessor. After a gap the next link is not checked (its
    predecessor is the missing event)."""
    expected_version = 1
    previous: StoredLink | None = None
    for link in links:
        gap = link.version != expected_version
        for missing in range(expected_version, link.version):
            yield Problem(
                ProblemCode.EVENT_MISSING,
                f"version {missing} of the stream is missing",
                credential_id=credential_id,
                stream_id=stream_id,
                stream_version=missing,
            )
        if not gap:
            expected_hash = GENESIS_HASH if previous is None else previous.hash
            if link.prev_hash != expected_hash:
                altered = link if previous is None else previous
                yield Problem(
                    ProblemCode.EVENT_ALTERED,
                    f"version {link.version} does not link to the stored event before it"
                    if previous is not None
                    else "the first event does not link to the genesis hash",
                    position=altered.position,
                    credential_id=credential_id,
                    stream_id=stream_id,
                    stream_version=altered.version,
                )
        previous = link
        expected_version = max(expected_version, link.version) + 1
