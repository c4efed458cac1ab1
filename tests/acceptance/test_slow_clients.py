"""Slow or stalled clients are cut off; normal clients do not notice them.

The module runs ``ledger serve`` with short read deadlines (half a second for the headers and
for the body) so that nothing here waits long: the bounds themselves are the settings'.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.acceptance.service import ServeProcess, served

HEADER_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 0.5
TRICKLE_STEP_S = 0.05
"""How long a trickling client waits (for an answer) between two bytes."""


@pytest.fixture(scope="module")
def slow_service(service_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process = ServeProcess(
        service_database,
        tmp_path_factory.mktemp("slow-clients") / "serve.log",
        env={
            "LEDGER_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
            "LEDGER_HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        },
    )
    with served(process):
        yield process.base_url
    assert "did not arrive in time" in process.log_text()


def connect(base_url: str) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (at most 30 s)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def trickle(sock: socket.socket, data: bytes) -> tuple[int, bytes]:
    """Send ``data`` a byte at a time, stopping as soon as the server answers or closes;
    how many bytes went out, and what came back."""
    for sent, byte in enumerate(data):
        readable, _, _ = select.select([sock], [], [], TRICKLE_STEP_S)
        if readable:
            return sent, read_until_closed(sock)
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return sent, b""
    return len(data), read_until_closed(sock)


def request_head(base_url: str, method: str, path: str, extra: str = "") -> bytes:
    host = base_url.removeprefix("http://")
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


def test_headers_sent_a_byte_at_a_time_are_cut_off(slow_service: str) -> None:
    # Sent in full, these headers would take far longer than the header deadline.
    padding = "x-padding: " + "a" * int(4 * HEADER_TIMEOUT_S / TRICKLE_STEP_S) + "\r\n"
    head = request_head(slow_service, "GET", "/healthz", padding)
    with connect(slow_service) as sock:
        sent, answer = trickle(sock, head)
    assert sent < len(head)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "request_timeout"


def test_a_connection_that_sends_nothing_is_closed(slow_service: str) -> None:
    with connect(slow_service) as sock:
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_stalled_body_is_cut_off(slow_service: str) -> None:
    body = b'{"token": "' + b"a" * 100 + b'", "daemon_id": "box"}'
    head = request_head(
        slow_service,
        "POST",
        "/api/install-tokens/exchange",
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n",
    )
    with connect(slow_service) as sock:
        sock.sendall(head + body[:10])  # the rest never comes
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_body_sent_a_byte_at_a_time_is_cut_off(slow_service: str) -> None:
    body = b'{"token": "' + b"a" * int(4 * BODY_TIMEOUT_S / TRICKLE_STEP_S) + b'"}'
    head = request_head(
        slow_service,
        "POST",
        "/api/install-tokens/exchange",
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n",
    )
    with connect(slow_service) as sock:
        sock.sendall(head)
        sent, answer = trickle(sock, body)
    assert sent < len(body)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_normal_clients_are_served_while_slow_ones_hang_on(slow_service: str) -> None:
    stalled = [connect(slow_service) for _ in range(20)]
    try:
        for n, sock in enumerate(stalled):
            # Half of them stall in their headers, half in their body.
            if n % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            else:
                sock.sendall(
                    request_head(
                        slow_service,
                        "POST",
                        "/api/install-tokens/exchange",
                        "content-type: application/json\r\ncontent-length: 50\r\n",
                    )
                    + b"{"
                )
        with httpx.Client(base_url=slow_service, timeout=30) as client:
            for _ in range(20):
                assert client.get("/readyz").status_code == 200
            refused = client.post(
                "/api/install-tokens/exchange", json={"token": "nope", "daemon_id": "box"}
            )
            assert refused.status_code in (400, 401), refused.text
        for sock in stalled:
            assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")
    finally:
        for sock in stalled:
            sock.close()


def read_response(sock: socket.socket) -> bytes:
    """One whole response (head and ``content-length`` body) from a kept-alive connection."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, received
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_kept_alive_connection_may_idle_longer_than_the_header_deadline(
    slow_service: str,
) -> None:
    """The header deadline starts with a request's first byte, not with the idle time before
    it (uvicorn's keep-alive timeout, 5 s, bounds that)."""
    with connect(slow_service) as sock:
        sock.sendall(request_head(slow_service, "GET", "/readyz"))
        first = read_response(sock)
        time.sleep(3 * HEADER_TIMEOUT_S)
        sock.sendall(request_head(slow_service, "GET", "/readyz"))
        second = read_response(sock)
    assert first.startswith(b"HTTP/1.1 200 ")
    assert second.startswith(b"HTTP/1.1 200 ")
