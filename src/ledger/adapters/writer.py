"""Group commit: commands that arrive while a write transaction is in flight share the next one.

A caller hands its command over and waits; a writer thread takes everything that queued up
meanwhile (up to ``max_batch``) and writes it in one transaction through
``LedgerRecorder.insert_batch``, which gives every command its own outcome. Under load, batches
grow by themselves; with one client, a batch is one command and costs one hand-over.

Writers take no table lock (ADR 0018): with ``threads`` writer threads, each on a connection of
its own, that many batches are in flight at once and PostgreSQL merges their commits' WAL
flushes. A command that arrives while nothing is queued or being written is written on its
caller's thread instead (no hand-over); ``threads=0`` always does that. After a batch commits,
``after_commit`` gets its written commands (the change announcement, sent outside the write
transaction).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ledger.adapters.recorder import BatchCommand, BatchIntegrityError, LedgerRecorder
from ledger.application.ports import WriteOutcome
from ledger.domain.errors import ServiceUnavailable

log = logging.getLogger(__name__)


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(slots=True)
class _Pending:
    command: BatchCommand
    # Held until the outcome is in: the submitter blocks acquiring it, the writer releases it.
    # One C call each way, where threading.Event's Condition costs Python on both sides, ~8
    # times per batch on the writer thread (ADR 0012).
    done: threading.Lock = field(default_factory=_held_lock)
    outcome: WriteOutcome = None
    error: BaseException | None = None


@dataclass(slots=True)
class WriterStats:
    """Counters of the writer's work (read by benchmarks and, later, metrics)."""

    batches: int = 0
    commands: int = 0
    conflicts: int = 0
    largest_batch: int = 0


