"""``ledger serve`` as a subprocess, and an HTTP client that remembers every token it saw."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 40.0

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    condition: Callable[[], T | bool | None],
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
    what: str = "condition",
) -> T | bool:
    """Poll ``condition`` until it returns something truthy (returned), at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout} s waiting for {what}"
            raise AssertionError(msg)
        time.sleep(interval)


class ServeProcess:
    """One ``ledger serve`` process on a configured database; output goes to ``log_path``."""

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        *,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("ab")
        environment = {
            **os.environ,
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_LOG_LEVEL": "INFO",
            "LEDGER_POOL_SIZE": "4",
            **(env or {}),
        }
        environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ledger",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Return once ``/readyz`` answers 200 (fails at once if the process exits)."""

        def ready() -> bool:
            if self.process.poll() is not None:
                msg = f"ledger serve exited with {self.process.returncode}:\n{self.log_text()}"
                raise AssertionError(msg)
            try:
                return httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_until(ready, timeout=timeout, interval=0.05, what="ledger serve to be ready")
        except BaseException:
            # A service that never became ready is stopped here, so that no caller leaks it
            # (callers start it before their own try/finally).
            self.stop()
            raise

    def stop(self) -> int:
        """SIGTERM, then wait for the drain; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


@dataclass
class TokenLog:
    """Every raw token a test saw (minted, exchanged, sent): none may appear in a log."""

    tokens: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, token: object) -> None:
        # A made-up text no longer than a display prefix ("mdt_x") is no secret, and would
        # match the logged prefix of any real token that happens to start with it.
        if isinstance(token, str) and token[:4] in {"mul_", "mdt_", "mit_"} and len(token) > 12:
            with self.lock:
                self.tokens.add(token)

    def found_in(self, text: str) -> list[str]:
        with self.lock:
            return sorted(t[:12] + "…" for t in self.tokens if t in text)


class Api:
    """An HTTP client of one service; notes every token that passes through it."""

    def __init__(self, base_url: str, tokens: TokenLog) -> None:
        self.client = httpx.Client(
            base_url=base_url,
            timeout=30,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self.tokens = tokens

    def close(self) -> None:
        self.client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        if token is not None:
            self.tokens.add(token)
            all_headers["Authorization"] = f"Bearer {token}"
        if isinstance(json, Mapping):
            self.tokens.add(json.get("token"))
        response = self.client.request(
            method, path, json=json, content=content, headers=all_headers
        )
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            if isinstance(body, dict):
                self.tokens.add(body.get("token"))
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)


def error_of(response: httpx.Response) -> tuple[int, str | None]:
    """``(status, error code)`` of an answer (``None`` when it is not an error body)."""
    try:
        body = response.json()
    except ValueError:
        return response.status_code, None
    error = body.get("error") if isinstance(body, dict) else None
    return response.status_code, error if isinstance(error, str) else None


@contextlib.contextmanager
def served(process: ServeProcess, token_log: TokenLog | None = None) -> Iterator[ServeProcess]:
    """``process`` once ready; when the block ends it is stopped and must have ended cleanly:
    exit 0, no traceback in its log, and (given ``token_log``) no raw token in it."""
    try:
        process.wait_ready()
        yield process
    finally:
        status = process.stop()
    log = process.log_text()
    assert status == 0, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    if token_log is not None:
        assert token_log.found_in(log) == []
