"""monitoring/alertmanager/alertmanager.yml as a Prometheus Operator `AlertmanagerConfig`.

The routing tree, timings, inhibitions and receivers come from the same template compose
renders (through `monitoring.render`, so its checks and fallbacks apply); the secrets become
references to the Secret `cv-notifier`, and the notifier's address is the in-cluster one of
the overlay's namespace, because the operator's Alertmanager runs in another namespace.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from monitoring.render import render_alertmanager

# Where the secrets live (a Secret's name and keys), never the secrets themselves.
NOTIFIER_SECRET = "cv-notifier"  # noqa: S105
TOKEN_KEY = "token"  # noqa: S105
DISCORD_KEY = "discord-webhook-url"
# Stand-ins: only the structure is kept, the values are replaced by Secret references.
_TOKEN = "stand-in-token"  # noqa: S105
_DISCORD = "https://discord.invalid/api/webhooks/0/stand-in"
_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')
_ROUTE_KEYS = {
    "receiver": "receiver",
    "group_by": "groupBy",
    "group_wait": "groupWait",
    "group_interval": "groupInterval",
    "repeat_interval": "repeatInterval",
    "continue": "continue",
}


class ConversionError(ValueError):
    """Something in the Alertmanager config has no AlertmanagerConfig equivalent here."""


def matcher(text: str) -> dict[str, str]:
    """`name="value"` (or =~, !=, !~) as an AlertmanagerConfig matcher."""
    found = _MATCHER.match(text)
    if found is None:
        raise ConversionError(f"unsupported matcher {text!r}")
    name, operator, value = found.groups()
    return {"name": name, "value": value.replace('\\"', '"'), "matchType": operator}


def _route(route: dict[str, Any]) -> dict[str, Any]:
    unknown = set(route) - set(_ROUTE_KEYS) - {"matchers", "routes"}
    if unknown:
        raise ConversionError(f"unsupported route fields {sorted(unknown)}")
    converted: dict[str, Any] = {_ROUTE_KEYS[k]: v for k, v in route.items() if k in _ROUTE_KEYS}
    if "matchers" in route:
        converted["matchers"] = [matcher(m) for m in route["matchers"]]
    if "routes" in route:
        converted["routes"] = [_route(child) for child in route["routes"]]
    return converted


def _receiver(receiver: dict[str, Any], notifier_url: str) -> dict[str, Any]:
    converted: dict[str, Any] = {"name": receiver["name"]}
    for webhook in receiver.pop("webhook_configs", []):
        if not webhook["url"].startswith(notifier_url):
            raise ConversionError(f"webhook {webhook['url']} is not the notifier")
        authorization = webhook.get("http_config", {}).get("authorization", {})
        converted.setdefault("webhookConfigs", []).append(
            {
                "url": webhook["url"],
                "sendResolved": webhook.get("send_resolved", True),
                "maxAlerts": webhook.get("max_alerts", 0),
                "httpConfig": {
                    "authorization": {
                        "type": authorization.get("type", "Bearer"),
                        "credentials": {"name": NOTIFIER_SECRET, "key": TOKEN_KEY},
                    }
                },
            }
        )
    for discord in receiver.pop("discord_configs", []):
        converted.setdefault("discordConfigs", []).append(
            {
                "apiURL": {"name": NOTIFIER_SECRET, "key": DISCORD_KEY},
                "sendResolved": discord.get("send_resolved", True),
            }
        )
    unknown = set(receiver) - {"name"}
    if unknown:
        raise ConversionError(f"unsupported receiver fields {sorted(unknown)}")
    return converted


def alertmanager_config(namespace: str, name: str = "cat-dog") -> dict[str, Any]:
    """The AlertmanagerConfig object for the application deployed in `namespace`."""
    notifier_url = f"http://notifier.{namespace}.svc:8002"
    rendered = yaml.safe_load(
        render_alertmanager(
            notifier_token=_TOKEN, notifier_url=notifier_url, discord_webhook_url=_DISCORD
        )
    )
    spec: dict[str, Any] = {"route": _route(rendered["route"])}
    spec["receivers"] = [_receiver(r, notifier_url) for r in rendered["receivers"]]
    inhibitions = []
    for rule in rendered.get("inhibit_rules", []):
        inhibitions.append(
            {
                "sourceMatch": [matcher(m) for m in rule["source_matchers"]],
                "targetMatch": [matcher(m) for m in rule["target_matchers"]],
                "equal": rule.get("equal", []),
            }
        )
    if inhibitions:
        spec["inhibitRules"] = inhibitions
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": {"name": name, "labels": {"alertmanagerConfig": "cat-dog"}},
        "spec": spec,
    }
