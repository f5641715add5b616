"""Posting to Discord webhooks: outcomes classified, rate-limit headers read, URLs redacted."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

from services.notifier import metrics

logger = logging.getLogger(__name__)

_WEBHOOK_PATH = re.compile(r"/webhooks/(?P<id>\d+)/(?P<token>[^/?#]+)")


def redact(url: str | None) -> str:
    """A webhook URL safe to log: its id only, never the token."""
    if not url:
        return "discord-webhook:none"
    match = _WEBHOOK_PATH.search(url)
    return f"discord-webhook:{match['id']}" if match else "discord-webhook:unrecognised"


def redact_text(text: str) -> str:
    """Remove any webhook token from free text, e.g. an httpx error message."""
    return _WEBHOOK_PATH.sub(lambda m: f"/webhooks/{m['id']}/***", text)


class RedactWebhookTokens(logging.Filter):
    """Rewrites records so that no webhook token survives, e.g. httpx's "HTTP Request: POST …"."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keep the record, with its message redacted."""
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def protect_http_logs() -> None:
    """Install the redacting filter on the HTTP client loggers (idempotent)."""
    for name in ("httpx", "httpcore"):
        target = logging.getLogger(name)
        if not any(isinstance(f, RedactWebhookTokens) for f in target.filters):
            target.addFilter(RedactWebhookTokens())


@dataclass(frozen=True)
class Delivered:
    """Discord stored the message."""

    message_id: str | None


@dataclass(frozen=True)
class RateLimited:
    """429: try again after `retry_after_s`; `is_global` blocks every webhook."""

    retry_after_s: float
    is_global: bool


@dataclass(frozen=True)
class Transient:
    """5xx, timeout or network error: retry with backoff."""

    reason: str


@dataclass(frozen=True)
class ConfigError:
    """401/403/404 (e.g. 10015 Unknown Webhook): nothing we send will work until fixed."""

    status: int
    code: int | None


@dataclass(frozen=True)
class Rejected:
    """400 and other 4xx about this payload: sending it again changes nothing."""

    status: int
    code: int | None
    detail: str


@dataclass(frozen=True)
class UnknownMessage:
    """404 code 10008 on an edit: the message was deleted in Discord; post it anew."""


Outcome = Delivered | RateLimited | Transient | ConfigError | Rejected | UnknownMessage

UNKNOWN_MESSAGE = 10008


@dataclass
class _Bucket:
    remaining: int | None = None
    reset_at: float = 0.0


class DiscordRateLimits:
    """What Discord's `X-RateLimit-*` headers and 429s said, to wait before being refused."""

    def __init__(self) -> None:
        self._bucket_of_url: dict[str, str] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._global_until = 0.0

    def delay_for(self, url: str) -> float:
        """Seconds to wait before the next request to `url` may go."""
        now = time.monotonic()
        wait = max(0.0, self._global_until - now)
        bucket = self._buckets.get(self._bucket_of_url.get(url, url))
        if bucket and bucket.remaining == 0 and bucket.reset_at > now:
            wait = max(wait, bucket.reset_at - now)
        return wait

    def observe(self, url: str, headers: httpx.Headers) -> None:
        """Record the headers of any response."""
        name = headers.get("x-ratelimit-bucket") or self._bucket_of_url.get(url, url)
        self._bucket_of_url[url] = name
        remaining = _number(headers.get("x-ratelimit-remaining"))
        reset_after = _number(headers.get("x-ratelimit-reset-after"))
        if remaining is None or reset_after is None:
            return
        self._buckets[name] = _Bucket(int(remaining), time.monotonic() + reset_after)

    def blocked(self, url: str, seconds: float, *, is_global: bool) -> None:
        """A 429 said to wait."""
        until = time.monotonic() + seconds
        if is_global:
            self._global_until = max(self._global_until, until)
            return
        name = self._bucket_of_url.get(url, url)
        bucket = self._buckets.setdefault(name, _Bucket())
        bucket.remaining = 0
        bucket.reset_at = max(bucket.reset_at, until)


