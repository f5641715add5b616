"""Alerts and notifications turned into Discord messages that respect every limit by construction.

One embed per alert; embeds are packed into as many messages as the limits require, so an
alert is shortened (with a visible "…") but never left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from services.notifier import limits
from services.notifier.limits import truncate
from services.notifier.schemas import AlertmanagerAlert, AlertmanagerWebhook, Notification

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
    critical_role_id: str | None = None
    description_max: int = 1024


@dataclass
class OutboundMessage:
    """One Discord message to queue, and the webhook route that should carry it."""

    route: str
    payload: dict[str, Any]
    dedup_keys: list[str] = field(default_factory=list)


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


def allowed_mentions(role_id: str | None) -> dict[str, Any]:
    """Explicit: nothing is pinged except, when given, that one role (never @everyone/@here)."""
    if role_id is None:
        return {"parse": []}
    return {"parse": [], "roles": [role_id]}


def _timestamp(moment: datetime | None) -> str | None:
    if moment is None or moment.year == _ZERO_TIME_YEAR:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


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


def _links(alert: AlertmanagerAlert, presentation: Presentation) -> str:
    candidates = [
        ("Source", safe_url(alert.generator_url)),
        ("Grafana", safe_url(presentation.grafana_url)),
        (
            "Runbook",
            runbook_link(alert.annotations.get("runbook_url"), presentation.runbook_base_url),
        ),
        ("Dashboard", safe_url(alert.annotations.get("dashboard_url"))),
    ]
    return " · ".join(markdown_link(label, url) for label, url in candidates if url)


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
    alert: AlertmanagerAlert, receiver: str, presentation: Presentation
) -> dict[str, Any]:
    """One alert as one embed: status, severity colour, summary, labels, links, start time."""
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
    ended = _timestamp(alert.ends_at)
    if resolved and ended:
        fields.append({"name": "Resolved at", "value": ended, "inline": True})
    fields.extend(_label_fields(alert.labels))
    links = _links(alert, presentation)
    if links:
        fields.append({"name": "Links", "value": truncate(links, limits.FIELD_VALUE)})
    footer = f"fingerprint {alert.identity()}" + (f" · {receiver}" if receiver else "")
    embed: dict[str, Any] = {
        "title": truncate(f"{emoji} [{alert.status.upper()}] {name}", limits.TITLE),
        "description": truncate(body or "(no summary)", presentation.description_max),
        "color": RESOLVED_COLOUR if resolved else COLOURS.get(severity, UNKNOWN_COLOUR),
        "fields": fields[: limits.FIELDS],
        "footer": {"text": truncate(footer, FOOTER_MAX)},
    }
    url = safe_url(alert.generator_url)
    if url:
        embed["url"] = url
    started = _timestamp(alert.starts_at)
    if started:
        embed["timestamp"] = started
    return fit_embed(embed)


def pack_embeds(embeds: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Greedily fill messages up to 10 embeds and 6000 characters each, keeping the order."""
    messages: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    used = 0
    for embed in embeds:
        size = limits.embed_size(embed)
        if current and (
            len(current) >= limits.EMBEDS_PER_MESSAGE or used + size > limits.EMBEDS_TOTAL
        ):
            messages.append(current)
            current, used = [], 0
        current.append(embed)
        used += size
    if current:
        messages.append(current)
    return messages


def _group_description(webhook: AlertmanagerWebhook) -> str:
    labels = webhook.group_labels or {}
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "all alerts"


def alert_messages(
    webhook: AlertmanagerWebhook,
    alerts: Iterable[tuple[AlertmanagerAlert, str]],
    presentation: Presentation,
) -> list[OutboundMessage]:
    """Messages for the given (alert, dedup key) pairs: firing and resolved never share one."""
    batches: dict[tuple[str, str], list[tuple[AlertmanagerAlert, str]]] = {}
    for alert, key in alerts:
        severity = alert.labels.get("severity", "none")
        batches.setdefault((alert.status, route_for(severity)), []).append((alert, key))
    messages: list[OutboundMessage] = []
    for (status, route), batch in batches.items():
        embeds = [alert_embed(alert, webhook.receiver, presentation) for alert, _ in batch]
        keys = [key for _, key in batch]
        packed = pack_embeds(embeds)
        pings = (status, route) == ("firing", "critical")
        mention = presentation.critical_role_id if pings else None
        position = 0
        for part, chunk in enumerate(packed, start=1):
            header = _header(status, len(batch), _group_description(webhook), part, len(packed))
            if webhook.truncated_alerts and part == 1:
                header += f" ({webhook.truncated_alerts} more alerts truncated by Alertmanager)"
            content = f"<@&{mention}> {header}" if mention else header
            payload = {
                "content": truncate(content, limits.CONTENT),
                "embeds": chunk,
                "allowed_mentions": allowed_mentions(mention),
            }
            messages.append(OutboundMessage(route, payload, keys[position : position + len(chunk)]))
            position += len(chunk)
    return messages


def _header(status: str, count: int, group: str, part: int, parts: int) -> str:
    emoji = "✅" if status == "resolved" else "🚨"
    noun = "alert" if count == 1 else "alerts"
    header = f"{emoji} **{status.upper()}** · {count} {noun} · {truncate(group, 300)}"
    return header + (f" · part {part}/{parts}" if parts > 1 else "")


def notification_message(
    notification: Notification, presentation: Presentation, *, now: datetime | None = None
) -> OutboundMessage:
    """A direct notification as one message with one embed coloured by its level."""
    level = notification.level
    mention = presentation.critical_role_id if level == "critical" else None
    embed: dict[str, Any] = {
        "title": truncate(f"{EMOJI[level]} {notification.title}", limits.TITLE),
        "description": truncate(notification.message, limits.DESCRIPTION),
        "color": COLOURS[level],
        "footer": {"text": f"level {level}"},
        "timestamp": (now or datetime.now(UTC)).isoformat(),
    }
    if not embed["description"]:
        del embed["description"]
    payload: dict[str, Any] = {"embeds": [embed], "allowed_mentions": allowed_mentions(mention)}
    if mention:
        payload["content"] = f"<@&{mention}>"
    keys = [notification.dedup_key] if notification.dedup_key else []
    return OutboundMessage(route_for(level), payload, keys)


def plain_fallback(payload: dict[str, Any]) -> dict[str, Any]:
    """A text-only rendering of a message, for the rare payload Discord refuses."""
    lines = [payload.get("content", "")]
    for embed in payload.get("embeds", []):
        lines.append(f"**{embed.get('title', '')}**")
        lines.append(embed.get("description", ""))
        lines.append(embed.get("footer", {}).get("text", ""))
    text = "\n".join(line for line in lines if line) or "(empty message)"
    return {"content": truncate(text, limits.CONTENT), "allowed_mentions": {"parse": []}}
