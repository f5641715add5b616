"""A fake Discord webhook server that behaves like Discord where our notifier can tell.

It enforces Discord's documented message limits (400, code 50035, Discord's nested error
shape) on posts and edits, rate-limits each webhook (default 5 requests per 2 s, posts and
edits alike, real 429 bodies and `X-RateLimit-*` headers), honours `?wait=true` (returns the
message object) and `?thread_id=` (recorded; a message is edited only within its thread),
edits (`PATCH …/messages/<id>`) and deletes messages (404 Unknown Message, 10008, for one that
is not there), and on command answers 503 or 429 for a while, drops connections, or answers
404 Unknown Webhook (10015).

In-process:
    with FakeDiscord() as discord:
        url = discord.webhook_url()          # http://127.0.0.1:PORT/api/webhooks/1/token
        discord.fail("status", seconds=60, status=503)
        discord.wait_for_messages(3)
        discord.messages()                   # what was accepted, in order, as last edited
        discord.delete_message(message_id)   # as a moderator would

As a process: `python -m harness.fake_discord --port 9999`, then the control API:
    GET  /_control/messages[?webhook_id=]    accepted messages (JSON list)
    GET  /_control/requests                  every request: webhook_id, status, time
    POST /_control/fail  {"mode": "status"|"rate_limit"|"drop"|"unknown_webhook",
                          "seconds": 60, "status": 503, "global": false,
                          "count": null, "retry_after": null, "webhook_id": null}
    POST /_control/reset                     forget messages, requests and failures
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

LIMITS = {
    "content": 2000,
    "embeds": 10,
    "title": 256,
    "description": 4096,
    "fields": 25,
    "field_name": 256,
    "field_value": 1024,
    "footer": 2048,
    "author": 256,
    "total": 6000,
}
_WEBHOOK_PATH = re.compile(
    r"^/api(?:/v\d+)?/webhooks/(?P<id>\d+)/(?P<token>[^/]+)(?:/messages/(?P<message>\d+))?$"
)
_TRUE = {"true", "1", "True"}


def _max_length(limit: int) -> dict[str, Any]:
    return {
        "_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}
        ]
    }


def _nest(errors: dict[str, Any], path: list[str], error: dict[str, Any]) -> None:
    node = errors
    for part in path:
        node = node.setdefault(part, {})
    node.update(error)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def validate_message(payload: Any) -> dict[str, Any]:
    """Discord's `errors` object for a webhook message; empty when Discord would accept it."""
    errors: dict[str, Any] = {}
    if not isinstance(payload, dict):
        return {"_errors": [{"code": "DICT_TYPE_CONVERT", "message": "Only dictionaries."}]}
    content = _text(payload.get("content"))
    if len(content) > LIMITS["content"]:
        _nest(errors, ["content"], _max_length(LIMITS["content"]))
    embeds = payload.get("embeds") or []
    if len(embeds) > LIMITS["embeds"]:
        _nest(errors, ["embeds"], _max_length(LIMITS["embeds"]))
    total = 0
    for index, embed in enumerate(embeds[: LIMITS["embeds"]]):
        where = ["embeds", str(index)]
        checks = [
            (["title"], _text(embed.get("title")), LIMITS["title"]),
            (["description"], _text(embed.get("description")), LIMITS["description"]),
            (["footer", "text"], _text((embed.get("footer") or {}).get("text")), LIMITS["footer"]),
            (["author", "name"], _text((embed.get("author") or {}).get("name")), LIMITS["author"]),
        ]
        fields = embed.get("fields") or []
        if len(fields) > LIMITS["fields"]:
            _nest(errors, [*where, "fields"], _max_length(LIMITS["fields"]))
        for number, item in enumerate(fields):
            name, value = _text(item.get("name")), _text(item.get("value"))
            checks.append((["fields", str(number), "name"], name, LIMITS["field_name"]))
            checks.append((["fields", str(number), "value"], value, LIMITS["field_value"]))
            if not name or not value:
                _nest(errors, [*where, "fields", str(number)], _required())
        for path, text, limit in checks:
            total += len(text)
            if len(text) > limit:
                _nest(errors, where + path, _max_length(limit))
        for key in ("url",):
            if key in embed and not str(embed[key]).startswith(("http://", "https://")):
                _nest(errors, [*where, key], _invalid_url())
        if "timestamp" in embed and not _is_iso(embed["timestamp"]):
            _nest(errors, [*where, "timestamp"], _invalid_timestamp())
    if total > LIMITS["total"]:
        _nest(
            errors,
            ["embeds"],
            {
                "_errors": [
                    {
                        "code": "MAX_EMBED_SIZE_EXCEEDED",
                        "message": f"Embed size exceeds maximum size of {LIMITS['total']}",
                    }
                ]
            },
        )
    return errors


