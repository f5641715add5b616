"""Alerts and notifications turned into Discord messages that respect every limit by construction.

One embed per alert; an alert group is one living message (see `episodes.py`), in as many
parts as the limits require, so an alert is shortened (with a visible "…") but never left out.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from services.notifier import limits
from services.notifier.consoles import Consoles
from services.notifier.episodes import Episode
from services.notifier.limits import truncate
from services.notifier.priority import lane_of, most_urgent
from services.notifier.schemas import (
    AlertmanagerAlert,
    AlertmanagerWebhook,
    Mentions,
    Notification,
)

COLOURS = {
    "critical": 0xE74C3C,
    "error": 0xE74C3C,
    "warning": 0xF39C12,
    "info": 0x3498DB,
    "success": 0x2ECC71,
}
RESOLVED_COLOUR = 0x2ECC71
UNKNOWN_COLOUR = 0x95A5A6
EMOJI = {"critical": "🔥", "error": "❌", "warning": "⚠️", "info": "ℹ️", "success": "✅"}
# Labels already shown elsewhere in the embed, or that only describe the monitoring stack.
HIDDEN_LABELS = frozenset({"alertname", "severity", "__name__", "prometheus", "monitor", "replica"})
MAX_LABEL_FIELDS = 10
LABEL_NAME_MAX = 64
LABEL_VALUE_MAX = 256
# Ten alerts of a part, named in one summary line, fit Discord's 2000-character content.
SUMMARY_NAME_MAX = 150
FOOTER_MAX = 256
# The smallest description kept when an embed must shrink to fit 6000 characters.
MIN_DESCRIPTION = 64
# Alertmanager's "no end time yet".
_ZERO_TIME_YEAR = 1


@dataclass(frozen=True)
class Presentation:
    """Choices that do not come from the alert itself."""

    grafana_url: str | None = None
    # Alert rules carry a runbook path relative to the repository (one place to change the
    # host, as the kubernetes-mixin does); Discord only shows absolute http(s) links.
    runbook_base_url: str | None = None
    # Severity (a notification's level) -> who it pings; only `content` can ping in Discord.
    mentions: Mapping[str, Mentions] = field(default_factory=dict)
    # Route names "label=value" in the order they are tried (their webhooks are settings).
    routes: tuple[str, ...] = ()
    description_max: int = 1024
    # Public addresses for links; Alertmanager's own externalURL when its is unset.
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    # What the tools at those addresses serve (see `consoles.py`).
    consoles: Consoles = field(default_factory=Consoles)

    def mentions_for(self, severities: Iterable[str]) -> Mentions:
        """Everyone the given severities ping, each once."""
        found = Mentions()
        for severity in dict.fromkeys(severities):
            found = found | self.mentions.get(severity, Mentions())
        return found

    def route_of(self, labels: Mapping[str, str]) -> str:
        """The first configured route whose label matches, else the severity's route."""
        for route in self.routes:
            name, _, value = route.partition("=")
            if labels.get(name) == value:
                return route
        return route_for(labels.get("severity", "none"))


@dataclass
class OutboundMessage:
    """One Discord message to queue, the webhook route that should carry it, and which part
    of its episode's living message it renders (None: a message of its own)."""

    route: str
    payload: dict[str, Any]
    dedup_keys: list[str] = field(default_factory=list)
    part: int | None = None
    # The severity lane it is delivered in (see `priority.py`).
    lane: str = "info"


def route_for(severity: str) -> str:
    """Which webhook carries a severity: critical and warning may have their own channels."""
    return severity if severity in {"critical", "warning"} else "default"


def safe_url(url: str | None) -> str | None:
    """The URL when Discord would accept it as a link (http or https), else None."""
    if not url or len(url) > 2048:
        return None
    parts = urlsplit(url)
    return url if parts.scheme in {"http", "https"} and parts.netloc else None


def markdown_link(label: str, url: str) -> str:
    """A `[label](url)` link whose URL cannot end the Markdown early."""
    return f"[{label}]({quote(url, safe=':/?#[]@!$&*+,;=%~.-_')})"


