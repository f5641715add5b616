"""Messages respect Discord's limits by construction and never leave an alert out."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.alert_payloads import alert, fingerprints_posted, webhook
from harness.fake_discord import validate_message
from services.notifier import limits
from services.notifier.consoles import Consoles
from services.notifier.formatting import (
    Presentation,
    alert_messages,
    notification_message,
    plain_fallback,
)
from services.notifier.schemas import AlertmanagerWebhook, Mentions, Notification

PRESENTATION = Presentation(
    grafana_url="https://grafana.example.org/d/cv",
    mentions={"critical": Mentions(roles=("42",))},
)


def render(body: dict[str, Any], presentation: Presentation = PRESENTATION) -> list[Any]:
    parsed = AlertmanagerWebhook.model_validate(body)
    return alert_messages(parsed, [(a, a.identity()) for a in parsed.alerts], presentation)


def test_sixty_alerts_with_5000_character_annotations_fit_and_none_is_lost() -> None:
    huge = "x" * 5000
    alerts = [
        alert(fingerprint=f"fp{i:03}", summary=huge, description=huge, labels={"pod": huge})
        for i in range(60)
    ]
    messages = render(webhook(alerts))
    assert all(validate_message(m.payload) == {} for m in messages)
    posted = fingerprints_posted([m.payload for m in messages])
    assert sorted(posted) == [f"fp{i:03}" for i in range(60)]
    embed = messages[0].payload["embeds"][0]
    assert embed["description"].endswith(limits.MARKER)
    assert any(f["value"].endswith(limits.MARKER) for f in embed["fields"])
    assert [m.part for m in messages] == list(range(len(messages)))


def test_a_message_holds_at_most_ten_embeds() -> None:
    messages = render(webhook([alert(fingerprint=f"f{i}") for i in range(25)]))
    assert [len(m.payload["embeds"]) for m in messages] == [10, 10, 5]
    assert "part 1/3" in messages[0].payload["content"]


def test_embed_shows_status_colour_links_and_start_time() -> None:
    (message,) = render(webhook([alert(severity="critical")]))
    (embed,) = message.payload["embeds"]
    assert embed["title"] == "🔥 [FIRING] HighErrorRate"
    assert embed["color"] == 0xE74C3C
    assert embed["timestamp"] == "2026-11-28T22:00:00+00:00"
    assert embed["url"].startswith("http://prometheus:9090/graph")
    links = next(f["value"] for f in embed["fields"] if f["name"] == "Links")
    assert "[Grafana](https://grafana.example.org/d/cv)" in links
    assert "[Runbook](https://runbooks.example.org/#higherrorrate)" in links
    assert {"name": "job", "value": "inference", "inline": True} in embed["fields"]
    assert "**Too many errors**" in embed["description"]


def test_firing_and_resolved_alerts_of_a_group_share_its_message() -> None:
    (message,) = render(
        webhook([alert(fingerprint="a"), alert(fingerprint="b", status="resolved")])
    )
    payload = message.payload
    assert payload["content"].startswith("🚨 **FIRING** · 2 alerts (1 resolved)")
    firing, resolved = payload["embeds"]
    assert firing["color"] == 0xF39C12
    assert resolved["color"] == 0x2ECC71
    assert {"name": "Fired at", "value": "<t:1795903200:f>", "inline": True} in resolved["fields"]
    assert {"name": "Resolved at", "value": "<t:1795906800:f>", "inline": True} in resolved[
        "fields"
    ]
    assert not any(f["name"] == "Resolved at" for f in firing["fields"])


def test_only_firing_critical_mentions_the_role_and_nothing_else_can_ping() -> None:
    body = webhook(
        [
            alert(fingerprint="c", severity="critical", summary="@everyone look"),
            alert(fingerprint="w", severity="warning"),
        ]
    )
    critical, warning = render(body)
    assert critical.route == "critical"
    assert critical.payload["content"].startswith("<@&42> ")
    assert critical.payload["allowed_mentions"] == {"parse": [], "roles": ["42"]}
    assert warning.route == "warning"
    assert warning.payload["allowed_mentions"] == {"parse": []}
    (resolved,) = render(webhook([alert(fingerprint="r", severity="critical", status="resolved")]))
    assert resolved.payload["allowed_mentions"] == {"parse": []}
    assert "<@&" not in resolved.payload["content"]


def test_severities_ping_exactly_their_mentions_and_labels_never_ping() -> None:
    presentation = Presentation(
        mentions={
            "critical": Mentions(roles=("111", "222"), users=("333",)),
            "warning": Mentions(),
        }
    )
    hostile = {"owner": "@everyone", "team": "<@&999> @here"}
    body = webhook(
        [
            alert(fingerprint="c", severity="critical", summary="@everyone", labels=hostile),
            alert(fingerprint="w", severity="warning", labels=hostile),
            alert(fingerprint="i", severity="info", labels=hostile),
        ]
    )
    critical, warning, info = render(body, presentation)
    assert critical.payload["content"].startswith("<@&111> <@&222> <@333> 🚨 **FIRING**")
    assert critical.payload["allowed_mentions"] == {
        "parse": [],
        "roles": ["111", "222"],
        "users": ["333"],
    }
    for quiet in (warning, info):
        assert quiet.payload["allowed_mentions"] == {"parse": []}
        assert "<@" not in quiet.payload["content"]
    resolved = render(webhook([{**alert(severity="critical"), "status": "resolved"}]), presentation)
    assert resolved[0].payload["allowed_mentions"] == {"parse": []}
    paged = notification_message(Notification(title="t", level="critical"), presentation)
    assert paged.payload["content"] == "<@&111> <@&222> <@333>"
    assert paged.payload["allowed_mentions"]["users"] == ["333"]


def test_routes_match_labels_in_order_then_the_severity() -> None:
    presentation = Presentation(routes=("team=ml", "severity=critical"))
    assert presentation.route_of({"team": "ml", "severity": "critical"}) == "team=ml"
    assert presentation.route_of({"team": "web", "severity": "critical"}) == "severity=critical"
    assert presentation.route_of({"severity": "warning"}) == "warning"
    assert presentation.route_of({"severity": "info"}) == "default"


def test_a_part_keeps_room_for_its_alerts_to_resolve() -> None:
    big = "z" * 900
    alerts = [alert(fingerprint=f"f{i}", summary=big, description=big) for i in range(12)]
    firing = render(webhook(alerts))
    resolved = render(webhook([{**a, "status": "resolved"} for a in alerts]))
    assert [len(m.payload["embeds"]) for m in firing] == [
        len(m.payload["embeds"]) for m in resolved
    ]
    for message in resolved:
        assert validate_message(message.payload) == {}


def test_links_that_discord_would_refuse_are_left_out() -> None:
    bad = alert()
    bad["generatorURL"] = "javascript:alert(1)"
    (message,) = render(webhook([bad]))
    assert "url" not in message.payload["embeds"][0]
    assert validate_message(message.payload) == {}


def test_notification_levels_colour_and_truncate() -> None:
    message = notification_message(
        Notification(title="t" * 400, message="m" * 9000, level="critical"), PRESENTATION
    )
    assert validate_message(message.payload) == {}
    embed = message.payload["embeds"][0]
    assert embed["title"].endswith(limits.MARKER)
    assert len(embed["description"]) == limits.DESCRIPTION
    assert message.route == "critical"
    assert message.payload["allowed_mentions"] == {"parse": [], "roles": ["42"]}


def test_plain_fallback_is_valid_text_only() -> None:
    (message,) = render(webhook([alert(description="d" * 3000)]))
    fallback = plain_fallback(message.payload)
    assert fallback["embeds"] == []
    assert validate_message(fallback) == {}
    assert fallback["content"].startswith(message.payload["content"])
    assert "HighErrorRate" in fallback["content"]


def test_truncation_counts_utf16_and_never_splits_a_surrogate_pair() -> None:
    text = "🐱" * 3000
    cut = limits.truncate(text, limits.DESCRIPTION)
    assert limits.discord_len(cut) <= limits.DESCRIPTION
    assert cut.endswith(limits.MARKER)
    cut.encode("utf-8")  # raises on a lone surrogate


_text = st.text(max_size=6000)
_labels = st.dictionaries(st.text(min_size=1, max_size=300), st.text(max_size=2000), max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(_text, _text, _labels, st.sampled_from(["firing", "resolved"])),
        min_size=1,
        max_size=30,
    ),
    st.integers(min_value=64, max_value=4096),
)
def test_any_alert_group_gives_valid_messages_with_every_alert(
    specs: list[tuple[str, str, dict[str, str], str]], description_max: int
) -> None:
    alerts = [
        alert(
            fingerprint=f"fp{i}",
            summary=summary,
            description=description,
            labels=labels,
            status=status,
        )
        for i, (summary, description, labels, status) in enumerate(specs)
    ]
    presentation = Presentation(
        mentions={"critical": Mentions(roles=("7",)), "warning": Mentions(users=("8",))},
        description_max=description_max,
    )
    messages = render(webhook(alerts), presentation)
    for message in messages:
        assert validate_message(message.payload) == {}
        assert len(message.payload["embeds"]) <= limits.EMBEDS_PER_MESSAGE
    assert sorted(fingerprints_posted([m.payload for m in messages])) == sorted(
        f"fp{i}" for i in range(len(specs))
    )


def test_each_alert_links_its_graph_runbook_and_a_prefilled_silence() -> None:
    presentation = Presentation(
        prometheus_url="https://prometheus.example.org/prom/",
        alertmanager_url="https://alertmanager.example.org",
        runbook_base_url="https://git.example.org/cat-dog/-/blob/main/",
        consoles=Consoles(alertmanager_ui={"https://alertmanager.example.org": True}),
    )
    raw = alert(labels={"service": 'in"ference'})
    raw["annotations"]["runbook_url"] = "monitoring/runbook.md#higherrorrate"
    body = webhook([raw])
    body["groupLabels"] = {"alertname": "HighErrorRate", "service": 'in"ference'}
    (message,) = render(body, presentation)
    (embed,) = message.payload["embeds"]
    graph = "https://prometheus.example.org/prom/graph?g0.expr=up&alert=HighErrorRate"
    assert embed["url"] == graph
    links = next(f["value"] for f in embed["fields"] if f["name"] == "Links")
    assert f"[Graph]({graph})" in links
    assert "[Runbook](https://git.example.org/cat-dog/-/blob/main/monitoring/runbook.md#" in links
    silence = re.search(r"\[Silence\]\((?P<url>[^)]+)\)", links)
    assert silence
    page, _, query = silence["url"].partition("?filter=")
    assert page == "https://alertmanager.example.org/#/silences/new"
    assert unquote(query) == '{alertname="HighErrorRate",service="in\\"ference"}'
    assert validate_message(message.payload) == {}


def test_debian_builds_get_classic_pages_and_an_amtool_command() -> None:
    presentation = Presentation(
        prometheus_url="http://127.0.0.1:9090",
        alertmanager_url="http://127.0.0.1:9093/",
        consoles=Consoles(
            prometheus_pages={"http://127.0.0.1:9090": "http://127.0.0.1:9090/classic"},
            alertmanager_ui={"http://127.0.0.1:9093": False},
        ),
    )
    body = webhook([alert(labels={"service": "it's"})])
    body["groupLabels"] = {"alertname": "HighErrorRate", "service": "it's"}
    (message,) = render(body, presentation)
    (embed,) = message.payload["embeds"]
    assert embed["url"] == "http://127.0.0.1:9090/classic/graph?g0.expr=up&alert=HighErrorRate"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert "Silence" not in fields["Links"]
    assert fields["Silence"] == (
        "`amtool silence add --alertmanager.url=http://127.0.0.1:9093 --duration=2h "
        "'--comment=silenced from Discord' 'alertname=\"HighErrorRate\"' "
        "'service=\"it'\"'\"'s\"'`"
    )
    assert validate_message(message.payload) == {}


def test_without_public_addresses_the_links_are_alertmanagers_own() -> None:
    ui = Consoles(alertmanager_ui={"http://alertmanager:9093": True})
    (message,) = render(webhook([alert()]), Presentation(consoles=ui))
    (embed,) = message.payload["embeds"]
    assert embed["url"] == "http://prometheus:9090/graph?g0.expr=up&alert=HighErrorRate"
    links = next(f["value"] for f in embed["fields"] if f["name"] == "Links")
    assert "[Silence](http://alertmanager:9093/#/silences/new?filter=%7Balertname%3D%22" in links
