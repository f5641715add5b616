"""The fake Discord behaves like Discord where the notifier (and other tests) can tell."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from harness.fake_discord import FakeDiscord, validate_message
from harness.ports import free_port
from harness.services import REPO_ROOT


def test_limits_are_enforced_with_discords_error_shape(fake_discord: FakeDiscord) -> None:
    embed = {"title": "t" * 257, "fields": [{"name": "n", "value": "v" * 1025}] * 26}
    response = httpx.post(fake_discord.webhook_url(), json={"content": "x", "embeds": [embed]})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 50035
    assert body["message"] == "Invalid Form Body"
    errors = body["errors"]["embeds"]["0"]
    assert errors["title"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    assert "fields" in errors
    assert fake_discord.messages() == []


def test_total_embed_size_and_counts() -> None:
    six = [{"description": "d" * 1001}] * 6
    assert validate_message({"embeds": six})["embeds"]["_errors"][0]["code"] == (
        "MAX_EMBED_SIZE_EXCEEDED"
    )
    assert "embeds" in validate_message({"embeds": [{"title": "t"}] * 11})
    assert "content" in validate_message({"content": "c" * 2001})
    assert validate_message({"content": "c" * 2000, "embeds": [{"title": "t"}] * 10}) == {}


def test_wait_true_returns_the_message_and_rate_limit_headers(fake_discord: FakeDiscord) -> None:
    confirmed = httpx.post(
        fake_discord.webhook_url(), params={"wait": "true"}, json={"content": "a"}
    )
    assert confirmed.status_code == 200
    assert confirmed.json()["id"]
    assert confirmed.headers["x-ratelimit-remaining"] == "4"
    assert confirmed.headers["x-ratelimit-bucket"]
    assert httpx.post(fake_discord.webhook_url(), json={"content": "b"}).status_code == 204


def test_sixth_request_in_two_seconds_is_429(fake_discord: FakeDiscord) -> None:
    answers = [httpx.post(fake_discord.webhook_url(), json={"content": "x"}) for _ in range(6)]
    assert [a.status_code for a in answers] == [204] * 5 + [429]
    limited = answers[-1]
    assert 0 < limited.json()["retry_after"] <= 2
    assert limited.json()["global"] is False
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert int(limited.headers["retry-after"]) >= 1
    other = httpx.post(fake_discord.webhook_url("999"), json={"content": "x"})
    assert other.status_code == 204


def test_commanded_failures(fake_discord: FakeDiscord) -> None:
    url = fake_discord.webhook_url()
    fake_discord.fail("unknown_webhook", count=1)
    assert httpx.post(url, json={"content": "x"}).json() == {
        "message": "Unknown Webhook",
        "code": 10015,
    }
    fake_discord.fail("status", status=502, count=1)
    assert httpx.post(url, json={"content": "x"}).status_code == 502
    fake_discord.fail("drop", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(url, json={"content": "x"})
    assert httpx.post(url, json={"content": "x"}).status_code == 204
    assert [r.status for r in fake_discord.requests()] == [404, 502, 0, 204]


def test_runs_as_a_process_with_a_control_api() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.fake_discord", "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert process.stdout is not None
        assert "listening" in process.stdout.readline()
        fail = httpx.post(f"{base}/_control/fail", json={"mode": "rate_limit", "seconds": 30})
        assert fail.status_code == 204
        limited = httpx.post(f"{base}/api/webhooks/1/t", json={"content": "x"})
        assert limited.status_code == 429
        assert httpx.post(f"{base}/_control/reset").status_code == 204
        assert httpx.post(f"{base}/api/webhooks/1/t", json={"content": "y"}).status_code == 204
        messages = httpx.get(f"{base}/_control/messages").json()
        assert [m["content"] for m in messages] == ["y"]
        assert httpx.post(f"{base}/_control/fail", json={"mode": "nope"}).status_code == 400
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_edits_replace_a_message_within_the_limits_and_its_thread() -> None:
    with FakeDiscord(limit=50) as fake_discord:
        _edit_within_limits_and_thread(fake_discord)


def _edit_within_limits_and_thread(fake_discord: FakeDiscord) -> None:
    url = fake_discord.webhook_url("1", "t")
    posted = httpx.post(url, params={"wait": "true", "thread_id": "9"}, json={"content": "a"})
    message_id = posted.json()["id"]
    edit = f"{url}/messages/{message_id}"
    assert (
        httpx.patch(edit, params={"thread_id": "9"}, json={"content": "b"}).json()["content"] == "b"
    )
    too_long = httpx.patch(edit, params={"thread_id": "9"}, json={"content": "c" * 2001})
    assert too_long.status_code == 400
    assert too_long.json()["code"] == 50035
    emptied = httpx.patch(edit, params={"thread_id": "9"}, json={"content": ""})
    assert emptied.json()["code"] == 50006
    outside = httpx.patch(edit, json={"content": "d"})
    assert (outside.status_code, outside.json()["code"]) == (404, 10008)
    other_webhook = f"{fake_discord.webhook_url('2', 't')}/messages/{message_id}"
    assert httpx.patch(other_webhook, params={"thread_id": "9"}, json={}).status_code == 404
    (message,) = fake_discord.messages()
    assert (message["content"], message["edits"], message["thread_id"]) == ("b", 1, "9")
    assert message["edited_timestamp"]
    fake_discord.delete_message(message_id)
    gone = httpx.patch(edit, params={"thread_id": "9"}, json={"content": "e"})
    assert gone.json() == {"message": "Unknown Message", "code": 10008}
    assert [r.method for r in fake_discord.requests()] == ["POST"] + ["PATCH"] * 6


def test_edits_count_against_the_webhooks_rate_limit(fake_discord: FakeDiscord) -> None:
    url = fake_discord.webhook_url()
    message_id = httpx.post(url, params={"wait": "true"}, json={"content": "a"}).json()["id"]
    answers = [
        httpx.patch(f"{url}/messages/{message_id}", json={"content": str(n)}) for n in range(5)
    ]
    assert [a.status_code for a in answers] == [200] * 4 + [429]