def allowed_mentions(mentions: Mentions) -> dict[str, Any]:
    """Explicit: nothing is pinged but exactly these roles and users (never @everyone/@here,
    whatever an alert's text says)."""
    allowed: dict[str, Any] = {"parse": []}
    if mentions.roles:
        allowed["roles"] = list(mentions.roles)
    if mentions.users:
        allowed["users"] = list(mentions.users)
    return allowed


def mention_text(mentions: Mentions) -> str:
    """The mentions as `content` writes them."""
    return " ".join([*(f"<@&{r}>" for r in mentions.roles), *(f"<@{u}>" for u in mentions.users)])


def _timestamp(moment: datetime | None) -> str | None:
    if moment is None or moment.year == _ZERO_TIME_YEAR:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def discord_time(moment: datetime | None) -> str | None:
    """A moment as Discord shows it, in each reader's own time zone (`<t:…:f>`)."""
    if moment is None or moment.year == _ZERO_TIME_YEAR:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"<t:{int(moment.timestamp())}:f>"


def _label_fields(labels: dict[str, str]) -> list[dict[str, Any]]:
    shown = [(k, v) for k, v in sorted(labels.items()) if k not in HIDDEN_LABELS]
    fields = [
        {
            "name": truncate(name.strip() or "(unnamed)", LABEL_NAME_MAX),
            "value": truncate(value.strip() or "(empty)", LABEL_VALUE_MAX),
            "inline": True,
        }
        for name, value in shown[:MAX_LABEL_FIELDS]
    ]
    rest = shown[MAX_LABEL_FIELDS:]
    if rest:
        others = ", ".join(f"{name}={value}" for name, value in rest)
        fields.append(
            {"name": "Other labels", "value": truncate(others, limits.FIELD_VALUE), "inline": False}
        )
    return fields


def runbook_link(runbook_url: str | None, base_url: str | None) -> str | None:
    """The runbook's absolute URL: as given when absolute, else resolved against the base."""
    if not runbook_url:
        return None
    if base_url and not urlsplit(runbook_url).scheme:
        runbook_url = urljoin(base_url.rstrip("/") + "/", runbook_url.lstrip("/"))
    return safe_url(runbook_url)


def prometheus_base(generator_url: str, public_base: str | None) -> str | None:
    """The Prometheus an alert links to: the public base when one is configured (Prometheus
    names itself by an address inside the cluster, or its host name), else the generatorURL's."""
    if public_base:
        return public_base.rstrip("/")
    url = safe_url(generator_url)
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/').rsplit('/', 1)[0]}"


def graph_link(
    generator_url: str, public_base: str | None, pages: Mapping[str, str] | None = None
) -> str | None:
    """The graph of the alert's expression: Prometheus's generatorURL, its query kept, on the
    Prometheus `prometheus_base` names, under the root its UI pages have there (`pages`)."""
    url = safe_url(generator_url)
    base = prometheus_base(generator_url, public_base)
    if url is None or base is None:
        return None
    parts = urlsplit(url)
    page = parts.path.rstrip("/").rsplit("/", 1)[-1] or "graph"
    root = (pages or {}).get(base, base)
    return safe_url(f"{root}/{page}" + (f"?{parts.query}" if parts.query else ""))


def _matcher_value(value: str) -> str:
    """A label value as an Alertmanager matcher writes it: double-quoted, escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def silence_link(matchers: Mapping[str, str], alertmanager_url: str | None) -> str | None:
    """Alertmanager's "new silence" page, prefilled with these label matchers."""
    if not alertmanager_url or not matchers:
        return None
    quoted = ",".join(f"{name}={_matcher_value(value)}" for name, value in sorted(matchers.items()))
    prefilled = quote("{" + quoted + "}", safe="")
    return safe_url(f"{alertmanager_url.rstrip('/')}/#/silences/new?filter={prefilled}")


def silence_command(matchers: Mapping[str, str], alertmanager_url: str | None) -> str | None:
    """The `amtool` command that silences these matchers for two hours, quoted for a shell:
    what works where Alertmanager has no web application."""
    if not alertmanager_url or not matchers:
        return None
    argv = [
        "amtool",
        "silence",
        "add",
        f"--alertmanager.url={alertmanager_url.rstrip('/')}",
        "--duration=2h",
        "--comment=silenced from Discord",
        *(f"{name}={_matcher_value(value)}" for name, value in sorted(matchers.items())),
    ]
    return " ".join(shlex.quote(part) for part in argv)


