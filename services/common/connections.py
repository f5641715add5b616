"""The HTTP/1.1 protocol every service serves: uvicorn's h11 one, with a deadline for headers.

uvicorn bounds neither how long a connection may take to send its request line and headers
(data resets its keep-alive timer, and a fresh connection has none) nor, with httptools, how
many header bytes it buffers. An idle or trickling connection therefore held its place for
ever, and 600 of them took a worker's connection limit and made `/health` answer 503. Here:

- the request line and headers must arrive within `header_timeout_s` of the connection
  opening, or of the previous response on a kept-alive connection; else `408` and close;
- h11 (rather than httptools) parses, so that `h11_max_incomplete_event_size` bounds the bytes
  buffered for one request head;
- past `max_connections` open connections a new one is closed at once;

and each refusal counts in `cv_http_connections_refused_total{reason}`. How many requests run
at once is the app's own limit (`MAX_CONCURRENCY`, `middleware.ConcurrencyLimit`), counted by
the HTTP metrics like any answer.

The price of h11 over httptools, measured on `GET /health` (3 000 keep-alive requests, feedback,
one worker, the shared 2-core machine): 0.34–0.36 → 0.49–0.52 ms of server CPU per request.
A prediction costs tens of milliseconds; the health probes and metrics scrapes pay it most.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import h11
from prometheus_client import Counter
from uvicorn.protocols.http.h11_impl import H11Protocol


@functools.cache
def refused() -> Counter:
    """The refusal counter, created in the worker that counts (never in uvicorn's supervisor,
    whose metric file would be summed in with the workers')."""
    counter = Counter(
        "cv_http_connections_refused",
        "Connections closed before a request reached the app, by reason: header_timeout (no "
        "complete request line and headers in time), invalid_request (malformed or oversized "
        "head), too_many_connections.",
        ["reason"],
    )
    for reason in ("header_timeout", "invalid_request", "too_many_connections"):
        counter.labels(reason=reason)
    return counter


_TIMEOUT_BODY = b"request headers arrived too slowly\n"
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus a request-head deadline and a connection cap."""

    def __init__(
        self, *args: Any, header_timeout_s: float, max_connections: int, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self._head_deadline: asyncio.TimerHandle | None = None
        refused()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            refused().labels(reason="too_many_connections").inc()
            transport.abort()
            return
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            # A request head was parsed (or refused): the body has deadlines of its own.
            self._disarm_head_deadline()

    def send_400_response(self, msg: str) -> None:
        refused().labels(reason="invalid_request").inc()
        super().send_400_response(msg)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_head_deadline()

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(self.header_timeout_s, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        refused().labels(reason="header_timeout").inc()
        self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()