def _required() -> dict[str, Any]:
    return {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}


def _invalid_url() -> dict[str, Any]:
    return {"_errors": [{"code": "URL_TYPE_INVALID_URL", "message": "Not a well formed URL."}]}


def _invalid_timestamp() -> dict[str, Any]:
    return {"_errors": [{"code": "DATE_TYPE_PARSE", "message": "Could not parse timestamp."}]}


def _is_iso(value: Any) -> bool:
    try:
        datetime.fromisoformat(str(value))
    except ValueError:
        return False
    return True


@dataclass
class Failure:
    """A commanded misbehaviour, active until `until` (monotonic) or for `count` requests."""

    mode: str
    until: float
    status: int = 503
    is_global: bool = False
    count: int | None = None
    retry_after: float | None = None
    # None: every webhook misbehaves; else only this one.
    webhook_id: str | None = None


@dataclass
class Window:
    """Discord-like fixed window per webhook: `limit` requests, then wait until reset."""

    started: float = 0.0
    used: int = 0


@dataclass
class Request:
    """One request as the fake saw it."""

    webhook_id: str
    status: int
    at: float
    wait: bool
    # Discord posts into (and edits within) a thread only when the URL names it.
    thread_id: str | None = None
    method: str = "POST"
    message_id: str | None = None


@dataclass(frozen=True)
class _Call:
    """One webhook request: a post, or an edit or deletion of one of its messages."""

    method: str
    webhook_id: str
    token: str
    message_id: str | None
    wait: bool
    thread_id: str | None
    body: bytes

    def seen(self, status: int, at: float) -> Request:
        """The request as recorded."""
        return Request(
            self.webhook_id, status, at, self.wait, self.thread_id, self.method, self.message_id
        )