class GroupCommitWriter:
    """Writes commands in shared transactions, each command with its own outcome."""

    def __init__(
        self,
        recorder: LedgerRecorder,
        *,
        max_batch: int,
        threads: int = 1,
        linger_s: float = 0.0,
    ) -> None:
        self._recorder = recorder
        self._linger_s = linger_s
        self._max_batch = max_batch
        self._thread_count = threads
        self._queue: deque[_Pending] = deque()
        self._wakeup = threading.Condition()
        self._closed = False
        # Queue length at which a waiting writer wants waking (raised while it lingers, so that
        # each submit does not wake it just to count and sleep again).
        self._wanted = 1
        self._in_flight = 0  # transactions being written (by writer threads or callers)
        self._threads: list[threading.Thread] = []
        self.stats = WriterStats()
        # Called by a writer thread after each committed batch with (commands, conflicts): the
        # metrics hook. It runs once every waiter is woken, and its errors are only logged.
        self.on_batch: Callable[[int, int], None] | None = None
        # Called by a writer thread with the commands a batch wrote, after the commit and
        # before any waiter is woken; its errors are only logged.
        self.after_commit: Callable[[Sequence[BatchCommand]], None] | None = None

    def submit(self, command: BatchCommand) -> WriteOutcome:
        """Write ``command``; its notification ids, ``None`` if it lost a version race, or
        ``Refused`` if its limit refused it."""
        if self._thread_count == 0:
            return self._write_here(command)
        pending = _Pending(command)
        with self._wakeup:
            if self._closed:
                msg = "the writer is closed"
                raise ServiceUnavailable(msg)
            if not self._queue and self._in_flight == 0:
                # Nothing to share a transaction with: write on this thread, sparing the
                # hand-over to a writer thread and back (one client, or a quiet moment).
                self._in_flight += 1
                direct = True
            else:
                direct = False
        if direct:
            try:
                return self._write_here(command)
            finally:
                with self._wakeup:
                    self._in_flight -= 1
                    if self._queue:
                        self._wakeup.notify()
        with self._wakeup:
            if self._closed:
                msg = "the writer is closed"
                raise ServiceUnavailable(msg)
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._run, name=f"ledger-writer-{n}", daemon=True)
                    for n in range(self._thread_count)
                ]
                for thread in self._threads:
                    thread.start()
            self._queue.append(pending)
            if len(self._queue) >= self._wanted:
                self._wakeup.notify()
        pending.done.acquire()
        if pending.error is not None:
            # A fresh exception per caller: one error object is never raised in two threads.
            msg = f"write failed: {type(pending.error).__name__}"
            raise ServiceUnavailable(msg) from pending.error
        return pending.outcome

    def _write_here(self, command: BatchCommand) -> WriteOutcome:
        """The command as its own transaction, on the calling thread (a pooled connection)."""
        if self._closed:
            msg = "the writer is closed"
            raise ServiceUnavailable(msg)
        try:
            [outcome] = self._recorder.insert_batch([command])
        except BatchIntegrityError:
            outcome = None
        except Exception as error:
            msg = f"write failed: {type(error).__name__}"
            raise ServiceUnavailable(msg) from error
        conflicts = 1 if outcome is None else 0
        with self._wakeup:
            stats = self.stats
            stats.batches += 1
            stats.commands += 1
            stats.largest_batch = max(stats.largest_batch, 1)
            stats.conflicts += conflicts
        if isinstance(outcome, list) and self.after_commit is not None:
            try:
                self.after_commit([command])
            except Exception:  # the announcement is best effort; listeners have a backstop
                log.warning("the after_commit hook failed", exc_info=True)
        if self.on_batch is not None:
            try:
                self.on_batch(1, conflicts)
            except Exception:  # a metrics failure must not stop the writer
                log.warning("the on_batch hook failed", exc_info=True)
        return outcome

    def write_batch(self, commands: Sequence[BatchCommand]) -> list[WriteOutcome]:
        """Write ``commands`` as one batch on the calling thread, as a writer thread would (a
        batch the store refuses is written one command at a time); each command's outcome."""
        batch = [_Pending(command) for command in commands]
        self._write(batch)
        for pending in batch:
            if pending.error is not None:
                msg = f"write failed: {type(pending.error).__name__}"
                raise ServiceUnavailable(msg) from pending.error
        return [pending.outcome for pending in batch]

    @property
    def queued(self) -> int:
        """Commands waiting for the next transaction (the one in flight not counted)."""
        with self._wakeup:
            return len(self._queue)

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        with self._wakeup:
            self._closed = True
            self._wakeup.notify_all()
            threads = list(self._threads)
        for thread in threads:
            thread.join()

    def _run(self) -> None:
        with self._recorder.holding_connection():
            self._loop()

    def _loop(self) -> None:
        expected = 1  # how many commands the previous batch carried
        while True:
            with self._wakeup:
                while not self._queue and not self._closed:
                    self._wakeup.wait()
                if not self._queue:
                    return
                self._linger(min(expected, self._max_batch))
                batch = [
                    self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))
                ]
                self._in_flight += 1
            expected = len(batch)
            try:
                self._write(batch)
            finally:
                with self._wakeup:
                    self._in_flight -= 1

    def _linger(self, expected: int) -> None:
        """Wait (lock held by the caller) until ``expected`` commands are queued, at most
        ``linger`` seconds: the clients that the last batch woke are usually a moment away
        from submitting again, and a batch's fixed cost is better shared. With one client,
        ``expected`` is 1 and nothing waits."""
        if len(self._queue) >= expected or self._linger_s <= 0:
            return
        deadline = time.monotonic() + self._linger_s
        self._wanted = expected
        try:
            while len(self._queue) < expected and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._wakeup.wait(remaining)
        finally:
            self._wanted = 1

    def _write(self, batch: Sequence[_Pending]) -> None:
        try:
            outcomes = self._recorder.insert_batch([p.command for p in batch])
        except BatchIntegrityError:
            if len(batch) > 1:
                log.warning("batch of %d refused by the store; writing one by one", len(batch))
                for pending in batch:
                    self._write([pending])
                return
            outcomes = [None]
        except Exception as error:  # noqa: BLE001 - every waiter must be woken with the cause
            log.warning("write of a batch of %d failed: %s", len(batch), type(error).__name__)
            for pending in batch:
                pending.error = error
                pending.done.release()
            return
        conflicts = sum(1 for outcome in outcomes if outcome is None)
        with self._wakeup:
            stats = self.stats
            stats.batches += 1
            stats.commands += len(batch)
            stats.largest_batch = max(stats.largest_batch, len(batch))
            stats.conflicts += conflicts
        written = [p.command for p, o in zip(batch, outcomes, strict=True) if isinstance(o, list)]
        if self.after_commit is not None and written:
            try:
                self.after_commit(written)
            except Exception:  # the announcement is best effort; listeners have a backstop
                log.warning("the after_commit hook failed", exc_info=True)
        for pending, outcome in zip(batch, outcomes, strict=True):
            pending.outcome = outcome
            pending.done.release()
        if self.on_batch is not None:
            try:
                self.on_batch(len(batch), conflicts)
            except Exception:  # a metrics failure must not stop the writer
                log.warning("the on_batch hook failed", exc_info=True)
