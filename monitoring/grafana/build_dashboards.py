"""Build the Grafana dashboard as code with Grafana's Python SDK (grafana-foundation-sdk).

`python -m monitoring.grafana.build_dashboards` writes two files:
- `dashboards/cv_dashboard.json`, loaded by Grafana's file provisioning (fixed datasource uids);
- `export/cv_dashboard.export.json`, the same dashboard with `__inputs`, for Dashboards →
  New → Import in a Grafana that was not provisioned (datasources chosen at import).
`--check` writes nothing and fails when the committed files differ from what the code builds.
The panels are built row by row in `rows/`, with the builders of `panels.py` and the
thresholds of `services/common/objectives.py`.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from monitoring.grafana.panels import POSTGRESQL, PROMETHEUS
from monitoring.grafana.rows import (
    alerts,
    http,
    inference,
    notifier,
    overview,
    postgresql,
    quality,
    rgpd,
    versions,
    watch,
)

GRAFANA_DIR = Path(__file__).resolve().parent
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "cv_dashboard.json"
EXPORT_FILE = GRAFANA_DIR / "export" / "cv_dashboard.export.json"

# Import inputs of the export variant, by datasource uid.
EXPORT_INPUTS = {
    PROMETHEUS.uid: ("DS_PROMETHEUS", "Prometheus", "prometheus", "Prometheus"),
    POSTGRESQL.uid: ("DS_POSTGRESQL", "PostgreSQL", "grafana-postgresql-datasource", "PostgreSQL"),
}
# The rows, top to bottom.
ROWS = (overview, quality, versions, watch, inference, http, rgpd, notifier, alerts, postgresql)


def build_dashboard() -> dict[str, Any]:
    """The provisioned dashboard as Grafana's JSON model."""
    board = (
        dashboard.Dashboard("Cat vs dog — service and model")
        .uid("cv-overview")
        .description(
            "Predictions, model quality and drift, model versions, the model watch, HTTP, "
            "notifier and PostgreSQL."
        )
        .tags(["cat-dog", "mlops"])
        .editable()
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )
    for row in ROWS:
        board.with_row(dashboard.Row(row.TITLE))
        for panel in row.panels():
            board.with_panel(panel)
    built: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    # Grafana links panels (and their URLs) by id; the SDK leaves them unset or 0.
    for number, panel in enumerate(built["panels"], start=1):
        panel["id"] = number
    # Grafana's loader expects lists here, and adds its built-in annotations itself.
    built["annotations"] = {"list": []}
    built["templating"] = {"list": []}
    return built


def export_variant(provisioned: dict[str, Any]) -> dict[str, Any]:
    """The same dashboard for manual import: datasources become `__inputs` chosen at import."""
    exported = copy.deepcopy(provisioned)
    exported.pop("id", None)

    def replace(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("datasource")
            if isinstance(ref, dict) and ref.get("uid") in EXPORT_INPUTS:
                ref["uid"] = "${" + EXPORT_INPUTS[ref["uid"]][0] + "}"
            for value in node.values():
                replace(value)
        elif isinstance(node, list):
            for item in node:
                replace(item)

    replace(exported)
    inputs = [
        {"name": name, "label": label, "description": "", "type": "datasource"}
        | {"pluginId": plugin, "pluginName": plugin_name}
        for name, label, plugin, plugin_name in EXPORT_INPUTS.values()
    ]
    panel_types = sorted({panel["type"] for panel in provisioned["panels"]} - {"row"})
    requires = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
        *(
            {"type": "datasource", "id": plugin, "name": plugin_name, "version": "1.0.0"}
            for _, _, plugin, plugin_name in EXPORT_INPUTS.values()
        ),
        *({"type": "panel", "id": kind, "name": kind, "version": ""} for kind in panel_types),
    ]
    return {"__inputs": inputs, "__requires": requires, **exported}


def render(document: dict[str, Any]) -> str:
    """Stable JSON text: the committed files are compared byte for byte."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def outputs() -> dict[Path, str]:
    """Every file this module builds, with its content."""
    provisioned = build_dashboard()
    return {DASHBOARD_FILE: render(provisioned), EXPORT_FILE: render(export_variant(provisioned))}


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards, or check that the committed ones are up to date."""
    parser = argparse.ArgumentParser(
        prog="python -m monitoring.grafana.build_dashboards",
        description="Build the Grafana dashboard JSON (provisioned and import variants).",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a committed file differs from what the code builds",
    )
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(GRAFANA_DIR.parents[1])}")
    if args.check and stale:
        names = ", ".join(str(path.relative_to(GRAFANA_DIR.parents[1])) for path in stale)
        print(f"out of date: {names} (run python -m monitoring.grafana.build_dashboards)")
        return 1
    if not stale:
        print("dashboards up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
