"""Dashboard benchmark on a year of data: page render and every callback, against the goals.

`python -m bench.dashboard --help`. `monitoring` of its own database holds 1 000 000 rows over
365 days (seeded once, reused while the count matches). For each range, the page is loaded in
a fresh browser context 10 times (first visit: nothing cached) until every graph has data, and
each callback is posted 10 times over HTTP. The ceiling, measured in the same run, is the SQL
alone (the same `Queries` on an asyncpg pool, no HTTP, no figures). Goals: every callback under
300 ms, the whole page under 1.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.support import write_result
from harness.browser import CHROMIUM_ARGS, chromium_path
from harness.services import ServiceProcess
from services.common.db import Database
from services.common.migrate import apply_migrations, create_database_if_missing
from services.dashboard.app import ASSETS_DIR
from services.dashboard.layout import GRAPHS
from services.dashboard.queries import Queries
from services.dashboard.seed import seed
from services.dashboard.window import Window, resolve

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/cv_bench_dashboard"
# The Plotly.js bundle the page itself loads.
PLOTLY_BUNDLE = ASSETS_DIR / "vendor" / "plotly-basic.min.js"
CALLBACK_GOAL_S = 0.3
PAGE_GOAL_S = 1.5
# Random per run: a password written here would be published, and refused outside DEV_MODE.
USER, PASSWORD = "monitoring", f"bench-{secrets.token_hex(16)}"
THRESHOLD = 0.8
RANGE_IDS = [
    ("range-preset", "value"),
    ("range-custom", "start_date"),
    ("range-custom", "end_date"),
    ("refresh", "n_intervals"),
]
CALLBACKS: dict[str, list[tuple[str, str]]] = {
    "status": [("status", "children"), ("status", "className"), ("kpis", "children")],
    "series": [
        ("graph-traffic", "figure"),
        ("graph-versions", "figure"),
        ("graph-low-confidence", "figure"),
        ("graph-consent", "figure"),
    ],
    "latency": [("graph-latency-series", "figure"), ("graph-latency-histogram", "figure")],
    "confidence": [("graph-confidence", "figure")],
    "satisfaction": [("graph-satisfaction", "figure")],
    "latest": [("latest-table", "children")],
}
SQL_ONLY: dict[str, Callable[[Queries, Window], Awaitable[Any]]] = {
    "status": lambda q, w: asyncio.gather(q.summary(w, THRESHOLD), q.latest_prediction_time()),
    "series": lambda q, w: q.series(w, THRESHOLD),
    "latency": lambda q, w: asyncio.gather(q.latency_series(w), q.latency_histogram(w)),
    "confidence": lambda q, w: q.confidence_histogram(w),
    "satisfaction": lambda q, w: q.feedback_series(w),
    "latest": lambda q, w: q.latest(w, 20),
}
PAGE_READY = """
(ids) => document.querySelectorAll('#kpis .kpi').length > 0 && ids.every((id) => {
  const plot = document.querySelector('#' + id + ' .js-plotly-plot');
  return plot && plot.data && plot.data.some((t) => (t.y || []).length > 0);
})
"""


def prepare_database(url: str, rows: int, days: float, reseed: bool) -> None:
    """Migrate, and seed unless the table already holds exactly `rows` rows."""
    create_database_if_missing(url)
    apply_migrations(url)
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute("SELECT count(*), max(created_at) FROM monitoring").fetchone()
    count, newest = row if row else (0, None)
    fresh = newest is not None and datetime.now(UTC) - newest < timedelta(hours=1)
    if reseed or count != rows or not fresh:
        seed(url, rows=rows, days=days, replace=True)


def ranges(days: float) -> dict[str, tuple[str, str | None, str | None]]:
    """The ranges measured: the presets, and the whole seeded period as a custom range."""
    today = datetime.now(UTC).date()
    first = today - timedelta(days=int(days) - 1)
    return {
        "24h": ("24h", None, None),
        "7d": ("7d", None, None),
        "30d": ("30d", None, None),
        f"{int(days)}d": ("custom", first.isoformat(), today.isoformat()),
    }


def callback_body(outputs: list[tuple[str, str]], values: list[Any]) -> dict[str, Any]:
    """The request the page sends for one callback."""
    many = len(outputs) > 1
    return {
        "output": (
            ".." + "...".join(f"{i}.{p}" for i, p in outputs) + ".."
            if many
            else f"{outputs[0][0]}.{outputs[0][1]}"
        ),
        "outputs": (
            [{"id": i, "property": p} for i, p in outputs]
            if many
            else {"id": outputs[0][0], "property": outputs[0][1]}
        ),
        "inputs": [
            {"id": i, "property": p, "value": v}
            for (i, p), v in zip(RANGE_IDS, values, strict=True)
        ],
        "changedPropIds": ["range-preset.value"],
    }


def measure_callbacks(
    base_url: str, selector: tuple[Any, ...], loads: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """p50 seconds of each callback over HTTP (after one warm-up call), and the figures sent."""
    result = {}
    figures: dict[str, Any] = {}
    with httpx.Client(base_url=base_url, auth=(USER, PASSWORD), timeout=60) as client:
        for name, outputs in CALLBACKS.items():
            body = callback_body(outputs, [*selector, 0])
            timings = []
            for index in range(loads + 1):
                started = time.perf_counter()
                response = client.post("/monitoring/_dash-update-component", json=body)
                elapsed = time.perf_counter() - started
                response.raise_for_status()
                if index:
                    timings.append(elapsed)
            result[name] = statistics.median(timings)
            for component, props in response.json()["response"].items():
                if component in GRAPHS:
                    figures[component] = props["figure"]
    return result, figures


def measure_sql(url: str, window: Window, loads: int) -> dict[str, float]:
    """p50 seconds of each callback's SQL alone, as the callbacks run it."""

    async def run() -> dict[str, float]:
        database = Database(url, max_size=10, probe_interval_s=60)
        await database.start()
        queries = Queries(database, timeout_s=120)
        result = {}
        try:
            for name, work in SQL_ONLY.items():
                timings = []
                for index in range(loads + 1):
                    started = time.perf_counter()
                    await work(queries, window)
                    if index:
                        timings.append(time.perf_counter() - started)
                result[name] = statistics.median(timings)
        finally:
            await database.close()
        return result

    return asyncio.run(run())


