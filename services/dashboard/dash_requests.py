"""Dash's request middleware, adapted: no lifespan hook, 400 for malformed callbacks, 404s.

Dash answers any exception while dispatching a callback with a bare 500 and logs nothing, so a
hand-made or truncated request would read as a server fault. The request's shape is checked
here first (the body-size guard in front of us bounds what is buffered), and what reaches Dash
and still fails is logged with its traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from dash import Dash
from dash.backends._fastapi import DashMiddleware
from dash.fingerprint import check_fingerprint
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.dashboard.window import range_problem

logger = logging.getLogger(__name__)


def callback_problem(body: bytes, dash_app: Dash) -> str | None:
    """Why a callback request cannot be dispatched, or None if its shape is right."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "the callback request is not JSON"
    if not isinstance(payload, dict):
        return "the callback request must be a JSON object"
    output = payload.get("output")
    if not isinstance(output, str) or output not in dash_app.callback_map:
        return "the callback request names no known output"
    if not isinstance(payload.get("outputs"), dict | list):
        return "the callback request has no outputs"
    for key in ("inputs", "state"):
        items = payload.get(key, [])
        if not isinstance(items, list) or not all(
            isinstance(item, dict) and "id" in item and "property" in item for item in items
        ):
            return f"the callback request's {key} are malformed"
    values = {
        (item["id"], item["property"]): item.get("value") for item in payload.get("inputs", [])
    }
    return range_problem(
        values.get(("range-preset", "value")),
        values.get(("range-custom", "start_date")),
        values.get(("range-custom", "end_date")),
    )


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class LoggingDashMiddleware(DashMiddleware):
    """Dash's middleware, logging the exceptions it turns into 500s."""

    async def _handle_error(
        self, error: Exception, scope: Scope, receive: Receive, send: Send
    ) -> None:
        logger.error("dash request failed", exc_info=error, extra={"path": scope.get("path")})
        await super()._handle_error(error, scope, receive, send)


class DashRequests:
    """Dash's middleware for requests only, behind a shape check of callback requests.

    Dash's own lifespan hook is skipped: it registers a catch-all route answering the page for
    every unknown path, which would turn every 404 (and `/metrics` when disabled) into a 200
    page; this service has one page and needs none of it.
    """

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        self.app = app
        self.dash_app: Dash = options["dash_app"]
        prefix = self.dash_app.config.routes_pathname_prefix
        self.callback_path = prefix + "_dash-update-component"
        self.suites_prefix = prefix + "_dash-component-suites/"
        self.dash = LoggingDashMiddleware(app, **options)

    def _is_registered_suite_file(self, path: str) -> bool:
        # Dash answers an unregistered package or file with an exception (a 500): only the
        # files its components registered exist, everything else is a plain 404.
        package, _, fingerprinted = path[len(self.suites_prefix) :].partition("/")
        path_in_package, _ = check_fingerprint(fingerprinted)
        return path_in_package in self.dash_app.registered_paths.get(package, ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if (
            scope["type"] == "http"
            and scope["path"].startswith(self.suites_prefix)
            and not self._is_registered_suite_file(scope["path"])
        ):
            await JSONResponse({"detail": "no such file"}, status_code=404)(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"] == self.callback_path:
            body = await _read_body(receive)
            problem = callback_problem(body, self.dash_app)
            if problem is not None:
                await JSONResponse({"detail": problem}, status_code=400)(scope, receive, send)
                return
            receive = _replay(body)
        await self.dash(scope, receive, send)