def _links(alert: AlertmanagerAlert, presentation: Presentation, silence: str | None) -> str:
    candidates = [
        (
            "Graph",
            graph_link(
                alert.generator_url,
                presentation.prometheus_url,
                presentation.consoles.prometheus_pages,
            ),
        ),
        ("Grafana", safe_url(presentation.grafana_url)),
        ("Dashboard", safe_url(alert.annotations.get("dashboard_url"))),
        (
            "Runbook",
            runbook_link(alert.annotations.get("runbook_url"), presentation.runbook_base_url),
        ),
        ("Silence", silence),
    ]
    # Whole links only: a link cut to fit the field would lead nowhere.
    shown: list[str] = []
    for label, url in candidates:
        if url is None:
            continue
        link = markdown_link(label, url)
        if limits.discord_len(" · ".join([*shown, link])) <= limits.FIELD_VALUE:
            shown.append(link)
    return " · ".join(shown)


def fit_embed(embed: dict[str, Any], budget: int = limits.EMBEDS_TOTAL) -> dict[str, Any]:
    """Shrink the description, then field values, until the embed counts at most `budget`."""
    overflow = limits.embed_size(embed) - budget
    if overflow <= 0:
        return embed
    description = embed.get("description", "")
    keep = max(MIN_DESCRIPTION, limits.discord_len(description) - overflow)
    embed["description"] = truncate(description, keep)
    for item in reversed(embed.get("fields", [])):
        overflow = limits.embed_size(embed) - budget
        if overflow <= 0:
            break
        keep = max(16, limits.discord_len(item["value"]) - overflow)
        item["value"] = truncate(item["value"], keep)
    return embed


def alert_embed(
    alert: AlertmanagerAlert,
    receiver: str,
    presentation: Presentation,
    *,
    silence: str | None = None,
    silence_command: str | None = None,
) -> dict[str, Any]:
    """One alert as one embed: status, severity colour, summary, labels, times, and links to
    act from (graph, Grafana, runbook, the `silence` page of its group, or the `amtool`
    command that silences it where there is no such page)."""
    name = alert.labels.get("alertname", "Alert")
    severity = alert.labels.get("severity", "none")
    resolved = alert.status == "resolved"
    emoji = "✅" if resolved else EMOJI.get(severity, "⚠️")
    summary = alert.annotations.get("summary", "")
    details = alert.annotations.get("description") or alert.annotations.get("message", "")
    body = "\n\n".join(part for part in (f"**{summary}**" if summary else "", details) if part)
    fields: list[dict[str, Any]] = [
        {"name": "Severity", "value": truncate(severity, LABEL_VALUE_MAX), "inline": True},
        {"name": "Status", "value": alert.status, "inline": True},
    ]
    fired = discord_time(alert.starts_at)
    if fired:
        fields.append({"name": "Fired at", "value": fired, "inline": True})
    ended = discord_time(alert.ends_at)
    if resolved and ended:
        fields.append({"name": "Resolved at", "value": ended, "inline": True})
    fields.extend(_label_fields(alert.labels))
    links = _links(alert, presentation, silence)
    if links:
        fields.append({"name": "Links", "value": truncate(links, limits.FIELD_VALUE)})
    command = f"`{silence_command}`" if silence_command else ""
    # Whole or not at all: a command cut short would silence something else, or nothing.
    if command and limits.discord_len(command) <= limits.FIELD_VALUE:
        fields.append({"name": "Silence", "value": command})
    footer = f"fingerprint {alert.identity()}" + (f" · {receiver}" if receiver else "")
    embed: dict[str, Any] = {
        "title": truncate(f"{emoji} [{alert.status.upper()}] {name}", limits.TITLE),
        "description": truncate(body or "(no summary)", presentation.description_max),
        "color": RESOLVED_COLOUR if resolved else COLOURS.get(severity, UNKNOWN_COLOUR),
        "fields": fields[: limits.FIELDS],
        "footer": {"text": truncate(footer, FOOTER_MAX)},
    }
    url = graph_link(
        alert.generator_url, presentation.prometheus_url, presentation.consoles.prometheus_pages
    )
    if url:
        embed["url"] = url
    started = _timestamp(alert.starts_at)
    if started:
        embed["timestamp"] = started
    return fit_embed(embed)


