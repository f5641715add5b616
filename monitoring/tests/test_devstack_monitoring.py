"""`make run`'s Prometheus and Alertmanager (devstack/monitoring.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devstack import monitoring as local
from harness.monitoring import run_tool
from services.common.settings import DEV_NOTIFIER_TOKEN


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> local.LocalSettings:
    """Settings for the test, without the developer's .env."""
    # Explicit values, so a developer's own environment cannot change the outcome.
    chosen = local.LocalSettings(
        _env_file=None,  # type: ignore[call-arg]
        inference_port=18000,
        notifier_token=None,
        discord_webhook_url=None,
        dev_mode=True,
    )
    monkeypatch.setattr(local, "get_settings", lambda: chosen)
    return chosen


def test_components_are_the_installed_binaries_with_checked_configs(
    settings: local.LocalSettings,
    tmp_path: Path,
    promtool: str,
    amtool: str,
    prometheus_binary: str,
    alertmanager_binary: str,
) -> None:
    components = {item.name: item for item in local.monitoring_components(tmp_path)}
    assert set(components) == {"prometheus", "alertmanager"}
    prometheus = components["prometheus"]
    assert prometheus.command[0] == prometheus_binary
    assert prometheus.url == "http://localhost:9090"
    config = tmp_path / "monitoring" / "prometheus.yml"
    assert f"--config.file={config}" in prometheus.command
    assert "127.0.0.1:18000" in config.read_text()
    assert run_tool(promtool, "check", "config", config).returncode == 0
    alertmanager = components["alertmanager"]
    assert alertmanager.command[0] == alertmanager_binary
    rendered = tmp_path / "monitoring" / "alertmanager.yml"
    assert run_tool(amtool, "check-config", rendered).returncode == 0
    webhook = yaml.safe_load(rendered.read_text())["receivers"][0]["webhook_configs"][0]
    assert webhook["url"] == "http://127.0.0.1:8002/alertmanager"
    assert webhook["http_config"]["authorization"]["credentials"] == DEV_NOTIFIER_TOKEN
    assert rendered.stat().st_mode & 0o077 == 0
    assert "discord-direct" not in rendered.read_text(), "no webhook: direct alerts fall back"


def test_a_discord_webhook_enables_the_direct_route(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, alertmanager_binary: str
) -> None:
    webhook = "https://discord.com/api/webhooks/1/abc"
    chosen = local.LocalSettings(_env_file=None, discord_webhook_url=webhook)  # type: ignore[call-arg]
    monkeypatch.setattr(local, "get_settings", lambda: chosen)
    local.monitoring_components(tmp_path)
    config = yaml.safe_load((tmp_path / "monitoring" / "alertmanager.yml").read_text())
    direct = [r for r in config["receivers"] if r["name"] == "discord-direct"]
    assert direct[0]["discord_configs"][0]["webhook_url"] == webhook


def test_the_development_token_is_the_one_the_notifier_accepts() -> None:
    assert local.DEV_NOTIFIER_TOKEN == DEV_NOTIFIER_TOKEN


def test_without_dev_mode_a_real_token_is_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, alertmanager_binary: str
) -> None:
    strict = local.LocalSettings(
        _env_file=None,  # type: ignore[call-arg]
        dev_mode=False,
        notifier_token=None,
    )
    monkeypatch.setattr(local, "get_settings", lambda: strict)
    with pytest.raises(ValueError, match="NOTIFIER_TOKEN"):
        local.monitoring_components(tmp_path)


def test_missing_binaries_are_left_out(
    settings: local.LocalSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(local.shutil, "which", lambda name: None)
    assert local.monitoring_components(tmp_path) == []