def confirmed_url(url: str) -> httpx.URL:
    """The webhook URL asking Discord to answer with the message (`wait=true`), keeping the
    parameters it already has: httpx replaces a URL's query when given `params=`, which would
    lose `thread_id` (a thread's, or a forum channel's, webhook)."""
    return httpx.URL(url).copy_merge_params({"wait": "true"})


def edit_key(url: str) -> str:
    """What the rate limits of edits through `url` are known under: Discord may put edits in
    a bucket of their own, and names the bucket in its answers (both keys then share it)."""
    return f"{url} PATCH"


def message_url(url: str, message_id: str) -> httpx.URL:
    """Where one message of the webhook is edited, in the same thread as the webhook posts."""
    webhook = httpx.URL(url)
    return webhook.copy_with(path=webhook.path.rstrip("/") + f"/messages/{message_id}")


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def retry_after_of(response: httpx.Response) -> tuple[float, bool]:
    """A 429's wait (JSON `retry_after`, else the `Retry-After` header) and its global flag."""
    body = _json(response)
    seconds = _number(str(body["retry_after"])) if "retry_after" in body else None
    if seconds is None:
        seconds = _number(response.headers.get("retry-after"))
    is_global = bool(body.get("global")) or response.headers.get("x-ratelimit-global") == "true"
    return max(0.0, seconds if seconds is not None else 1.0), is_global


def classify(response: httpx.Response) -> Outcome:
    """Turn Discord's answer into what the sender should do next."""
    status = response.status_code
    if status in (200, 204):
        return Delivered(str(_json(response).get("id")) if status == 200 else None)
    if status == 429:
        seconds, is_global = retry_after_of(response)
        return RateLimited(seconds, is_global)
    if status >= 500:
        return Transient(f"HTTP {status}")
    body = _json(response)
    code = body.get("code") if isinstance(body.get("code"), int) else None
    if status == 404 and code == UNKNOWN_MESSAGE:
        return UnknownMessage()
    if status in (401, 403, 404):
        return ConfigError(status, code)
    detail = redact_text(str(body.get("errors") or body.get("message") or response.text[:300]))
    return Rejected(status, code, detail[:500])


class DiscordClient:
    """One pooled HTTP client; every request is confirmed (`wait=true`) and timed."""

    def __init__(self, *, timeout_s: float, limiter: DiscordRateLimits | None = None) -> None:
        self.limiter = limiter or DiscordRateLimits()
        protect_http_logs()
        self._http = httpx.AsyncClient(timeout=timeout_s, headers={"User-Agent": "cv-notifier/1.0"})

    async def close(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()

    async def wait_turn(self, url: str) -> None:
        """Sleep until the rate limits known for `url` allow a request."""
        delay = self.limiter.delay_for(url)
        if delay > 0:
            await asyncio.sleep(delay)

    async def post(self, url: str, payload: dict[str, Any]) -> Outcome:
        """Post one message and classify the result; never raises for HTTP or network errors."""
        return await self._send("POST", confirmed_url(url), url, payload)

    async def edit(self, url: str, message_id: str, payload: dict[str, Any]) -> Outcome:
        """Replace a message the webhook posted; classified like a post."""
        return await self._send("PATCH", message_url(url, message_id), edit_key(url), payload)

    async def _send(
        self, method: str, target: httpx.URL, key: str, payload: dict[str, Any]
    ) -> Outcome:
        started = time.perf_counter()
        try:
            response = await self._http.request(method, target, json=payload)
        except httpx.HTTPError as error:
            metrics.DISCORD_LATENCY.labels(outcome="network_error").observe(
                time.perf_counter() - started
            )
            return Transient(redact_text(f"{type(error).__name__}: {error}"))
        self.limiter.observe(key, response.headers)
        outcome = classify(response)
        metrics.DISCORD_LATENCY.labels(outcome=type(outcome).__name__.lower()).observe(
            time.perf_counter() - started
        )
        if isinstance(outcome, RateLimited):
            self.limiter.blocked(key, outcome.retry_after_s, is_global=outcome.is_global)
        return outcome