@dataclass
class _State:
    limit: int
    window_s: float
    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    windows: dict[str, Window] = field(default_factory=dict)
    failure: Failure | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(10**17))

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the recorded requests instead."""

    def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        with state.lock:
            if url.path == "/_control/messages":
                wanted = parse_qs(url.query).get("webhook_id", [None])[0]
                found = [m for m in state.messages if wanted in (None, m["webhook_id"])]
                self._reply(200, found)
            elif url.path == "/_control/requests":
                self._reply(200, [r.__dict__ for r in state.requests])
            else:
                self._reply(404, {"message": "404: Not Found", "code": 0})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self._body()
        if url.path.startswith("/_control/"):
            self._control(url.path, body)
            return
        self._route("POST", url.path, url.query, body)

    def do_PATCH(self) -> None:
        url = urlsplit(self.path)
        self._route("PATCH", url.path, url.query, self._body())

    def do_DELETE(self) -> None:
        url = urlsplit(self.path)
        self._route("DELETE", url.path, url.query, self._body())

    def _route(self, method: str, path: str, query_text: str, body: bytes) -> None:
        match = _WEBHOOK_PATH.match(path)
        # Posting goes to the webhook; editing and deleting to one of its messages.
        if not match or (method == "POST") != (match["message"] is None):
            self._reply(404 if match is None else 405, {"message": "404: Not Found", "code": 0})
            return
        query = parse_qs(query_text)
        call = _Call(
            method=method,
            webhook_id=match["id"],
            token=match["token"],
            message_id=match["message"],
            wait=query.get("wait", ["false"])[0] in _TRUE,
            thread_id=query.get("thread_id", [None])[0],
            body=body,
        )
        self._webhook(call)

    def _control(self, path: str, body: bytes) -> None:
        try:
            command = json.loads(body or b"{}")
        except ValueError:
            self._reply(400, {"message": "the control body must be JSON"})
            return
        if path == "/_control/fail":
            try:
                self.server.fake.fail(
                    command.get("mode", "status"),
                    seconds=float(command.get("seconds", 60)),
                    status=int(command.get("status", 503)),
                    is_global=bool(command.get("global", False)),
                    count=command.get("count"),
                    retry_after=command.get("retry_after"),
                    webhook_id=command.get("webhook_id"),
                )
            except ValueError as error:
                self._reply(400, {"message": str(error)})
                return
        elif path == "/_control/reset":
            self.server.fake.reset()
        else:
            self._reply(404, {"message": "unknown control command"})
            return
        self._reply(204)

    def _webhook(self, call: _Call) -> None:
        state = self.server.state
        with state.lock:
            now = time.monotonic()
            failure = state.failure
            if failure and (failure.until <= now or failure.count == 0):
                state.failure = failure = None
            if failure and failure.webhook_id not in (None, call.webhook_id):
                failure = None
            if failure and failure.count is not None:
                failure.count -= 1
            if failure and failure.mode == "drop":
                state.requests.append(call.seen(0, now))
                state.changed.notify_all()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            status, reply, headers = self._answer(call, failure, now)
            state.requests.append(call.seen(status, now))
            state.changed.notify_all()
        self._reply(status, reply, headers)

    def _answer(
        self, call: _Call, failure: Failure | None, now: float
    ) -> tuple[int, Any, dict[str, str]]:
        state = self.server.state
        webhook_id = call.webhook_id
        if failure and failure.mode == "unknown_webhook":
            return 404, {"message": "Unknown Webhook", "code": 10015}, {}
        if failure and failure.mode == "status":
            return failure.status, {"message": "Service Unavailable", "code": 0}, {}
        if failure and failure.mode == "rate_limit":
            pause = failure.retry_after if failure.retry_after is not None else failure.until - now
            return self._too_many(webhook_id, pause, failure.is_global)
        window = state.windows.setdefault(webhook_id, Window(started=now))
        if now - window.started >= state.window_s:
            window.started, window.used = now, 0
        reset_after = state.window_s - (now - window.started)
        if window.used >= state.limit:
            return self._too_many(webhook_id, reset_after, False)
        window.used += 1
        headers = self._rate_headers(webhook_id, state.limit - window.used, reset_after)
        if call.method != "POST":
            return self._existing(call, headers)
        payload, refusal = self._acceptable(call.body)
        if refusal is not None:
            return 400, refusal, headers
        message = {
            "id": str(next(state.ids)),
            "type": 0,
            # In a thread, Discord's channel is the thread itself.
            "channel_id": call.thread_id or "1",
            "thread_id": call.thread_id,
            "webhook_id": webhook_id,
            "content": payload.get("content", ""),
            "embeds": payload.get("embeds", []),
            "allowed_mentions": payload.get("allowed_mentions"),
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "edits": 0,
        }
        state.messages.append(message)
        return (200, message, headers) if call.wait else (204, None, headers)

    def _existing(self, call: _Call, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """PATCH or DELETE of a message: only the webhook's own, in the thread named."""
        state = self.server.state
        message = next(
            (
                m
                for m in state.messages
                if m["id"] == call.message_id
                and m["webhook_id"] == call.webhook_id
                and m["thread_id"] == call.thread_id
            ),
            None,
        )
        if message is None:
            return 404, {"message": "Unknown Message", "code": 10008}, headers
        if call.method == "DELETE":
            state.messages.remove(message)
            return 204, None, headers
        payload, refusal = self._acceptable(call.body, editing=message)
        if refusal is not None:
            return 400, refusal, headers
        for key in ("content", "embeds", "allowed_mentions"):
            if key in payload:
                message[key] = payload[key]
        message["edited_timestamp"] = datetime.now(UTC).isoformat()
        message["edits"] += 1
        return 200, message, headers

    def _acceptable(
        self, body: bytes, editing: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The payload, and Discord's refusal of it (None when accepted); an edit is judged
        as the message it would leave."""
        try:
            payload = json.loads(body)
        except ValueError:
            return {}, {"message": "400: Bad Request", "code": 50109}
        errors = validate_message(payload)
        if errors:
            return payload, {"code": 50035, "errors": errors, "message": "Invalid Form Body"}
        result = {**(editing or {}), **payload} if isinstance(payload, dict) else payload
        if not _text(result.get("content")) and not result.get("embeds"):
            return payload, {"message": "Cannot send an empty message", "code": 50006}
        return payload, None

    def _rate_headers(self, webhook_id: str, remaining: int, reset_after: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.server.state.limit),
            "X-RateLimit-Remaining": str(max(0, remaining)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": f"bucket-{webhook_id}",
        }

    def _too_many(
        self, webhook_id: str, retry_after: float, is_global: bool
    ) -> tuple[int, Any, dict[str, str]]:
        retry_after = max(0.001, retry_after)
        headers = {
            **self._rate_headers(webhook_id, 0, retry_after),
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Scope": "global" if is_global else "user",
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {
            "message": "You are being rate limited.",
            "retry_after": round(retry_after, 3),
            "global": is_global,
        }
        return 429, body, headers


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State
    fake: FakeDiscord


class FakeDiscord:
    """The fake server, in a background thread of this process."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, limit: int = 5, window_s: float = 2.0
    ) -> None:
        self.state = _State(limit=limit, window_s=window_s)
        self._server = _Server((host, port), _Handler)
        self._server.state = self.state
        self._server.fake = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    # The fake accepts any token: this one is a placeholder, not a secret.
    def webhook_url(self, webhook_id: str = "123456789012345678", token: str = "t0ken") -> str:  # noqa: S107
        """A webhook URL served by this fake."""
        return f"{self.url}/api/webhooks/{webhook_id}/{token}"

    def start(self) -> FakeDiscord:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeDiscord:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail(
        self,
        mode: str,
        *,
        seconds: float = 60.0,
        status: int = 503,
        is_global: bool = False,
        count: int | None = None,
        retry_after: float | None = None,
        webhook_id: str | None = None,
    ) -> None:
        """Misbehave for `seconds` (or `count` requests), towards one webhook if given.

        Modes: status (answer `status`), rate_limit (429 whose `retry_after` is the time left,
        or `retry_after` when given), drop (close the connection without an answer),
        unknown_webhook (404, code 10015).
        """
        if mode not in {"status", "rate_limit", "drop", "unknown_webhook"}:
            raise ValueError(f"unknown failure mode {mode!r}")
        with self.state.lock:
            self.state.failure = Failure(
                mode, time.monotonic() + seconds, status, is_global, count, retry_after, webhook_id
            )

    def heal(self) -> None:
        """Stop misbehaving now."""
        with self.state.lock:
            self.state.failure = None

    def reset(self) -> None:
        """Forget messages, requests, rate-limit windows and failures."""
        with self.state.lock:
            self.state.messages.clear()
            self.state.requests.clear()
            self.state.windows.clear()
            self.state.failure = None

    def messages(self, webhook_id: str | None = None) -> list[dict[str, Any]]:
        """Accepted messages, oldest first."""
        with self.state.lock:
            return [m for m in self.state.messages if webhook_id in (None, m["webhook_id"])]

    def delete_message(self, message_id: str) -> None:
        """Delete a message as someone in the channel would; editing it then meets 10008."""
        with self.state.lock:
            self.state.messages[:] = [m for m in self.state.messages if m["id"] != message_id]

    def requests(self) -> list[Request]:
        """Every webhook request and the status it got."""
        with self.state.lock:
            return list(self.state.requests)

    def wait_until(self, condition: Callable[[FakeDiscord], bool], timeout_s: float = 30.0) -> None:
        """Block until `condition(self)` holds; TimeoutError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not condition(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout_s} s")
            with self.state.changed:
                self.state.changed.wait(min(remaining, 0.2))

    def wait_for_messages(self, count: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Block until at least `count` messages were accepted; returns them."""
        self.wait_until(lambda fake: len(fake.messages()) >= count, timeout_s)
        return self.messages()


def main(argv: list[str] | None = None) -> int:
    """CLI: serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.fake_discord",
        description="A fake Discord webhook server with a control API (see the module docstring).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--limit", type=int, default=5, help="requests per window per webhook")
    parser.add_argument("--window-s", type=float, default=2.0, help="rate-limit window")
    args = parser.parse_args(argv)
    fake = FakeDiscord(host=args.host, port=args.port, limit=args.limit, window_s=args.window_s)
    print(f"fake Discord listening on {fake.url} (webhook: {fake.webhook_url()})", flush=True)
    try:
        fake._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake._server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
