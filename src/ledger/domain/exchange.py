"""What a presentation of an already exchanged install token is: a retry or a replay.

A daemon whose exchange answer was lost presents the same install token with the same
``daemon_id`` again, soon: within the retry window it gets the same daemon token back (the
application recomputes it; nothing stored reveals it, ADR 0020). Every other presentation of a
used install token is a replay: it is recorded on the install token's stream, at most once per
``REPLAY_RECORD_INTERVAL`` and at most ``REPLAY_RECORD_CAP`` times per token, so that replays
cannot make the store write without bound.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.domain.model import TokenKind
from ledger.domain.tokens import IssuedToken, derive

REPLAY_RECORD_INTERVAL = timedelta(seconds=60)
"""Shortest time between two recorded replays of one install token."""
REPLAY_RECORD_CAP = 20
"""Most replays recorded for one install token, ever."""

DERIVATION_LABEL = b"ledger daemon token v1\x00"


class Presentation(enum.Enum):
    """What a presentation of a consumed install token is."""

    RETRY = "retry"
    REPLAY = "replay"


@dataclass(frozen=True, slots=True)
class ExchangePolicy:
    """The exchange's configurable rules: the retry window (zero: no retries) and whether a
    replay revokes the daemon token that the install token produced."""

    retry_window: timedelta = timedelta(seconds=60)
    replay_revokes: bool = False


def presentation(
    *,
    consumed_at: datetime,
    consumed_by: str | None,
    daemon_id: str,
    at: datetime,
    policy: ExchangePolicy,
) -> Presentation:
    """A retry iff retries are enabled, ``daemon_id`` is the one the consuming exchange carried
    (``consumed_by``), and ``at`` is no later than ``consumed_at`` + the window (the edge
    included; a clock that went backwards counts as within). Anything else is a replay."""
    if (
        policy.retry_window > timedelta(0)
        and consumed_by is not None
        and daemon_id == consumed_by
        and at - consumed_at <= policy.retry_window
    ):
        return Presentation.RETRY
    return Presentation.REPLAY


def should_record_replay(*, recorded: int, last_recorded_at: datetime | None, at: datetime) -> bool:
    """Whether a replay at ``at`` is recorded, given how many of the token's replays were
    recorded already and when the last one was: under the cap, and the first one or at least
    ``REPLAY_RECORD_INTERVAL`` after the last (the edge included)."""
    if recorded >= REPLAY_RECORD_CAP:
        return False
    return last_recorded_at is None or at - last_recorded_at >= REPLAY_RECORD_INTERVAL


def daemon_token_for(key: bytes, install_token: str, daemon_id: str) -> IssuedToken:
    """The daemon token that exchanging ``install_token`` for ``daemon_id`` yields under the
    exchange key ``key``. An install token has a fixed length, so its text followed by the
    daemon id is an unambiguous encoding of the pair."""
    material = DERIVATION_LABEL + install_token.encode("utf-8") + daemon_id.encode("utf-8")
    return derive(TokenKind.DAEMON_TOKEN, key, material)


__all__ = [
    "REPLAY_RECORD_CAP",
    "REPLAY_RECORD_INTERVAL",
    "ExchangePolicy",
    "Presentation",
    "daemon_token_for",
    "presentation",
    "should_record_replay",
]
