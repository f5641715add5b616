"""Every committed alert's runbook reaches Discord as an absolute link to its section."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.notifier.formatting import Presentation, alert_embed, runbook_link
from services.notifier.schemas import AlertmanagerAlert

ALERTS = Path(__file__).resolve().parents[3] / "monitoring" / "prometheus" / "rules" / "alerts.yml"
BASE = "https://git.example.org/cat-dog/-/blob/main/"
RULES = [
    rule
    for group in yaml.safe_load(ALERTS.read_text())["groups"]
    for rule in group["rules"]
    if "alert" in rule
]


@pytest.mark.parametrize("rule", RULES, ids=[rule["alert"] for rule in RULES])
def test_the_runbook_link_of_every_alert_is_absolute(rule: dict) -> None:
    alert = AlertmanagerAlert.model_validate(
        {
            "status": "firing",
            "labels": {"alertname": rule["alert"], **rule["labels"], "job": "inference"},
            "annotations": {**rule["annotations"], "description": "d", "summary": "s"},
        }
    )
    embed = alert_embed(alert, "discord", Presentation(runbook_base_url=BASE))
    links = next(item["value"] for item in embed["fields"] if item["name"] == "Links")
    section = rule["annotations"]["runbook_url"]
    assert f"[Runbook]({BASE}{section})" in links


def test_without_a_base_a_relative_runbook_is_left_out_rather_than_broken() -> None:
    assert runbook_link("monitoring/runbook.md#x", None) is None
    assert runbook_link("https://wiki.example.org/x", BASE) == "https://wiki.example.org/x"
    assert (
        runbook_link("/monitoring/runbook.md#x", BASE.rstrip("/"))
        == f"{BASE}monitoring/runbook.md#x"
    )
