"""``PatKeeper``: keeps a personal access token alive by renewing it in place, as the reference
daemon does: when 7 days or less are left, ``POST /api/tokens/current/renew`` moves its expiry
to 90 days from then (the secret stays the same)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ledger.client._client import LedgerClient, Renewal

RENEW_WITHIN = timedelta(days=7)
"""How close to its expiry a token is renewed (the service renews no earlier)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PatKeeper:
    """Renews ``client.token`` (a personal access token) when it is due.

    Call ``check()`` periodically (hourly, or at each start of the daemon): it renews when 7
    days or less are left and otherwise does nothing without a request. While the expiry is
    unknown (``expires_at`` not given, or the first ``check()``), it asks the service, which
    answers the current expiry (and renews only when it is due). ``clock`` returns the current
    UTC time (inject one in tests).
    """

    def __init__(
        self,
        client: LedgerClient,
        *,
        expires_at: datetime | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.client = client
        self.expires_at = expires_at
        self.never_expires = False
        self._known = expires_at is not None
        self._clock = clock

    def due(self) -> bool:
        """Whether ``check()`` would call the service now."""
        if not self._known:
            return True
        if self.never_expires or self.expires_at is None:
            return False
        return self._clock() >= self.expires_at - RENEW_WITHIN

    def next_check_at(self) -> datetime | None:
        """When the token next falls due (``None``: never, or unknown yet: check now)."""
        if not self._known or self.never_expires or self.expires_at is None:
            return None
        return self.expires_at - RENEW_WITHIN

    def check(self) -> Renewal | None:
        """Renew when due; the service's answer, or ``None`` when nothing was due."""
        if not self.due():
            return None
        renewal = self.client.renew_current()
        self._known = True
        self.expires_at = renewal.expires_at
        self.never_expires = renewal.expires_at is None
        return renewal
