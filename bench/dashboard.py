"""Dashboard benchmark on a year of data: page render and every callback, against the goals.

`python -m bench.dashboard --help`. For each size (1 000 000 and 10 000 000 rows by default),
`monitoring` of its own database holds that many rows over 365 days (seeded once, reused while
the count matches and its newest row is under a day old), with its roll-ups caught up. For each
range every callback is posted 10 times over HTTP; the ceiling, measured in the same run, is
the SQL alone (the same `Queries` on an asyncpg pool, no HTTP, no figures). For the 30-day
range the page is also loaded in a fresh browser context 10 times (first visit: nothing cached)
until every graph has data; its ceiling is the browser floor: the same browser drawing the same
figures with Plotly alone. Goals: every callback under 300 ms, the page within 1.2 × the floor.
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
from services.common.migrate import (
    apply_migrations,
    create_database_if_missing,
    database_name,
    with_database,
)
from services.dashboard import rollups
from services.dashboard.app import ASSETS_DIR
from services.dashboard.layout import GRAPHS, VERSION_GRAPH, WATCH_GRAPHS
from services.dashboard.queries import Queries
from services.dashboard.seed import seed
from services.dashboard.window import Window, resolve

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/cv_bench_dashboard"
# The Plotly.js bundle the page itself loads.
PLOTLY_BUNDLE = ASSETS_DIR / "vendor" / "plotly-basic.min.js"
# Every graph of the page: what the page waits for and what the browser floor draws.
ALL_GRAPHS = [*GRAPHS, VERSION_GRAPH, *WATCH_GRAPHS]
CALLBACK_GOAL_S = 0.3
PAGE_GOAL_VS_FLOOR = 1.2
# The range whose whole page is measured.
PAGE_RANGE = "30d"
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
    "versions": [("versions-table", "children"), (VERSION_GRAPH, "figure")],
    "watch": [("watch-table", "children"), *((graph, "figure") for graph in WATCH_GRAPHS)],
    "latest": [("latest-table", "children")],
}
SQL_ONLY: dict[str, Callable[[Queries, Window], Awaitable[Any]]] = {
    "status": lambda q, w: asyncio.gather(q.summary(w, THRESHOLD), q.latest_prediction_time()),
    "series": lambda q, w: q.series(w, THRESHOLD),
    "latency": lambda q, w: asyncio.gather(q.latency_series(w), q.latency_histogram(w)),
    "confidence": lambda q, w: q.confidence_histogram(w),
    "satisfaction": lambda q, w: q.feedback_series(w),
    "versions": lambda q, w: q.versions(w),
    "watch": lambda q, w: asyncio.gather(q.watch_series(w), q.watch_latest(w)),
    "latest": lambda q, w: q.latest(w, 20),
}
PAGE_READY = """
(ids) => document.querySelectorAll('#kpis .kpi').length > 0 && ids.every((id) => {
  const plot = document.querySelector('#' + id + ' .js-plotly-plot');
  return plot && plot.data && plot.data.some((t) => (t.y || []).length > 0);
})
"""


def prepare_database(url: str, rows: int, days: float, reseed: bool) -> float:
    """Migrate, seed unless the table already holds exactly `rows` recent rows, and catch the
    roll-ups up; returns the seconds the catching up took."""
    create_database_if_missing(url)
    apply_migrations(url)
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute("SELECT count(*), max(created_at) FROM monitoring").fetchone()
    count, newest = row if row else (0, None)
    fresh = newest is not None and datetime.now(UTC) - newest < timedelta(days=1)
    if reseed or count != rows or not fresh:
        seed(url, rows=rows, days=days, replace=True)  # its TRUNCATE empties the roll-ups
    started = time.perf_counter()
    rollups.main(["--database-url", url])
    return time.perf_counter() - started


def ranges(days: float) -> dict[str, tuple[str, str | None, str | None]]:
    """The ranges measured: the presets, and the whole seeded period as a custom range."""
    today = datetime.now(UTC).date()
    first = today - timedelta(days=int(days) - 1)
    return {
        "1h": ("1h", None, None),
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
                if component in ALL_GRAPHS:
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
            page.wait_for_function(PAGE_READY, arg=ALL_GRAPHS, timeout=120_000)
            timings.append(time.perf_counter() - started)
            if screenshot is not None and index == loads - 1:
                page.wait_for_timeout(500)
                page.screenshot(path=str(screenshot), full_page=True)
            context.close()
        browser.close()
    return statistics.median(timings)


def measure_plotly_floor(figures: dict[str, Any], loads: int) -> float:
    """p50 seconds for the same browser to load Plotly.js from disk and draw the same figures.

    No server, no Dash: what drawing the page's graphs costs this machine right now, the
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
    url: str,
    selector: tuple[str, str | None, str | None],
    loads: int,
    *,
    page: bool,
    screenshot: Path | None,
) -> dict[str, Any]:
    """One dashboard process showing this range first: its callbacks, and its page if asked."""
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
        page_s = measure_page(service.url, loads, screenshot) if page else None
        callbacks, figures = measure_callbacks(service.url, selector, loads)
    sql = measure_sql(url, resolve(preset, start, end), loads)
    floor = measure_plotly_floor(figures, loads) if page_s is not None else None
    return {
        "page_s": page_s,
        "plotly_floor_s": floor,
        "page_vs_floor": page_s / floor if page_s is not None and floor else None,
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


def measure_size(
    base_url: str, rows: int, days: float, loads: int, reseed: bool, screenshot: Path | None
) -> dict[str, Any]:
    """Every range on a database of `rows` rows (its own, named after the size)."""
    url = with_database(base_url, f"{database_name(base_url)}_{rows}")
    catch_up_s = prepare_database(url, rows, days, reseed)
    return {
        "rows": rows,
        "rollup_catch_up_s": catch_up_s,
        "ranges": {
            name: measure_range(
                url, selector, loads, page=name == PAGE_RANGE,
                screenshot=screenshot if name == PAGE_RANGE else None,
            )
            for name, selector in ranges(days).items()
        },
    }  # fmt: skip


def print_size(entry: dict[str, Any], days: float, loads: int) -> None:
    print(f"dashboard on {entry['rows']:,} rows over {days:g} days, p50 of {loads} loads")
    print("  callback p50 ms (/300 ms goal, /SQL-only ceiling)")
    for name, found in entry["ranges"].items():
        parts = ", ".join(
            f"{cb} {v['http_s'] * 1000:.0f} ({v['vs_goal']:.2f}, {v['vs_sql_ceiling']:.1f}x)"
            for cb, v in found["callbacks"].items()
        )
        print(f"  {name:>5}: {parts}")
        if found["page_s"] is not None:
            print(
                f"  {name:>5}: page {found['page_s']:.2f} s, browser floor "
                f"{found['plotly_floor_s']:.2f} s: {found['page_vs_floor']:.2f} x the floor "
                f"(goal {PAGE_GOAL_VS_FLOOR})"
            )
    worst = max(
        v["vs_goal"] for found in entry["ranges"].values() for v in found["callbacks"].values()
    )
    print(f"  slowest callback: {worst:.2f} of the 300 ms goal")


def main(argv: list[str] | None = None) -> int:
    """Seed if needed, start the dashboard, measure, print ratios, write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[1_000_000, 10_000_000],
        help="rows in monitoring, one database per size (default 1000000 10000000)",
    )  # fmt: skip
    parser.add_argument("--days", type=float, default=365, help="period the rows span")
    parser.add_argument("--loads", type=int, default=10, help="loads per measurement (p50)")
    parser.add_argument("--reseed", action="store_true", help="seed again even if rows match")
    parser.add_argument("--screenshot", type=Path, help="save the 30-day page as a PNG here")
    args = parser.parse_args(argv)
    if min(args.rows) < 1 or args.days <= 0:
        parser.error("--rows must be positive and --days greater than zero")
    base_url = os.environ.get("BENCH_DASHBOARD_DATABASE_URL", DEFAULT_DATABASE_URL)
    report: dict[str, Any] = {
        "days": args.days,
        "loads": args.loads,
        "goals": {"callback_s": CALLBACK_GOAL_S, "page_vs_floor": PAGE_GOAL_VS_FLOOR},
        "sizes": [],
    }
    for rows in args.rows:
        entry = measure_size(base_url, rows, args.days, args.loads, args.reseed, args.screenshot)
        report["sizes"].append(entry)
        print_size(entry, args.days, args.loads)
    report["load_average_1m"] = os.getloadavg()[0]
    path = write_result("dashboard", report)
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
