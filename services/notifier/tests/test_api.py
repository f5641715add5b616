"""The HTTP side: authentication, queueing, de-duplication, routing, 503 when not queued."""

from __future__ import annotations

import json

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import SecretStr

from harness.alert_payloads import alert, fingerprints_posted, webhook
from harness.fake_discord import FakeDiscord
from services.notifier.app import create_app
from services.notifier.schemas import Mentions
from services.notifier.settings import Settings
from services.notifier.tests.conftest import TOKEN, WEBHOOK_TOKEN, collect_logs


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("route", ["/alertmanager", "/notify"])
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer "])
def test_inbound_routes_refuse_a_missing_or_wrong_token(
    client: TestClient, db: psycopg.Connection, route: str, header: str | None
) -> None:
    body = webhook([alert()]) if route == "/alertmanager" else {"title": "t", "message": "m"}
    headers = {"Authorization": header} if header else {}
    client.headers.pop("Authorization")
    response = client.post(route, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in response.text
    assert db.execute("SELECT count(*) FROM notifier_outbox").fetchone() == (0,)


@pytest.mark.parametrize("route", ["/alertmanager", "/notify"])
def test_token_is_checked_before_the_body_is_even_parsed(client: TestClient, route: str) -> None:
    client.headers.pop("Authorization")
    assert client.post(route, json={"nonsense": True}).status_code == 401
    # Parsing would have answered 422: the body was never read.
    headers = {"Authorization": "Bearer wrong", "Content-Type": "application/json"}
    assert client.post(route, content=b"{not json", headers=headers).status_code == 401


def test_failed_tokens_are_throttled_per_client(client: TestClient) -> None:
    right = dict(client.headers)
    client.headers.pop("Authorization")
    statuses = [client.post("/notify", content=b"{}").status_code for _ in range(25)]
    assert statuses == [401] * 20 + [429] * 5
    refused = client.post("/notify", json={"title": "t"}, headers=right)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0


def test_notification_is_queued_then_posted_confirmed(
    client: TestClient, fake_discord: FakeDiscord, db: psycopg.Connection
) -> None:
    delivered_before = _metric("cv_notifier_messages_delivered_total")
    response = client.post(
        "/notify", json={"title": "Deployed", "message": "v2", "level": "success"}
    )
    assert response.status_code == 202
    assert response.json() == {"status": "queued", "messages": 1, "duplicates": 0}
    (message,) = fake_discord.wait_for_messages(1)
    assert message["embeds"][0]["title"] == "✅ Deployed"
    assert message["embeds"][0]["color"] == 0x2ECC71
    assert message["allowed_mentions"] == {"parse": []}
    assert all(request.wait for request in fake_discord.requests())
    fake_discord.wait_until(
        lambda _: (
            db.execute("SELECT state, discord_message_id FROM notifier_outbox").fetchall()
            == [("delivered", message["id"])]
        )
    )
    assert _metric("cv_notifier_messages_delivered_total") == delivered_before + 1


def test_invalid_notification_is_422(client: TestClient) -> None:
    response = client.post("/notify", json={"title": "t", "level": "apocalyptic"})
    assert response.status_code == 422
    assert "level" in response.json()["detail"]


def test_alertmanager_payload_with_unknown_fields_is_accepted(
    client: TestClient, fake_discord: FakeDiscord
) -> None:
    body = webhook([alert(fingerprint=f"f{i}") for i in range(3)])
    body["futureField"] = {"anything": 1}
    body["alerts"][0]["silencedBy"] = ["x"]
    response = client.post("/alertmanager", json=body)
    assert response.status_code == 202
    assert response.json()["messages"] == 1
    (message,) = fake_discord.wait_for_messages(1)
    assert sorted(fingerprints_posted([message])) == ["f0", "f1", "f2"]


def _settled(db: psycopg.Connection) -> bool:
    pending = db.execute("SELECT count(*) FROM notifier_outbox WHERE state = 'pending'")
    return pending.fetchone() == (0,)


def test_a_retried_webhook_is_not_posted_twice(
    client: TestClient, fake_discord: FakeDiscord, db: psycopg.Connection
) -> None:
    body = webhook([alert(fingerprint="a"), alert(fingerprint="b")])
    assert client.post("/alertmanager", json=body).json()["messages"] == 1
    again = client.post("/alertmanager", json=body).json()
    assert again == {"status": "queued", "messages": 0, "duplicates": 2}
    fake_discord.wait_for_messages(1)
    fake_discord.wait_until(lambda _: _settled(db))
    assert [r.method for r in fake_discord.requests()] == ["POST"]


def test_a_group_is_one_message_edited_as_its_alerts_resolve(
    client: TestClient, fake_discord: FakeDiscord, db: psycopg.Connection
) -> None:
    edited_before = _metric("cv_notifier_messages_edited_total")
    firing = webhook([alert(fingerprint="a"), alert(fingerprint="b")])
    assert client.post("/alertmanager", json=firing).json()["messages"] == 1
    (posted,) = fake_discord.wait_for_messages(1)
    fake_discord.wait_until(lambda _: _settled(db))
    assert "FIRING" in posted["content"]
    one_resolved = webhook([alert(fingerprint="a", status="resolved"), alert(fingerprint="b")])
    assert client.post("/alertmanager", json=one_resolved).json()["messages"] == 1
    fake_discord.wait_until(lambda fake: fake.messages()[0]["edits"] == 1)
    (message,) = fake_discord.messages()
    assert "(1 resolved)" in message["content"]
    assert [embed["color"] for embed in message["embeds"]] == [0x2ECC71, 0xF39C12]
    both = webhook([alert(fingerprint="b", status="resolved")])
    assert client.post("/alertmanager", json=both).json()["messages"] == 1
    fake_discord.wait_until(lambda fake: fake.messages()[0]["edits"] == 2)
    fake_discord.wait_until(lambda _: _settled(db))
    (message,) = fake_discord.messages()
    assert message["id"] == posted["id"]
    assert message["content"].startswith("✅ **RESOLVED** · 2 alerts")
    assert fingerprints_posted([message]) == ["a", "b"]
    for embed in message["embeds"]:
        assert embed["color"] == 0x2ECC71
        names = [field["name"] for field in embed["fields"]]
        assert "Fired at" in names
        assert "Resolved at" in names
    assert [r.method for r in fake_discord.requests()] == ["POST", "PATCH", "PATCH"]
    assert _metric("cv_notifier_messages_edited_total") == edited_before + 2
    fired_again = webhook([alert(fingerprint="a", starts_at="2026-11-29T08:00:00Z")])
    assert client.post("/alertmanager", json=fired_again).json()["messages"] == 1
    new = fake_discord.wait_for_messages(2)[1]
    assert new["id"] != posted["id"]
    assert "FIRING" in new["content"]
    assert fingerprints_posted([new]) == ["a"]


def test_an_edit_that_fails_is_retried_as_an_edit_never_a_second_post(
    client: TestClient, fake_discord: FakeDiscord, db: psycopg.Connection
) -> None:
    assert client.post("/alertmanager", json=webhook([alert(fingerprint="a")])).status_code == 202
    fake_discord.wait_for_messages(1)
    fake_discord.wait_until(lambda _: _settled(db))
    fake_discord.fail("status", seconds=30, status=503, count=3)
    resolved = webhook([alert(fingerprint="a", status="resolved")])
    assert client.post("/alertmanager", json=resolved).json()["messages"] == 1
    fake_discord.wait_until(lambda fake: fake.messages()[0]["edits"] == 1)
    fake_discord.wait_until(lambda _: _settled(db))
    assert len(fake_discord.messages()) == 1
    assert [(r.method, r.status) for r in fake_discord.requests()] == [
        ("POST", 200),
        *[("PATCH", 503)] * 3,
        ("PATCH", 200),
    ]


def test_a_message_deleted_in_discord_is_posted_anew(
    client: TestClient, fake_discord: FakeDiscord, db: psycopg.Connection
) -> None:
    before = _metric("cv_notifier_messages_retried_total", reason="unknown_message")
    assert client.post("/alertmanager", json=webhook([alert(fingerprint="a")])).status_code == 202
    (first,) = fake_discord.wait_for_messages(1)
    fake_discord.wait_until(lambda _: _settled(db))
    fake_discord.delete_message(first["id"])
    resolved = webhook([alert(fingerprint="a", status="resolved")])
    assert client.post("/alertmanager", json=resolved).json()["messages"] == 1
    (again,) = fake_discord.wait_for_messages(1)
    fake_discord.wait_until(lambda _: _settled(db))
    assert again["id"] != first["id"]
    # The group did reach Discord: it comes back whole, not as a stale summary.
    assert again["content"].startswith("✅ **RESOLVED** · 1 alert")
    assert fingerprints_posted([again]) == ["a"]
    statuses = [(r.method, r.status) for r in fake_discord.requests()]
    assert statuses == [("POST", 200), ("PATCH", 404), ("POST", 200)]
    assert _metric("cv_notifier_messages_retried_total", reason="unknown_message") == before + 1
    # The part now lives in the new message: the next change edits that one.
    stored = db.execute("SELECT message_id FROM notifier_episode_messages").fetchall()
    assert stored == [(again["id"],)]


def test_edits_in_a_thread_stay_in_the_thread(
    notifier_settings: Settings, fake_discord: FakeDiscord, db: psycopg.Connection
) -> None:
    thread_url = fake_discord.webhook_url("333", WEBHOOK_TOKEN) + "?thread_id=555"
    settings = notifier_settings.model_copy(update={"discord_webhook_url": SecretStr(thread_url)})
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        client.post("/alertmanager", json=webhook([alert(fingerprint="a")]))
        fake_discord.wait_for_messages(1)
        fake_discord.wait_until(lambda _: _settled(db))
        client.post("/alertmanager", json=webhook([alert(fingerprint="a", status="resolved")]))
        fake_discord.wait_until(lambda fake: fake.messages()[0]["edits"] == 1)
    assert [(r.method, r.thread_id, r.status) for r in fake_discord.requests()] == [
        ("POST", "555", 200),
        ("PATCH", "555", 200),
    ]


def test_a_notification_with_a_dedup_key_is_posted_once(
    client: TestClient, fake_discord: FakeDiscord
) -> None:
    body = {"title": "Model v3 live", "message": "", "dedup_key": "deploy-v3"}
    assert client.post("/notify", json=body).json()["messages"] == 1
    assert client.post("/notify", json=body).json()["duplicates"] == 1
    assert client.post("/notify", json={"title": "after"}).json()["messages"] == 1
    messages = fake_discord.wait_for_messages(2)
    assert [m["embeds"][0]["title"] for m in messages] == ["ℹ️ Model v3 live", "ℹ️ after"]


def test_changes_of_a_group_are_applied_in_order(
    client: TestClient, fake_discord: FakeDiscord, db: psycopg.Connection
) -> None:
    for number in range(8):
        body = webhook([alert(fingerprint=f"n{number}", starts_at=f"2026-11-28T22:0{number}:00Z")])
        assert client.post("/alertmanager", json=body).status_code == 202
    fake_discord.wait_for_messages(1)
    fake_discord.wait_until(lambda _: _settled(db))
    (message,) = fake_discord.messages()
    assert fingerprints_posted([message]) == [f"n{number}" for number in range(8)]
    assert [r.method for r in fake_discord.requests()].count("POST") == 1


def test_critical_goes_to_its_webhook_and_mentions_only_the_role(
    notifier_settings: Settings, fake_discord: FakeDiscord
) -> None:
    settings = notifier_settings.model_copy(
        update={
            "discord_webhook_url_critical": SecretStr(fake_discord.webhook_url("222", "crit")),
            "discord_critical_role_id": "987654321",
        }
    )
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        body = webhook(
            [alert(fingerprint="c", severity="critical"), alert(fingerprint="i", severity="info")]
        )
        assert client.post("/alertmanager", json=body).json()["messages"] == 2
        fake_discord.wait_for_messages(2)
    (critical,) = fake_discord.messages("222")
    (info,) = fake_discord.messages("111")
    assert critical["content"].startswith("<@&987654321> ")
    assert critical["allowed_mentions"] == {"parse": [], "roles": ["987654321"]}
    assert info["allowed_mentions"] == {"parse": []}


def test_database_down_answers_503_with_retry_after(fake_discord: FakeDiscord) -> None:
    settings = Settings(
        database_url="postgresql://postgres@127.0.0.1:1/nowhere",
        discord_webhook_url=SecretStr(fake_discord.webhook_url()),
        notifier_token=SecretStr(TOKEN),
        db_connect_timeout_s=0.5,
    )
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        for route, body in [
            ("/alertmanager", webhook([alert()])),
            ("/notify", {"title": "t", "message": "m"}),
        ]:
            response = client.post(route, json=body)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "5"
            assert "could not be queued" in response.json()["detail"]
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["database"] == "down"
        assert "cv_database_connected 0.0" in client.get("/metrics").text


def test_disabled_mode_logs_instead_of_sending(database_url: str, db: psycopg.Connection) -> None:
    settings = Settings(database_url=database_url, notifier_token=SecretStr(TOKEN))
    assert not settings.enabled
    app = create_app(settings)
    with collect_logs() as logs, TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        assert client.post("/notify", json={"title": "quiet please"}).status_code == 202
        assert client.get("/ready").json()["discord"] == "disabled"
        with FakeDiscord() as fake:  # only used for its polling helper
            fake.wait_until(
                lambda _: (
                    db.execute("SELECT state FROM notifier_outbox").fetchall() == [("delivered",)]
                )
            )
    assert any("logged instead of sent" in line and "quiet please" in line for line in logs)


def test_token_is_required_outside_dev_mode() -> None:
    with pytest.raises(ValueError, match="NOTIFIER_TOKEN"):
        Settings(notifier_token=None, dev_mode=False)
    with pytest.raises(ValueError, match="NOTIFIER_TOKEN"):
        Settings(notifier_token=SecretStr("changeme"), dev_mode=False)
    assert Settings(notifier_token=None, dev_mode=True).notifier_token is not None


def test_secrets_never_reach_logs_metrics_or_bodies(
    notifier_settings: Settings, fake_discord: FakeDiscord
) -> None:
    app = create_app(notifier_settings)
    with collect_logs() as logs, TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        _exercise_every_failure(client, fake_discord)
        unauthorised = client.post("/notify", json={"t": 1}, headers={"Authorization": "Bearer x"})
        everything = "\n".join(
            [*logs, client.get("/metrics").text, client.get("/ready").text, unauthorised.text]
        )
    assert "discord-webhook:111" in everything
    assert "Discord refuses the configured webhook" in everything
    assert WEBHOOK_TOKEN not in everything
    assert TOKEN not in everything


def _exercise_every_failure(client: TestClient, fake_discord: FakeDiscord) -> None:
    fake_discord.fail("status", seconds=30, status=503, count=2)
    assert client.post("/notify", json={"title": "one"}).status_code == 202
    fake_discord.wait_for_messages(1)
    fake_discord.fail("unknown_webhook", seconds=30, count=1)
    assert client.post("/notify", json={"title": "two"}).status_code == 202
    fake_discord.wait_for_messages(2)
    fake_discord.fail("drop", seconds=30, count=1)
    assert client.post("/notify", json={"title": "three"}).status_code == 202
    fake_discord.wait_for_messages(3)


@pytest.mark.slow
def test_sixty_alerts_of_5000_characters_reach_discord_none_rejected(
    client: TestClient, fake_discord: FakeDiscord, db: psycopg.Connection
) -> None:
    huge = "y" * 5000
    alerts = [alert(fingerprint=f"big{i:02}", summary=huge, description=huge) for i in range(60)]
    queued = client.post("/alertmanager", json=webhook(alerts)).json()["messages"]
    assert queued > 1
    fake_discord.wait_until(
        lambda _: (
            db.execute("SELECT count(*) FROM notifier_outbox WHERE state <> 'delivered'").fetchone()
            == (0,)
        ),
        timeout_s=120,
    )
    assert len(fake_discord.messages()) == queued
    assert {r.status for r in fake_discord.requests()} == {200}
    assert sorted(fingerprints_posted(fake_discord.messages())) == [f"big{i:02}" for i in range(60)]


def test_unknown_webhook_keeps_messages_reports_and_recovers(
    client: TestClient, fake_discord: FakeDiscord, db: psycopg.Connection
) -> None:
    before = _metric(
        "cv_notifier_delivery_attempts_total", outcome="config_error", discord_code="10015"
    )
    fake_discord.fail("unknown_webhook", seconds=600)
    assert client.post("/notify", json={"title": "kept"}).status_code == 202
    fake_discord.wait_until(
        lambda _: (
            _metric(
                "cv_notifier_delivery_attempts_total", outcome="config_error", discord_code="10015"
            )
            > before
        )
    )
    assert client.get("/ready").json()["discord"] == "misconfigured"
    assert db.execute("SELECT state, failures > 0 FROM notifier_outbox").fetchall() == [
        ("pending", True)
    ]
    fake_discord.wait_until(lambda _: "cv_notifier_queue_depth 1.0" in client.get("/metrics").text)
    fake_discord.heal()
    (message,) = fake_discord.wait_for_messages(1)
    assert message["embeds"][0]["title"] == "ℹ️ kept"
    fake_discord.wait_until(lambda _: client.get("/ready").json()["discord"] == "ok")


def test_a_payload_discord_refuses_is_resent_as_plain_text(
    client: TestClient, fake_discord: FakeDiscord, db: psycopg.Connection
) -> None:
    refused = {"content": "c" * 2500, "embeds": [{"title": "t" * 300}]}
    db.execute(
        "INSERT INTO notifier_outbox (group_key, route, source, payload) "
        "VALUES ('g', 'default', 'test', %s::jsonb)",
        (json.dumps(refused),),
    )
    client.post("/notify", json={"title": "wake up"})
    fake_discord.wait_for_messages(2)
    statuses = [r.status for r in fake_discord.requests()]
    assert statuses.count(400) == 1
    plain = next(m for m in fake_discord.messages() if not m["embeds"])
    assert plain["content"].startswith("c" * 100)
    assert plain["content"].endswith("…")
    fake_discord.wait_until(
        lambda _: (
            db.execute("SELECT count(*) FROM notifier_outbox WHERE state = 'delivered'").fetchone()
            == (2,)
        )
    )


def test_a_thread_webhook_posts_into_its_thread(
    notifier_settings: Settings, fake_discord: FakeDiscord
) -> None:
    thread_url = fake_discord.webhook_url("333", WEBHOOK_TOKEN) + "?thread_id=777000111"
    settings = notifier_settings.model_copy(update={"discord_webhook_url": SecretStr(thread_url)})
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        assert client.post("/notify", json={"title": "in the thread"}).status_code == 202
        (message,) = fake_discord.wait_for_messages(1)
    assert message["thread_id"] == "777000111"
    assert [(r.thread_id, r.wait) for r in fake_discord.requests()] == [("777000111", True)]


def test_routes_send_by_team_or_severity_each_webhook_in_its_own_order(
    notifier_settings: Settings, fake_discord: FakeDiscord, db: psycopg.Connection
) -> None:
    settings = notifier_settings.model_copy(
        update={
            "routes": {
                "team=ml": SecretStr(fake_discord.webhook_url("222", "ml")),
                "severity=critical": SecretStr(fake_discord.webhook_url("333", "oncall")),
            },
            "mentions": {"critical": Mentions(roles=("55",))},
        }
    )
    fake_discord.fail("status", seconds=600, status=503, webhook_id="222")
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        body = webhook(
            [
                alert(fingerprint="ml", labels={"team": "ml"}),
                alert(fingerprint="crit", severity="critical", labels={"team": "web"}),
                alert(fingerprint="info", severity="info"),
            ]
        )
        assert client.post("/alertmanager", json=body).json()["messages"] == 3
        # The ml channel refuses everything; the others are not held back behind it.
        fake_discord.wait_until(
            lambda fake: (
                len(fake.messages()) == 2
                and sum(r.webhook_id == "222" and r.status == 503 for r in fake.requests()) >= 2
            )
        )
        assert fake_discord.messages("222") == []
        fake_discord.heal()
        fake_discord.wait_until(lambda fake: len(fake.messages("222")) == 1)
        fake_discord.wait_until(lambda _: _settled(db))
    assert fingerprints_posted(fake_discord.messages("222")) == ["ml"]
    (critical,) = fake_discord.messages("333")
    assert fingerprints_posted([critical]) == ["crit"]
    assert critical["content"].startswith("<@&55> ")
    assert critical["allowed_mentions"] == {"parse": [], "roles": ["55"]}
    assert fingerprints_posted(fake_discord.messages("111")) == ["info"]
    routes = {row[0] for row in db.execute("SELECT route FROM notifier_outbox").fetchall()}
    assert routes == {"team=ml", "severity=critical", "default"}
    stored = json.dumps(db.execute("SELECT route, payload FROM notifier_outbox").fetchall())
    assert "oncall" not in stored


def test_routes_and_mentions_are_read_as_json_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DISCORD_WEBHOOK_ROUTES", '{"team=ml": "https://discord.example/w/1/x"}')
    monkeypatch.setenv("DISCORD_MENTIONS", '{"critical": {"roles": ["12"], "users": ["34"]}}')
    settings = Settings(notifier_token=SecretStr(TOKEN))
    assert settings.webhook_for("team=ml") == "https://discord.example/w/1/x"
    assert settings.mentions_by_severity()["critical"] == Mentions(roles=("12",), users=("34",))
    monkeypatch.setenv("DISCORD_WEBHOOK_ROUTES", "")
    assert Settings(notifier_token=SecretStr(TOKEN)).routes == {}
    with pytest.raises(ValueError, match="label=value"):
        Settings(notifier_token=SecretStr(TOKEN), routes={"ml": "https://x"})
    with pytest.raises(ValueError, match="roles"):
        Settings(notifier_token=SecretStr(TOKEN), mentions={"critical": {"roles": ["@everyone"]}})


def test_a_group_resolved_during_an_outage_is_one_line_naming_each_alert(
    client: TestClient, fake_discord: FakeDiscord, db: psycopg.Connection
) -> None:
    before = _metric("cv_notifier_messages_collapsed_total", reason="resolved_unsent")
    fake_discord.fail("status", seconds=600, status=503)
    pair = [
        alert(fingerprint="a", labels={"pod": "p1"}),
        alert(fingerprint="b", labels={"pod": "p2"}),
    ]
    assert client.post("/alertmanager", json=webhook(pair)).status_code == 202
    fake_discord.wait_until(lambda fake: len(fake.requests()) >= 1)
    resolved = webhook(
        [{**a, "status": "resolved", "endsAt": "2026-11-28T23:00:00Z"} for a in pair]
    )
    assert client.post("/alertmanager", json=resolved).json()["messages"] == 1
    other = webhook([alert("DiskFull", "c")], group_key='{}:{alertname="DiskFull"}')
    assert client.post("/alertmanager", json=other).status_code == 202
    fake_discord.heal()
    fake_discord.wait_for_messages(2)
    fake_discord.wait_until(lambda _: _settled(db))
    # Two groups: each in its own order, not one after the other.
    firing, summary = sorted(fake_discord.messages(), key=lambda m: bool(m["embeds"]) is False)
    assert summary["content"].startswith(
        "✅ **RESOLVED** before it could be posted · 2 alerts · alertname=HighErrorRate: "
    )
    assert (
        "HighErrorRate (job=inference, pod=p1) <t:1795903200:f> → <t:1795906800:f>"
        in (summary["content"])
    )
    assert "HighErrorRate (job=inference, pod=p2)" in summary["content"]
    assert summary["embeds"] == []
    assert summary["allowed_mentions"] == {"parse": []}
    assert fingerprints_posted([firing]) == ["c"]
    assert len(fake_discord.messages()) == 2
    assert [r.status for r in fake_discord.requests()].count(200) == 2
    states = db.execute("SELECT state, count(*) FROM notifier_outbox GROUP BY 1 ORDER BY 1")
    assert states.fetchall() == [("collapsed", 1), ("delivered", 2)]
    assert _metric("cv_notifier_messages_collapsed_total", reason="resolved_unsent") == before + 2


def test_edits_queued_during_an_outage_send_only_the_latest(
    client: TestClient, fake_discord: FakeDiscord, db: psycopg.Connection
) -> None:
    before = _metric("cv_notifier_messages_collapsed_total", reason="superseded")
    assert client.post("/alertmanager", json=webhook([alert(fingerprint="a")])).status_code == 202
    fake_discord.wait_for_messages(1)
    fake_discord.wait_until(lambda _: _settled(db))
    fake_discord.fail("status", seconds=600, status=503)
    for fingerprints in (["a", "b"], ["a", "b", "c"]):
        body = webhook([alert(fingerprint=f) for f in fingerprints])
        assert client.post("/alertmanager", json=body).json()["messages"] == 1
    fake_discord.wait_until(lambda fake: any(r.status == 503 for r in fake.requests()))
    gone = webhook([alert(fingerprint="a", status="resolved")])
    assert client.post("/alertmanager", json=gone).json()["messages"] == 1
    fake_discord.heal()
    fake_discord.wait_until(lambda fake: fake.messages()[0]["edits"] == 1)
    fake_discord.wait_until(lambda _: _settled(db))
    (message,) = fake_discord.messages()
    assert fingerprints_posted([message]) == ["a", "b", "c"]
    assert "(1 resolved)" in message["content"]
    patches = [r.status for r in fake_discord.requests() if r.method == "PATCH"]
    assert patches.count(200) == 1
    assert _metric("cv_notifier_messages_collapsed_total", reason="superseded") == before + 2
