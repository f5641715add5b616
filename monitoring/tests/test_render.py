"""Rendering the one committed Prometheus config for other networks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.monitoring import run_tool
from monitoring.render import (
    RULES_DIR,
    RenderError,
    compose_targets,
    local_targets,
    main,
    render_prometheus,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
JOBS = {"prometheus", "alertmanager", "inference", "feedback", "notifier", "dashboard"}


def test_the_committed_config_scrapes_every_service_by_its_compose_name() -> None:
    assert compose_targets() == {
        "prometheus": "localhost:9090",
        "alertmanager": "alertmanager:9093",
        "inference": "inference:8000",
        "feedback": "feedback:8001",
        "notifier": "notifier:8002",
        "dashboard": "dashboard:8050",
    }


def test_local_targets_keep_the_committed_ports_unless_overridden() -> None:
    targets = local_targets(ports={"inference": 18000})
    assert set(targets) == JOBS
    assert targets["inference"] == "127.0.0.1:18000"
    assert targets["feedback"] == "127.0.0.1:8001"
    with pytest.raises(RenderError, match="no such job"):
        local_targets(ports={"grafana": 3000})


def test_rendering_replaces_targets_and_alertmanager_and_points_at_the_real_rules() -> None:
    config = yaml.safe_load(
        render_prometheus(local_targets(), scrape_interval="1s", evaluation_interval="1s")
    )
    scraped = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert scraped["notifier"] == ["127.0.0.1:8002"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:9093"
    ]
    assert config["rule_files"] == [str(RULES_DIR.resolve() / "*.yml")]
    assert config["global"]["scrape_interval"] == config["global"]["scrape_timeout"] == "1s"
    assert config["global"]["evaluation_interval"] == "1s"
    with pytest.raises(RenderError, match="no such job"):
        render_prometheus({"grafana": "127.0.0.1:3000"})


def test_promtool_accepts_the_localhost_rendering(promtool: str, tmp_path: Path) -> None:
    out = tmp_path / "prometheus.yml"
    assert main(["prometheus", "--localhost", "--out", str(out)]) == 0
    result = run_tool(promtool, "check", "config", out)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_renders_alertmanager_from_a_token_file(amtool: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    out = tmp_path / "alertmanager.yml"
    assert main(["alertmanager", "--token-file", str(token_file), "--out", str(out)]) == 0
    assert "from-a-file" in out.read_text()
    assert out.stat().st_mode & 0o077 == 0, "the rendered file holds a secret"
    result = run_tool(amtool, "check-config", out)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_missing_webhook_file_means_no_direct_discord_route(tmp_path: Path) -> None:
    """Docker Compose writes no file for an empty secret: that is the documented blank."""
    token_file = tmp_path / "token"
    token_file.write_text("t" * 32)
    out = tmp_path / "alertmanager.yml"
    missing = tmp_path / "discord_webhook_url"
    argv = ["alertmanager", "--token-file", str(token_file), "--out", str(out)]
    assert main([*argv, "--discord-webhook-file", str(missing)]) == 0
    assert "discord-direct" not in out.read_text()


def test_the_config_comes_from_variables_as_compose_passes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFIER_TOKEN", "v" * 32)
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", "")
    out = tmp_path / "alertmanager.yml"
    argv = [
        "alertmanager",
        "--token-env=NOTIFIER_TOKEN",
        "--discord-webhook-env=DISCORD_WEBHOOK_URL",
    ]
    assert main([*argv, f"--out={out}"]) == 0
    assert "v" * 32 in out.read_text() and "discord-direct" not in out.read_text()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root, setpriv")
def test_a_second_rendering_replaces_the_file_it_handed_to_alertmanager(tmp_path: Path) -> None:
    """As compose runs the one-shot on every `up`: root with CAP_CHOWN only, the previous
    file owned by Alertmanager's user (nobody) and readable by it alone."""
    folder = tmp_path / "rendered"
    folder.mkdir()
    out = folder / "alertmanager.yml"
    env = {**os.environ, "NOTIFIER_TOKEN": "w" * 32}
    for run in range(2):
        done = subprocess.run(
            ["setpriv", "--bounding-set=-all,+chown", "--inh-caps=-all",
             sys.executable, "-m", "monitoring.render", "alertmanager",
             "--token-env=NOTIFIER_TOKEN", "--owner=65534:65534", f"--out={out}"],
            capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"run {run + 1}: {done.stderr}"
        assert (out.stat().st_uid, out.stat().st_mode & 0o777) == (65534, 0o600)
    assert [path.name for path in folder.iterdir()] == ["alertmanager.yml"], "no temporary left"


def test_cli_help_describes_both_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "prometheus" in capsys.readouterr().out
