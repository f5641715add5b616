"""HTTP Basic login in front of the dashboard pages; health, readiness and metrics stay open."""

from __future__ import annotations

import base64
import binascii
import json
import secrets

from starlette.types import ASGIApp, Receive, Scope, Send

from services.dashboard import metrics


def _credentials(scope: Scope) -> tuple[bytes, bytes] | None:
    """The user and password of an `Authorization: Basic` header, if well formed."""
    header = dict(scope.get("headers", [])).get(b"authorization", b"")
    scheme, _, encoded = header.partition(b" ")
    if scheme.lower() != b"basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, separator, password = decoded.partition(b":")
    return (user, password) if separator else None


class BasicAuth:
    """Refuse requests under `prefix` without the right user and password.

    Both fields are always compared, in constant time, so the answer's timing says nothing
    about which one was wrong. WebSocket handshakes under the prefix are closed the same way.
    """

    def __init__(self, app: ASGIApp, *, user: str, password: str, prefix: str) -> None:
        self.app = app
        self.user = user.encode()
        self.password = password.encode()
        self.prefix = prefix.rstrip("/")

    def _protected(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    def _allowed(self, scope: Scope) -> bool:
        given = _credentials(scope)
        if given is None:
            return False
        user_ok = secrets.compare_digest(given[0], self.user)
        password_ok = secrets.compare_digest(given[1], self.password)
        return user_ok and password_ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"} or not self._protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self._allowed(scope):
            await self.app(scope, receive, send)
            return
        metrics.LOGIN_FAILURES.inc()
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"detail": "log in to see the monitoring dashboard"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Basic realm="monitoring", charset="UTF-8"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
