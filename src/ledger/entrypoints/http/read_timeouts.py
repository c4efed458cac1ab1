"""Header and body read deadlines for uvicorn's HTTP/1.1 protocol.

uvicorn bounds only the idle time between two requests of a keep-alive connection
(``timeout_keep_alive``). A client that opens a connection and sends its headers a byte at a
time, or sends its headers and then stalls its body, holds the connection (and, for a body, the
request's task and whatever the route holds while it waits) for as long as it likes. A handful
of such clients is enough to exhaust a worker.

``ReadTimeoutH11Protocol`` adds two deadlines, each a total (trickling bytes does not extend it):

- headers: a new connection, or a kept-alive one once the next request's first byte arrives,
  must deliver the complete request head within ``header_timeout_s``;
- body: once the head is in, the whole body must arrive within ``body_timeout_s``.

When a deadline passes the client gets ``408 Request Timeout`` (unless an answer has started)
and the connection is closed; a route that was waiting for the body sees the client disconnect.
While the service itself is answering, or the connection idles between requests, no deadline
runs (the keep-alive timeout covers the idle time).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import ClassVar, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ledger.config import Settings

log = logging.getLogger(__name__)

Waiting = Literal["headers", "body"]

_BODY = json.dumps(
    {"error": "request_timeout", "detail": "The request was not received in time."}
).encode()
TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _BODY
)
"""What a client that was too slow gets before the connection closes."""


class ReadTimeoutH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a header and a body read deadline."""

    header_timeout_s: ClassVar[float] = Settings.model_fields["http_header_timeout_s"].default
    body_timeout_s: ClassVar[float] = Settings.model_fields["http_body_timeout_s"].default

    _deadline: asyncio.TimerHandle | None = None
    _waiting: Waiting | None = None

    @classmethod
    def configure(cls, settings: Settings) -> None:
        """Take the deadlines from ``settings`` (each worker process, before it serves)."""
        cls.header_timeout_s = settings.http_header_timeout_s
        cls.body_timeout_s = settings.http_body_timeout_s

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._set_deadline(None)
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Start, keep or stop the deadline for what the connection waits for now."""
        if self.transport.is_closing():
            self._set_deadline(None)
            return
        state = self.conn.their_state
        waiting: Waiting | None = None
        if state is h11.IDLE and self.timeout_keep_alive_task is None:
            # A new connection, or the next request has begun (its first byte stopped the
            # keep-alive timer): the head is due.
            waiting = "headers"
        elif state is h11.SEND_BODY:
            waiting = "body"
        self._set_deadline(waiting)

    def _set_deadline(self, waiting: Waiting | None) -> None:
        if waiting == self._waiting:
            return  # the running deadline stays: it bounds the total, not each byte
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._waiting = waiting
        if waiting is not None:
            timeout = self.header_timeout_s if waiting == "headers" else self.body_timeout_s
            self._deadline = self.loop.call_later(timeout, self._timed_out)

    def _timed_out(self) -> None:
        waiting = self._waiting
        self._deadline = None
        self._waiting = None
        if self.transport.is_closing():
            return
        log.warning("closing a connection whose request %s did not arrive in time", waiting)
        cycle = self.cycle
        if waiting == "headers" or (cycle is not None and not cycle.response_started):
            self.transport.write(TIMEOUT_RESPONSE)
        if waiting == "body" and cycle is not None:
            # The route waiting for the rest of the body sees a disconnect at once, and
            # nothing it answers is written.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()
