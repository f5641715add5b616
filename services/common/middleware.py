"""ASGI middleware every service uses: body limits, slow-client timeouts, security headers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.sizes import readable_bytes

# nginx's status for "the client closed the connection before the answer": a client error.
CLIENT_CLOSED_REQUEST = 499

# Browsers send a few KiB of headers; anything near this is an attack or a broken client.
MAX_HEADER_BYTES = 16 * 1024

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class _BodyRefused(Exception):
    """The body broke a limit; the middleware answers instead of the app."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


async def _send_json(
    send: Send, status: int, detail: str, *, retry_after_s: int | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    if retry_after_s is not None:
        headers.append((b"retry-after", str(retry_after_s).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestBodyGuard:
    """Refuse bodies over `max_bytes` while they stream in, and clients that stall or trickle.

    The limit is enforced on the bytes as they arrive, so an oversized upload is never
    buffered; the app's own answer is discarded once a limit is broken, because form
    parsers turn any read error into a generic 400.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        idle_timeout_s: float,
        total_timeout_s: float,
        path_max_bytes: Mapping[str, int] | None = None,
        on_refused: Callable[[int], None] | None = None,
        stated_max_bytes: int | None = None,
    ) -> None:
        self.app = app
        # Told the status of each refusal, for the service's own domain metric.
        self.on_refused = on_refused
        self.max_bytes = max_bytes
        # The limit refusals name: the documented one, when `max_bytes` adds framing to it.
        self.stated_max_bytes = stated_max_bytes or max_bytes
        # Exact paths allowed a different limit (a model upload is bigger than a photo).
        self.path_max_bytes = dict(path_max_bytes or {})
        self.idle_timeout_s = idle_timeout_s
        self.total_timeout_s = total_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
        if header_bytes > MAX_HEADER_BYTES:
            await self._refuse(
                send, 431, f"request headers exceed {readable_bytes(MAX_HEADER_BYTES)}"
            )
            return
        path_limit = self.path_max_bytes.get(scope["path"])
        max_bytes = path_limit or self.max_bytes
        too_large = f"request body exceeds {readable_bytes(path_limit or self.stated_max_bytes)}"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._refuse(send, 413, too_large)
            return

        refused: _BodyRefused | None = None
        received = 0
        started = False
        disconnected = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout_s

        async def guarded_receive() -> Message:
            nonlocal received, refused, disconnected
            # A client trickling one byte at a time never goes idle: the total deadline ends it.
            wait_s = min(self.idle_timeout_s, deadline - loop.time())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait_s, 0.001))
            except TimeoutError:
                refused = _BodyRefused(408, "request body arrived too slowly")
                raise refused from None
            if message["type"] == "http.disconnect":
                disconnected = True
            elif message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    refused = _BodyRefused(413, too_large)
                    raise refused
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused is not None:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except _BodyRefused:
            pass
        except ClientDisconnect:
            if started:
                raise
        if started:
            return
        if refused is not None:
            await self._refuse(send, refused.status, refused.detail)
        elif disconnected:
            # The client left mid-request: nobody reads this answer, but the HTTP metrics do,
            # and without one they would count a 500, a failure of ours any client could fake.
            await send(
                {"type": "http.response.start", "status": CLIENT_CLOSED_REQUEST, "headers": []}
            )
            await send({"type": "http.response.body", "body": b""})

    async def _refuse(self, send: Send, status: int, detail: str) -> None:
        if self.on_refused is not None:
            self.on_refused(status)
        await _send_json(send, status, detail)


class ConcurrencyLimit:
    """Answer 503 (with Retry-After) once `max_requests` requests are open in this worker.

    In the app rather than the server so that the refusal is an answer like any other:
    counted by the HTTP metrics, in the JSON error shape.
    """

    def __init__(self, app: ASGIApp, *, max_requests: int) -> None:
        self.app = app
        self.max_requests = max_requests
        self.open = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.open >= self.max_requests:
            await _send_json(
                send, 503, "too many requests in progress; retry shortly", retry_after_s=1
            )
            return
        self.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1


class SecurityHeaders:
    """Add the headers browsers need to keep our pages safe; HTML gets a strict CSP."""

    def __init__(self, app: ASGIApp, *, content_security_policy: str) -> None:
        self.app = app
        self.csp = content_security_policy.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                is_html = dict(headers).get(b"content-type", b"").startswith(b"text/html")
                if is_html and b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", self.csp))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
