"""The dashboard in a real browser, against a real dashboard process and a seeded database."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from harness.services import ServiceProcess
from services.dashboard.layout import GRAPHS, VERSION_GRAPH, WATCH_GRAPHS
from services.dashboard.seed import NEW_VERSION, OLD_VERSION, SHADOW_VERSION, seed

pytestmark = [pytest.mark.browser, pytest.mark.slow]

USER, PASSWORD = "monitoring", "browser-test-password"
# Per graph, what it plots: changes whenever the range shows other data.
SIGNATURES = """
(ids) => Object.fromEntries(ids.map((id) => {
  const plot = document.querySelector('#' + id + ' .js-plotly-plot');
  const traces = (plot && plot.data) || [];
  const points = traces.reduce((n, t) => n + ((t.y || []).length), 0);
  return [id, {points, data: JSON.stringify(traces.map((t) => [t.x, t.y]))}];
}))
"""


def version_rows(page: Any, count: int) -> list[str]:
    """The first cells of the model-versions table, once it has `count` rows."""
    page.wait_for_function(
        "(n) => document.querySelectorAll('table.versions:not(.watch) tbody tr').length === n",
        arg=count,
        timeout=30_000,
    )
    cells: list[str] = page.locator(
        "table.versions:not(.watch) tbody tr td:first-child"
    ).all_inner_texts()
    return cells


def months_on_time_axis(page: Any) -> list[str]:
    """The traffic graph's x tick labels once zoomed on a span across February 2026."""
    labels: list[str] = page.evaluate(
        "async () => { const plot = document.querySelector('#graph-traffic .js-plotly-plot');"
        " await Plotly.relayout(plot, {'xaxis.range': ['2026-01-20', '2026-03-10']});"
        " return [...plot.querySelectorAll('.xtick text')].map((tick) => tick.textContent); }"
    )
    return labels


def signatures(page: Any) -> dict[str, dict[str, Any]]:
    """What each graph currently plots."""
    result: dict[str, dict[str, Any]] = page.evaluate(SIGNATURES, list(GRAPHS))
    return result


def test_login_then_every_graph_has_data_and_follows_the_range(
    page: Any, database_url: str, tmp_path: Path
) -> None:
    seed(database_url, rows=20_000, days=30, progress=False)
    env = {
        "DATABASE_URL": database_url,
        "DASHBOARD_USER": USER,
        "DASHBOARD_PASSWORD": PASSWORD,
        "DEV_MODE": "false",
    }
    problems: list[str] = []
    scripts: list[str] = []
    page.on("request", lambda r: scripts.append(r.url) if r.resource_type == "script" else None)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    with ServiceProcess("dashboard", env, tmp_path) as service:
        # Without credentials the browser would prompt; its request API shows the refusal.
        assert page.request.get(service.url + "/monitoring/").status == 401

        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        page.set_extra_http_headers({"Authorization": f"Basic {token}"})
        assert page.goto(service.url + "/monitoring/").status == 200
        page.wait_for_selector("#kpis .kpi", timeout=30_000)
        # The health strip: one light per objective, each with its level and its reason.
        page.wait_for_function(
            "() => document.querySelectorAll('#health .light').length === 6", timeout=30_000
        )
        lights = page.locator("#health .light")
        for index in range(6):
            light = lights.nth(index)
            assert light.get_attribute("data-level") in {"green", "amber", "red", "unknown"}
            assert light.locator(".reason").inner_text().strip()
        # The seed answers within the last minutes: answers are being recorded.
        assert page.get_attribute("#health-availability", "data-level") == "green"
        page.wait_for_function(
            f"(ids) => Object.values(({SIGNATURES})(ids)).every((graph) => graph.points > 0)",
            arg=list(GRAPHS),
            timeout=30_000,
        )
        last_day = signatures(page)
        assert all(graph["points"] > 0 for graph in last_day.values()), last_day
        assert "status-ok" in (page.get_attribute("#status", "class") or "")
        assert page.locator("table.latest tbody tr").count() == 20
        # The last day: the new model alone, and the shadow scoring the same photos.
        assert version_rows(page, 2) == [NEW_VERSION, f"{SHADOW_VERSION} (shadow)"]
        page.wait_for_function(
            f"(ids) => ({SIGNATURES})(ids)[ids[0]].points === 2", arg=[VERSION_GRAPH]
        )

        # The model watch: the last day's checks of both versions that scored photos.
        page.wait_for_function(
            f"(ids) => Object.values(({SIGNATURES})(ids)).every((graph) => graph.points > 0)",
            arg=list(WATCH_GRAPHS),
            timeout=30_000,
        )
        watched = page.locator("table.watch tbody tr td:first-child").all_inner_texts()
        assert sorted(watched) == sorted([NEW_VERSION, SHADOW_VERSION])

        page.get_by_text("Last 30 days").click()
        page.wait_for_function(
            "() => document.querySelector('#status').textContent.includes('one point per 6 h')",
            timeout=30_000,
        )
        page.wait_for_function(
            f"(before) => {{ const now = ({SIGNATURES})(Object.keys(before));"
            " return Object.keys(before).every((id) => now[id].points > 0"
            " && now[id].data !== before[id].data); }",
            arg={graph: last_day[graph] for graph in GRAPHS},
            timeout=30_000,
        )
        month = signatures(page)
        changed = [graph for graph in GRAPHS if month[graph]["data"] != last_day[graph]["data"]]
        assert changed == list(GRAPHS)
        assert sorted(version_rows(page, 3)) == [
            OLD_VERSION,
            NEW_VERSION,
            f"{SHADOW_VERSION} (shadow)",
        ]
        # The month holds the seeded spell of drift: its checks are marked over the threshold.
        page.wait_for_function(
            "() => { const plot = document.querySelector('#graph-drift .js-plotly-plot');"
            " return plot && plot.data.some("
            "(t) => (t.name || '').endsWith('drifted') && t.x.length); }",
            timeout=30_000,
        )
        # Legends sit above their plot areas, never over the data at the top of a range.
        covered = page.evaluate(
            "() => [...document.querySelectorAll('.js-plotly-plot')].filter((plot) => {"
            " const legend = plot.querySelector('.legend'), area = plot.querySelector('.nsewdrag');"
            " return legend && area && legend.getBoundingClientRect().bottom"
            " > area.getBoundingClientRect().top + 1; }).map((plot) => plot.parentNode.id)"
        )
        assert covered == [], covered
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        english = months_on_time_axis(page)
        assert "Feb 1" in english, english

        assert page.goto(service.url + "/monitoring/?lang=fr").status == 200
        page.wait_for_function(
            f"(ids) => ({SIGNATURES})(ids)[ids[0]].points > 0",
            arg=["graph-traffic"],
            timeout=30_000,
        )
        french = months_on_time_axis(page)
        assert "1 Fév" in french, french
        assert not [label for label in french if "Feb" in label], french
        page.screenshot(path=str(tmp_path / "dashboard-fr.png"), full_page=True)
    assert not [p for p in problems if "Content Security Policy" in p], problems
    # The 1.2 MB basic bundle from assets replaces Dash's lazily loaded 4.8 MB full one.
    assert any(url.split("?")[0].endswith("/vendor/plotly-basic.min.js") for url in scripts)
    assert not [url for url in scripts if "plotly.min.js" in url.split("?")[0]], scripts
