"""Reading Discord's answers: 429 bodies and headers, rate-limit buckets, redaction."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from harness.fake_discord import FakeDiscord
from services.notifier.discord import (
    ConfigError,
    Delivered,
    DiscordClient,
    RateLimited,
    Rejected,
    Transient,
    classify,
    redact,
    redact_text,
)

MESSAGE = {"content": "hello", "allowed_mentions": {"parse": []}}


def test_429_retry_after_comes_from_the_body_then_the_header() -> None:
    body = httpx.Response(429, json={"retry_after": 1.5, "global": True, "message": "slow"})
    assert classify(body) == RateLimited(1.5, True)
    header = httpx.Response(429, headers={"Retry-After": "3"}, text="not json")
    assert classify(header) == RateLimited(3.0, False)


def test_status_codes_map_to_what_the_sender_does() -> None:
    assert classify(httpx.Response(200, json={"id": "9"})) == Delivered("9")
    assert classify(httpx.Response(502)) == Transient("HTTP 502")
    assert classify(
        httpx.Response(404, json={"message": "Unknown Webhook", "code": 10015})
    ) == ConfigError(404, 10015)
    assert classify(httpx.Response(401, json={"code": 50027})) == ConfigError(401, 50027)
    rejected = classify(httpx.Response(400, json={"code": 50035, "errors": {"content": {}}}))
    assert isinstance(rejected, Rejected)
    assert rejected.code == 50035


def test_webhook_urls_are_redacted_to_their_id() -> None:
    url = "https://discord.com/api/webhooks/123456/SeCrEt-ToKeN?wait=true"
    assert redact(url) == "discord-webhook:123456"
    assert "SeCrEt" not in redact_text(f"error while posting to {url}")
    assert redact(None) == "discord-webhook:none"


@pytest.mark.asyncio
async def test_client_waits_for_the_bucket_instead_of_meeting_429(
    fake_discord: FakeDiscord,
) -> None:
    client = DiscordClient(timeout_s=5)
    url = fake_discord.webhook_url()
    try:
        outcomes = []
        for _ in range(7):
            await client.wait_turn(url)
            outcomes.append(await client.post(url, MESSAGE))
        assert all(isinstance(outcome, Delivered) for outcome in outcomes)
        assert [r.status for r in fake_discord.requests()] == [200] * 7
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_a_429_blocks_the_webhook_for_retry_after(fake_discord: FakeDiscord) -> None:
    client = DiscordClient(timeout_s=5)
    url = fake_discord.webhook_url()
    try:
        fake_discord.fail("rate_limit", seconds=60, is_global=True, count=1, retry_after=0.5)
        outcome = await client.post(url, MESSAGE)
        assert isinstance(outcome, RateLimited)
        assert outcome.is_global
        assert 0 < client.limiter.delay_for(fake_discord.webhook_url("999")) <= 0.5
        await asyncio.wait_for(client.wait_turn(url), timeout=5)
        assert isinstance(await client.post(url, MESSAGE), Delivered)
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_dropped_connections_are_transient(fake_discord: FakeDiscord) -> None:
    client = DiscordClient(timeout_s=5)
    try:
        fake_discord.fail("drop", count=1)
        outcome = await client.post(fake_discord.webhook_url("1", "s3cr3t"), MESSAGE)
        assert isinstance(outcome, Transient)
        assert "s3cr3t" not in outcome.reason
    finally:
        await client.close()
