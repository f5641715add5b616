"""Alertmanager routing, checked by amtool on the config as rendered at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.monitoring import run_tool
from monitoring.render import ALERTMANAGER_TEMPLATE, RenderError, render_alertmanager

TOKEN = "s3cr3t-token"
WEBHOOK = "https://discord.com/api/webhooks/123/abc"


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    """The template rendered the way compose and `make run` render it."""
    path = tmp_path / "alertmanager.yml"
    path.write_text(
        render_alertmanager(
            notifier_token=TOKEN,
            notifier_url="http://notifier:8002",
            discord_webhook_url=WEBHOOK,
        )
    )
    return path


def _config(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config


def test_amtool_accepts_the_rendered_config(amtool: str, rendered: Path) -> None:
    result = run_tool(amtool, "check-config", rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=CVErrorBudgetBurnFast", "service=feedback", "severity=critical"],
         "notifier-critical"),
        (["alertname=CVPredictionDrift", "service=inference", "severity=warning"], "notifier"),
        (["alertname=CVModelVersionsMixed", "service=inference", "severity=info"],
         "notifier-info"),
        (["alertname=SomethingNew", "service=inference"], "notifier"),
        (["alertname=CVDatabaseDisconnected", "service=inference", "severity=critical"],
         "discord-direct"),
        (["alertname=CVTargetDown", "service=notifier", "severity=critical"], "discord-direct"),
        (["alertname=CVTargetDown", "service=inference", "severity=critical"],
         "notifier-critical"),
    ],
)  # fmt: skip
def test_routes_send_each_severity_to_its_receiver(
    amtool: str, rendered: Path, labels: list[str], receiver: str
) -> None:
    result = run_tool(
        amtool, "config", "routes", "test", f"--config.file={rendered}",
        f"--verify.receivers={receiver}", *labels,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_a_wrong_route_expectation_fails(amtool: str, rendered: Path) -> None:
    result = run_tool(
        amtool, "config", "routes", "test", f"--config.file={rendered}",
        "--verify.receivers=notifier-info", "severity=critical", "service=inference",
    )  # fmt: skip
    assert result.returncode != 0


def test_every_receiver_posts_to_the_notifier_with_the_token_and_resolutions(
    rendered: Path,
) -> None:
    config = _config(rendered)
    for receiver in config["receivers"]:
        if receiver["name"] == "discord-direct":
            assert receiver["discord_configs"] == [{"webhook_url": WEBHOOK, "send_resolved": True}]
            continue
        (webhook,) = receiver["webhook_configs"]
        assert webhook["url"] == "http://notifier:8002/alertmanager"
        assert webhook["send_resolved"] is True
        assert webhook["http_config"]["authorization"] == {"type": "Bearer", "credentials": TOKEN}


def test_alerts_are_grouped_by_name_and_service_and_critical_inhibits_warning(
    rendered: Path,
) -> None:
    config = _config(rendered)
    assert config["route"]["group_by"] == ["alertname", "service"]
    assert config["inhibit_rules"] == [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["service"],
        }
    ]


def test_repeat_interval_exceeds_the_notifier_dedup_window(rendered: Path) -> None:
    """The notifier posts the same alert once an hour at most: reminders must come later."""
    config = _config(rendered)
    routes = [config["route"], *config["route"]["routes"]]
    hours = {"h": 1.0, "m": 1 / 60}
    for route in routes:
        value = route.get("repeat_interval", config["route"]["repeat_interval"])
        assert float(value[:-1]) * hours[value[-1]] > 1.0


def test_the_committed_template_holds_no_secret() -> None:
    text = ALERTMANAGER_TEMPLATE.read_text()
    assert "credentials: ${NOTIFIER_TOKEN}" in text
    assert "url: ${NOTIFIER_URL}/alertmanager" in text
    assert "webhook_url: ${DISCORD_WEBHOOK_URL}" in text


def test_without_a_discord_webhook_direct_alerts_go_to_the_notifier(
    amtool: str, tmp_path: Path
) -> None:
    path = tmp_path / "alertmanager.yml"
    path.write_text(render_alertmanager(notifier_token=TOKEN))
    assert "discord-direct" not in path.read_text()
    result = run_tool(
        amtool, "config", "routes", "test", f"--config.file={path}",
        "--verify.receivers=notifier-critical", "alertname=CVDatabaseDisconnected",
        "service=feedback", "severity=critical",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("token", ['a"b', "x\ny: 1", "{{ weird }}", "#not-a-comment", "$HOME"])
def test_any_token_renders_verbatim_without_changing_the_structure(token: str) -> None:
    config = yaml.safe_load(render_alertmanager(notifier_token=token, discord_webhook_url=token))
    assert config["receivers"][-1]["discord_configs"][0]["webhook_url"] == token
    for receiver in config["receivers"][:-1]:
        assert receiver["webhook_configs"][0]["http_config"]["authorization"]["credentials"] == (
            token
        )
    assert set(config) == {"global", "route", "inhibit_rules", "receivers"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"notifier_token": ""}, "empty"),
        ({"notifier_token": "t", "notifier_url": "notifier:8002"}, "http"),
        ({"notifier_token": "t", "notifier_url": "http://x:1/a b"}, "plain"),
        ({"notifier_token": "t", "timings": {"group_by": "1s"}}, "timing"),
    ],
)
def test_bad_rendering_requests_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render_alertmanager(**kwargs)


def test_shorter_timings_apply_to_every_route_that_sets_them() -> None:
    config = yaml.safe_load(
        render_alertmanager(
            notifier_token="t", timings={"group_wait": "1s", "group_interval": "2s"}
        )
    )
    assert config["route"]["group_wait"] == "1s"
    assert config["route"]["group_interval"] == "2s"
    critical = config["route"]["routes"][2]
    assert (critical["group_wait"], critical["group_interval"]) == ("1s", "2s")
    assert critical["repeat_interval"] == "2h"
