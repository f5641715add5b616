"""Grafana provisioning and the dashboard built as code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitoring.grafana import build_dashboards
from monitoring.grafana.build_dashboards import DASHBOARD_FILE, EXPORT_FILE, outputs
from monitoring.render import MONITORING_DIR

PROVISIONING = MONITORING_DIR / "grafana" / "provisioning"
ENV_REFERENCE = re.compile(r"^\$(\{[A-Z_]+\}|__env\{[A-Z_]+\})$")


def _yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _datasources() -> dict[str, dict[str, Any]]:
    config = _yaml(PROVISIONING / "datasources" / "datasources.yml")
    return {source["uid"]: source for source in config["datasources"]}


def _refs(node: Any) -> list[dict[str, Any]]:
    """Every datasource reference in a dashboard, panels and targets alike."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            found.append(node["datasource"])
        for value in node.values():
            found += _refs(value)
    elif isinstance(node, list):
        for item in node:
            found += _refs(item)
    return found


def test_committed_dashboards_are_what_the_code_builds() -> None:
    for path, text in outputs().items():
        assert path.read_text() == text, f"{path.name} is stale: run build_dashboards"


def test_check_mode_reports_a_stale_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "dashboards" / "cv_dashboard.json"
    stale.parent.mkdir()
    stale.write_text("{}\n")
    monkeypatch.setattr(build_dashboards, "GRAFANA_DIR", tmp_path)
    monkeypatch.setattr(build_dashboards, "DASHBOARD_FILE", stale)
    monkeypatch.setattr(build_dashboards, "EXPORT_FILE", tmp_path / "export" / "x.json")
    assert build_dashboards.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    assert stale.read_text() == "{}\n", "--check writes nothing"


def test_cli_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_dashboards.main(["--help"])
    assert exit_info.value.code == 0
    assert "--check" in capsys.readouterr().out


def test_every_datasource_of_the_dashboard_is_provisioned_with_its_type() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    sources = _datasources()
    refs = _refs(dashboard)
    assert refs
    for ref in refs:
        assert ref["uid"] in sources
        assert sources[ref["uid"]]["type"] == ref["type"]
    assert {ref["uid"] for ref in refs} == set(sources)


def test_panels_have_unique_ids_and_every_query_a_datasource() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] in _datasources()
            assert target.get("expr") or target.get("rawSql")


def test_postgresql_datasource_reads_its_secret_from_the_environment() -> None:
    postgres = _datasources()["cv-postgresql"]
    assert postgres["jsonData"]["database"] == "predictions_feedback"
    assert ENV_REFERENCE.match(postgres["secureJsonData"]["password"])
    assert ENV_REFERENCE.match(postgres["user"])
    assert "database" not in postgres, "Grafana 11 reads the database from jsonData"


def test_discord_contact_point_uses_the_webhook_from_the_environment() -> None:
    config = _yaml(PROVISIONING / "alerting" / "contact-points.yml")
    (contact,) = config["contactPoints"]
    (receiver,) = contact["receivers"]
    assert receiver["type"] == "discord"
    assert receiver["settings"]["url"] == "${DISCORD_WEBHOOK_URL}"
    assert config["policies"][0]["receiver"] == contact["name"]


def test_dashboard_provider_loads_the_folder_compose_mounts() -> None:
    (provider,) = _yaml(PROVISIONING / "dashboards" / "dashboards.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert DASHBOARD_FILE.parent.name == "dashboards"
    assert not EXPORT_FILE.is_relative_to(DASHBOARD_FILE.parent), "would load twice"


def test_export_variant_asks_for_its_datasources_at_import() -> None:
    exported = json.loads(EXPORT_FILE.read_text())
    provisioned = json.loads(DASHBOARD_FILE.read_text())
    inputs = {item["name"]: item for item in exported["__inputs"]}
    assert set(inputs) == {"DS_PROMETHEUS", "DS_POSTGRESQL"}
    assert all(item["type"] == "datasource" for item in inputs.values())
    uids = {ref["uid"] for ref in _refs(exported)}
    assert uids == {"${DS_PROMETHEUS}", "${DS_POSTGRESQL}"}
    assert len(exported["panels"]) == len(provisioned["panels"])
    assert {req["id"] for req in exported["__requires"]} >= {"prometheus", "timeseries"}


def test_no_secret_is_written_in_provisioning() -> None:
    for path in PROVISIONING.rglob("*.yml"):
        text = path.read_text()
        assert "discord.com/api/webhooks" not in text
        for line in text.splitlines():
            if re.search(r"(password|credentials|url):", line) and "${" not in line:
                assert "http://prometheus" in line or "postgres:5432" in line, line