def part_size(episode: Episode, alert: AlertmanagerAlert, presentation: Presentation) -> int:
    """What an alert's embed may count in its part: the larger of its firing and its resolved
    renderings, so that resolving it never makes its message too large."""
    resolved = alert.model_copy(update={"status": "resolved", "ends_at": datetime.now(UTC)})
    return max(
        limits.embed_size(episode_embed(episode, alert, presentation)),
        limits.embed_size(episode_embed(episode, resolved, presentation)),
    )


def episode_embed(
    episode: Episode, alert: AlertmanagerAlert, presentation: Presentation
) -> dict[str, Any]:
    """An alert's embed in its group's message: the silence link (or command) holds the
    group's matchers (the alert's own labels when the group has none)."""
    matchers = episode.group_labels or alert.labels
    base = alertmanager_base(presentation, episode.external_url)
    if base is not None and presentation.consoles.alertmanager_ui.get(base):
        return alert_embed(
            alert, episode.receiver, presentation, silence=silence_link(matchers, base)
        )
    return alert_embed(
        alert, episode.receiver, presentation, silence_command=silence_command(matchers, base)
    )


def alertmanager_base(presentation: Presentation, external_url: str | None) -> str | None:
    """The Alertmanager silences are made on: the configured public one, else the externalURL
    Alertmanager sends."""
    base = safe_url(presentation.alertmanager_url or external_url)
    return base.rstrip("/") if base else None


