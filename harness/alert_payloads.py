"""Alertmanager webhook bodies (version 4) for tests and the benchmark."""

from __future__ import annotations

from typing import Any


def alert(
    name: str = "HighErrorRate",
    fingerprint: str = "fp0001",
    *,
    status: str = "firing",
    severity: str = "warning",
    summary: str = "Too many errors",
    description: str = "The error ratio is above 5%.",
    labels: dict[str, str] | None = None,
    starts_at: str = "2026-11-28T22:00:00Z",
) -> dict[str, Any]:
    """One alert as Alertmanager sends it."""
    return {
        "status": status,
        "labels": {"alertname": name, "severity": severity, "job": "inference", **(labels or {})},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"https://runbooks.example.org/#{name.lower()}",
        },
        "startsAt": starts_at,
        "endsAt": "2026-11-28T23:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": f"http://prometheus:9090/graph?g0.expr=up&alert={name}",
        "fingerprint": fingerprint,
    }


def webhook(
    alerts: list[dict[str, Any]], *, group_key: str = '{}:{alertname="HighErrorRate"}'
) -> dict[str, Any]:
    """A webhook body grouping `alerts`."""
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "discord",
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]} if alerts else {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }


def fingerprints_posted(messages: list[dict[str, Any]]) -> list[str]:
    """The fingerprint of every alert embed posted, read from the embed footers."""
    found = []
    for message in messages:
        for embed in message["embeds"]:
            footer = embed.get("footer", {}).get("text", "")
            if footer.startswith("fingerprint "):
                found.append(footer.split()[1])
    return found
