"""``last_used_at``: approximate, buffered in memory, written in batches, never once per request.

Each successful verification notes ``(credential id → instant)`` in a bounded in-memory buffer
(a dict: a token used a thousand times in a window costs one entry; a verifier answering from its
cache notes a credential at most once a second). Instants are integer nanoseconds since the
Unix epoch, as the verifier reads its clock; they become datetimes when written. A background
thread writes the buffer every ``interval`` (default 30 s) in one ``UPDATE … FROM unnest(…)``
that only moves ``last_used_at`` forward. A full buffer wakes the writer early; while it is
full, uses of tokens not already in it are not noted (the value is approximate by contract).

Accuracy: ``last_used_at`` lags the real last use by at most ``interval`` plus a second plus
one write, and a use noted in the last ``interval`` before the process dies without closing is
lost (a closed ledger flushes). It is the instant of the most recent verification noted, per
process: with several processes the column takes the latest.
"""

from __future__ import annotations

import logging
import threading
from uuid import UUID

from ledger.adapters.background import Periodic
from ledger.adapters.credentials_table import CredentialsTable
from ledger.domain.clock import from_nanos

log = logging.getLogger(__name__)


class UsageRecorder:
    """Buffers the last use of each credential and writes the buffer in batches."""

    def __init__(
        self, credentials: CredentialsTable, *, interval_s: float, max_entries: int
    ) -> None:
        self._credentials = credentials
        self._interval_s = interval_s
        self._max_entries = max_entries
        # Credential id (as its 128-bit int: UUID's hash and == run Python code) -> instant of
        # the last use noted, in nanoseconds since the epoch.
        self._buffer: dict[int, int] = {}
        self._lock = threading.Lock()
        self._writer = Periodic("ledger-last-used", interval_s, self.flush, at_stop=True)
        self.dropped = 0
        self.writes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._buffer)

    def note(self, credential_id: UUID, at: int) -> None:
        """Remember that ``credential_id`` was used at ``at`` (nanoseconds since the epoch).

        Cheap: no I/O, and no lock for a credential already buffered."""
        key = credential_id.int
        buffer = self._buffer
        seen = buffer.get(key)
        if seen is not None:
            # The hot path: one dict read and at most one store, atomic under the GIL. Two
            # racing threads may leave the earlier of two instants microseconds apart; a store
            # that lands in a buffer ``flush`` just took is kept only if the flush writes after
            # it (the value is approximate by contract).
            if seen < at:
                buffer[key] = at
            return
        with self._lock:
            if key not in self._buffer and len(self._buffer) >= self._max_entries:
                self.dropped += 1
                self._writer.wake()
                return
            seen = self._buffer.get(key)
            if seen is None or seen < at:
                self._buffer[key] = at
            if self._interval_s > 0:
                self._writer.start()

    def flush(self) -> None:
        """Write what is buffered now (also called on close)."""
        with self._lock:
            uses, self._buffer = self._buffer, {}
        if not uses:
            return
        try:
            self._credentials.record_last_used(
                {UUID(int=key): from_nanos(at) for key, at in uses.items()}
            )
            self.writes += 1
        except Exception as error:  # noqa: BLE001 - approximate data: keep it for the next try
            log.warning("could not write last_used_at: %s", type(error).__name__)
            with self._lock:
                for key, at in uses.items():
                    seen = self._buffer.get(key)
                    if (seen is None or seen < at) and len(self._buffer) < self._max_entries:
                        self._buffer[key] = at

    def close(self) -> None:
        """Stop the background writer and write what is left."""
        self._writer.stop()