def fit_part(embeds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A part's embeds within 6000 characters together (shares of it when they have grown)."""
    if sum(limits.embed_size(embed) for embed in embeds) <= limits.EMBEDS_TOTAL:
        return embeds
    share = limits.EMBEDS_TOTAL // len(embeds)
    return [fit_embed(embed, share) for embed in embeds]


def _group_description(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "all alerts"


def episode_messages(
    episode: Episode, presentation: Presentation, *, truncated_alerts: int = 0
) -> list[OutboundMessage]:
    """The episode's living message, one `OutboundMessage` per part, in its current state."""
    firing = episode.firing
    # Discord pings on the post only; edits keep the mentions while the group fires.
    mentions = presentation.mentions_for(
        alert.labels.get("severity", "none") for alert in episode.alerts if alert.status == "firing"
    )
    group = _group_description(episode.group_labels)
    # The whole group in its most severe alert's lane, resolved ones included: the message
    # saying a critical alert is over is news to whom it paged.
    lane = most_urgent(alert.labels.get("severity", "none") for alert in episode.alerts)
    messages: list[OutboundMessage] = []
    for part, alerts in enumerate(episode.alerts_by_part()):
        embeds = fit_part([episode_embed(episode, a, presentation) for a in alerts])
        header = _header(firing, len(episode.alerts), group, part + 1, len(episode.parts))
        if truncated_alerts and part == 0:
            header += f" ({truncated_alerts} more alerts truncated by Alertmanager)"
        content = f"{mention_text(mentions)} {header}" if mentions else header
        payload = {
            "content": truncate(content, limits.CONTENT),
            "embeds": embeds,
            "allowed_mentions": allowed_mentions(mentions),
        }
        messages.append(OutboundMessage(episode.route, payload, part=part, lane=lane))
    return messages


def alert_messages(
    webhook: AlertmanagerWebhook,
    alerts: Iterable[tuple[AlertmanagerAlert, str]],
    presentation: Presentation,
) -> list[OutboundMessage]:
    """The messages a new group of these alerts starts as: one living message per route."""
    rendering = WebhookRendering(webhook, presentation)
    episodes: dict[str, Episode] = {}
    for alert, _ in alerts:
        route = rendering.route_of(alert)
        episode = episodes.setdefault(route, Episode(0, webhook.group_key, route))
        rendering.merge(episode, [alert])
    return [message for episode in episodes.values() for message in rendering.render(episode)]


@dataclass
class WebhookRendering:
    """The `LivingMessages` of one Alertmanager webhook: its routes, its group's labels."""

    webhook: AlertmanagerWebhook
    presentation: Presentation

    def route_of(self, alert: AlertmanagerAlert) -> str:
        """The configured route of its labels, else its severity's."""
        return self.presentation.route_of(alert.labels)

    def merge(self, episode: Episode, alerts: list[AlertmanagerAlert]) -> None:
        """The alerts' newest states, and the group as Alertmanager names it now."""
        episode.receiver = self.webhook.receiver
        episode.group_labels = self.webhook.group_labels
        episode.external_url = self.webhook.external_url
        episode.merge(alerts, lambda a: part_size(episode, a, self.presentation))

    def render(self, episode: Episode) -> list[OutboundMessage]:
        """Every part of the episode's message."""
        return episode_messages(
            episode, self.presentation, truncated_alerts=self.webhook.truncated_alerts
        )


def _header(firing: int, count: int, group: str, part: int, parts: int) -> str:
    noun = "alert" if count == 1 else "alerts"
    if firing:
        resolved = count - firing
        tally = f"{count} {noun}" + (f" ({resolved} resolved)" if resolved else "")
        header = f"🚨 **FIRING** · {tally} · {truncate(group, 300)}"
    else:
        header = f"✅ **RESOLVED** · {count} {noun} · {truncate(group, 300)}"
    return header + (f" · part {part}/{parts}" if parts > 1 else "")


def notification_message(
    notification: Notification, presentation: Presentation, *, now: datetime | None = None
) -> OutboundMessage:
    """A direct notification as one message with one embed coloured by its level."""
    level = notification.level
    mentions = presentation.mentions_for([level])
    embed: dict[str, Any] = {
        "title": truncate(f"{EMOJI[level]} {notification.title}", limits.TITLE),
        "description": truncate(notification.message, limits.DESCRIPTION),
        "color": COLOURS[level],
        "footer": {"text": f"level {level}"},
        "timestamp": (now or datetime.now(UTC)).isoformat(),
    }
    if not embed["description"]:
        del embed["description"]
    payload: dict[str, Any] = {"embeds": [embed], "allowed_mentions": allowed_mentions(mentions)}
    if mentions:
        payload["content"] = mention_text(mentions)
    keys = [notification.dedup_key] if notification.dedup_key else []
    route = presentation.route_of({"severity": level})
    return OutboundMessage(route, payload, keys, lane=lane_of(level))


def _alert_name(alert: AlertmanagerAlert, group_labels: Mapping[str, str]) -> str:
    """An alert told apart from the others of its group: its name, the labels that differ."""
    own = [
        f"{name}={value}"
        for name, value in sorted(alert.labels.items())
        if name not in HIDDEN_LABELS and group_labels.get(name) != value
    ]
    name = alert.labels.get("alertname", "Alert")
    return truncate(f"{name} ({', '.join(own) or alert.identity()})", SUMMARY_NAME_MAX)


def stale_summary(episode: Episode, part: int) -> dict[str, Any]:
    """One line for a part of a group that resolved before any of it reached Discord: each of
    its alerts named, with when it fired and resolved; it pings no one."""
    names = []
    for alert in episode.alerts_of(part):
        fired = discord_time(alert.starts_at) or "?"
        ended = discord_time(alert.ends_at) or "?"
        names.append(f"{_alert_name(alert, episode.group_labels)} {fired} → {ended}")
    count = len(episode.alerts)
    noun = "alert" if count == 1 else "alerts"
    parts = len(episode.parts)
    line = (
        f"✅ **RESOLVED** before it could be posted · {count} {noun} · "
        f"{truncate(_group_description(episode.group_labels), 300)}"
        + (f" · part {part + 1}/{parts}" if parts > 1 else "")
        + ": "
        + "; ".join(names)
    )
    return {
        "content": truncate(line, limits.CONTENT),
        "embeds": [],
        "allowed_mentions": {"parse": []},
    }


def plain_fallback(payload: dict[str, Any]) -> dict[str, Any]:
    """A text-only rendering of a message, for the rare payload Discord refuses."""
    lines = [payload.get("content", "")]
    for embed in payload.get("embeds", []):
        lines.append(f"**{embed.get('title', '')}**")
        lines.append(embed.get("description", ""))
        lines.append(embed.get("footer", {}).get("text", ""))
    text = "\n".join(line for line in lines if line) or "(empty message)"
    # No embeds, said explicitly: an edit would otherwise keep the ones Discord refused.
    return {
        "content": truncate(text, limits.CONTENT),
        "embeds": [],
        "allowed_mentions": {"parse": []},
    }
