"""The service's own tamper watch: signed checkpoints on a schedule, and a background verify.

Both are off unless configured (``LEDGER_CHECKPOINT_DIR``; ``LEDGER_VERIFY_INTERVAL_S``). A
verify pass checks the store against the newest checkpoint in the checkpoint directory, if
there is one; each problem it finds is a log line at ERROR, and the number of problems is
reported to ``on_problems`` (the service makes it a metric). The service stays ready: ADR 0019.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventsourcing.persistence import Mapper

from ledger.adapters.audit_verify import (
    NamedCheckpoint,
    VerifyReport,
    take_checkpoint,
    trusted_key,
    verify_store,
)
from ledger.adapters.background import Periodic
from ledger.adapters.signing import key_path
from ledger.config import Settings
from ledger.domain.checkpoint import InvalidCheckpoint, parse_checkpoint
from ledger.domain.clock import Clock

log = logging.getLogger(__name__)


class AuditWatch:
    """Runs ``checkpoint_once`` and ``verify_once`` at their intervals, on one ``Periodic``
    (one after the other: a verify at start uses the checkpoint written just before)."""

    def __init__(
        self,
        url: str,
        mapper: Mapper[Any],
        settings: Settings,
        clock: Clock,
        on_problems: Callable[[int], None] = lambda _n: None,
    ) -> None:
        self._url = url
        self._mapper = mapper
        self._settings = settings
        self._clock = clock
        self._on_problems = on_problems
        self._tasks: list[tuple[float, Callable[[], object]]] = []
        if settings.checkpoint_dir is not None:
            self._tasks.append((settings.checkpoint_interval_s, self.checkpoint_once))
        if settings.verify_interval_s is not None:
            self._tasks.append((settings.verify_interval_s, self.verify_once))
        self._due = [0.0 for _ in self._tasks]
        self._periodic = Periodic("ledger-audit-watch", 0.0, self._tick, at_start=True)

    @property
    def enabled(self) -> bool:
        s = self._settings
        return s.checkpoint_dir is not None or s.verify_interval_s is not None

    def checkpoint_once(self) -> Path | None:
        """Write a checkpoint into the checkpoint directory (if one is set); its path."""
        directory = self._settings.checkpoint_dir
        if directory is None:
            return None
        signed = take_checkpoint(self._url, key_path(self._settings), at=self._clock.now())
        directory.mkdir(parents=True, exist_ok=True)
        name = f"checkpoint-{signed.time.replace(':', '')}-{signed.log_size}.json"
        path = directory / name
        partial = directory / f".{name}.partial"
        partial.write_text(signed.dumps(), encoding="utf-8")
        partial.replace(path)
        log.info("checkpoint written", extra={"path": str(path), "log_size": signed.log_size})
        return path

    def verify_once(self) -> VerifyReport:
        """Verify the store against the newest checkpoint; log and report what is found."""
        named = self._newest_checkpoint()
        report = verify_store(
            self._url,
            self._mapper,
            [named] if named else [],
            trusted=trusted_key(key_path(self._settings)),
            processes=1,  # in the background, one core at most
        )
        for problem in report.problems:
            log.error("tamper evidence: %s", problem.problem.value, extra=problem.to_json())
        self._on_problems(len(report.problems))
        return report

    def _newest_checkpoint(self) -> NamedCheckpoint | None:
        directory = self._settings.checkpoint_dir
        if directory is None or not directory.is_dir():
            return None
        for path in sorted(directory.glob("checkpoint-*.json"), reverse=True):
            try:
                return NamedCheckpoint(str(path), parse_checkpoint(path.read_text("utf-8")))
            except (OSError, UnicodeDecodeError, InvalidCheckpoint):
                log.exception("unreadable checkpoint %s", path)
        return None

    def start(self) -> None:
        if self.enabled:
            self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def _tick(self) -> float:
        """Run every task that is due; the seconds until the next one is."""
        now = time.monotonic()
        for i, (interval, task) in enumerate(self._tasks):
            if now >= self._due[i]:
                self._due[i] = now + interval
                try:
                    task()
                except Exception:
                    log.exception("audit watch task failed")
        return max(0.0, min(self._due) - time.monotonic())