def measure_page(base_url: str, loads: int, screenshot: Path | None) -> float:
    """p50 seconds from navigation to every graph drawn with data, fresh context each load."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise SystemExit("Chromium is not installed (apt-get install chromium)")
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    timings = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        for index in range(loads):
            context = browser.new_context(
                viewport={"width": 1400, "height": 1000},
                extra_http_headers={"Authorization": f"Basic {token}"},
            )
            page = context.new_page()
            started = time.perf_counter()
            page.goto(base_url + "/monitoring/")
            page.wait_for_function(PAGE_READY, arg=list(GRAPHS), timeout=120_000)
            timings.append(time.perf_counter() - started)
            if screenshot is not None and index == loads - 1:
                page.wait_for_timeout(500)
                page.screenshot(path=str(screenshot), full_page=True)
            context.close()
        browser.close()
    return statistics.median(timings)


def measure_plotly_floor(figures: dict[str, Any], loads: int) -> float:
    """p50 seconds for the same browser to load Plotly.js from disk and draw the same figures.

    No server, no Dash: what drawing these eight graphs costs this machine right now, the
    ceiling the page's own time is compared with. Same bundle as the page: Plotly's basic one.
    """
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="cv-bench-plotly-"))
    shutil.copy(PLOTLY_BUNDLE, folder / "plotly.min.js")
    divs = "".join(f'<div id="{graph}"></div>' for graph in figures)
    script = (
        f"const figures = {json.dumps(figures)};"
        "Promise.all(Object.entries(figures).map(([id, f]) =>"
        " Plotly.newPlot(id, f.data, f.layout, {responsive: true})))"
        ".then(() => { window.drawn = true; });"
    )
    (folder / "floor.html").write_text(
        f'<html><body>{divs}<script src="plotly.min.js"></script>'
        f"<script>{script}</script></body></html>"
    )
    timings = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        for _ in range(loads):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            started = time.perf_counter()
            page.goto((folder / "floor.html").as_uri())
            page.wait_for_function("() => window.drawn === true", timeout=120_000)
            timings.append(time.perf_counter() - started)
            context.close()
        browser.close()
    return statistics.median(timings)


def measure_range(
    url: str, selector: tuple[str, str | None, str | None], loads: int, screenshot: Path | None
) -> dict[str, Any]:
    """One dashboard process showing this range first: its page (presets) and callbacks."""
    preset, start, end = selector
    env = {
        "DATABASE_URL": url,
        "DASHBOARD_USER": USER,
        "DASHBOARD_PASSWORD": PASSWORD,
        "DASHBOARD_DEFAULT_RANGE": preset if preset != "custom" else "24h",
        "DEV_MODE": "false",
        "LOG_LEVEL": "WARNING",
    }
    log_dir = Path(tempfile.mkdtemp(prefix="cv-bench-dashboard-"))
    with ServiceProcess("dashboard", env, log_dir) as service:
        # A custom range is picked in the page after it loads: only its callbacks are timed.
        page = None if preset == "custom" else measure_page(service.url, loads, screenshot)
        callbacks, figures = measure_callbacks(service.url, selector, loads)
    sql = measure_sql(url, resolve(preset, start, end), loads)
    floor = None if page is None else measure_plotly_floor(figures, loads)
    return {
        "page_s": page,
        "page_vs_goal": page / PAGE_GOAL_S if page is not None else None,
        "plotly_floor_s": floor,
        "page_vs_floor": page / floor if page is not None and floor else None,
        "callbacks": {
            name: {
                "http_s": callbacks[name],
                "sql_only_s": sql[name],
                "vs_goal": callbacks[name] / CALLBACK_GOAL_S,
                "vs_sql_ceiling": callbacks[name] / sql[name] if sql[name] else None,
            }
            for name in CALLBACKS
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Seed if needed, start the dashboard, measure, print ratios, write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in monitoring")
    parser.add_argument("--days", type=float, default=365, help="period the rows span")
    parser.add_argument("--loads", type=int, default=10, help="loads per measurement (p50)")
    parser.add_argument("--reseed", action="store_true", help="seed again even if rows match")
    parser.add_argument("--screenshot", type=Path, help="save the 30-day page as a PNG here")
    args = parser.parse_args(argv)
    url = os.environ.get("BENCH_DASHBOARD_DATABASE_URL", DEFAULT_DATABASE_URL)
    prepare_database(url, args.rows, args.days, args.reseed)

    report: dict[str, Any] = {
        "rows": args.rows,
        "days": args.days,
        "loads": args.loads,
        "goals_s": {"callback": CALLBACK_GOAL_S, "page": PAGE_GOAL_S},
        "ranges": {},
    }
    for name, selector in ranges(args.days).items():
        shot = args.screenshot if name == "30d" else None
        report["ranges"][name] = measure_range(url, selector, args.loads, shot)
    report["load_average_1m"] = os.getloadavg()[0]
    path = write_result("dashboard", report)
    print(f"dashboard on {args.rows:,} rows over {args.days:g} days, p50 of {args.loads} loads")
    print(
        f"{'range':>6} {'page s':>7} {'/1.5s':>6} {'floor s':>7} {'/floor':>6}"
        "  callback: p50 ms (/300 ms goal, /SQL-only)"
    )
    for name, entry in report["ranges"].items():
        parts = ", ".join(
            f"{cb} {v['http_s'] * 1000:.0f} ({v['vs_goal']:.2f}, {v['vs_sql_ceiling']:.1f}x)"
            for cb, v in entry["callbacks"].items()
        )
        page = "-" if entry["page_s"] is None else f"{entry['page_s']:.2f}"
        ratio = "-" if entry["page_vs_goal"] is None else f"{entry['page_vs_goal']:.2f}"
        floor = "-" if entry["plotly_floor_s"] is None else f"{entry['plotly_floor_s']:.2f}"
        vs_floor = "-" if entry["page_vs_floor"] is None else f"{entry['page_vs_floor']:.2f}"
        print(f"{name:>6} {page:>7} {ratio:>6} {floor:>7} {vs_floor:>6}  {parts}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
