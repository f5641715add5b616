"""Dash callbacks: each turns the selected range into a few aggregate queries and figures.

Callbacks are coroutines: Dash's FastAPI backend awaits them on the server's event loop, so they
share the service's asyncpg pool. Every graph shares the same range inputs and the refresh tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from dash import Dash, Input, Output, html
from fastapi import FastAPI

from services.common.thresholds import LOW_CONFIDENCE
from services.dashboard import figures, metrics
from services.dashboard.layout import VERSION_GRAPH, WATCH_GRAPHS
from services.dashboard.queries import Queries, QueryFailed, Summary, VersionFigures
from services.dashboard.rates import MIN_TRUSTED_COUNT, Z95, describe_rate, wilson_intervals
from services.dashboard.settings import Settings
from services.dashboard.window import Window, resolve

logger = logging.getLogger(__name__)

RANGE_INPUTS = [
    Input("range-preset", "value"),
    Input("range-custom", "start_date"),
    Input("range-custom", "end_date"),
    Input("refresh", "n_intervals"),
]
SEED_HINT = "python -m services.dashboard.seed --rows 100000"


def failure_text(failure: QueryFailed) -> str:
    """What a panel says when its data could not be read."""
    if failure.reason == "unreachable":
        return "PostgreSQL is unreachable — this graph fills in again once it answers."
    return f"No data: {failure.message}."


def empty_text(window: Window) -> str:
    """What a panel says when the range holds no predictions."""
    return f"No predictions between {window.describe()}"


async def answer(name: str, outputs: int, work: Callable[[], Awaitable[Any]]) -> Any:
    """Run one callback's work, timed; failed queries become explanatory placeholders."""
    started = time.perf_counter()
    try:
        return await work()
    except QueryFailed as failure:
        figure = figures.placeholder(failure_text(failure))
        return figure if outputs == 1 else [figure] * outputs
    finally:
        metrics.CALLBACK_TIME.labels(callback=name).observe(time.perf_counter() - started)


def _kpi(label: str, value: str, detail: str = "") -> html.Div:
    return html.Div(
        [html.Div(label, className="label"), html.Div(value, className="value"),
         html.Div(detail, className="detail")],
        className="kpi",
    )  # fmt: skip


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} ms"


def kpi_cards(summary: Summary, threshold: float) -> list[html.Div]:
    """Headline numbers; every rate says how many answers it rests on."""
    total = summary.predictions
    share = (lambda part: f"{part / total:.1%}") if total else (lambda part: "—")
    accuracy = f"{summary.satisfied / summary.feedback:.1%}" if summary.feedback else "—"
    return [
        _kpi("Predictions", f"{total:,}", f"{share(summary.cats)} cats"),
        _kpi("Inference time p50 / p95", f"{_ms(summary.p50_ms)}", f"p95 {_ms(summary.p95_ms)}"),
        _kpi(
            "Low-confidence answers",
            share(summary.low_confidence),
            f"{summary.low_confidence:,} below {threshold:.0%}",
        ),
        _kpi(
            "Live accuracy (feedback)",
            accuracy,
            describe_rate(summary.satisfied, summary.feedback, "feedbacks"),
        ),
        _kpi("Consented records", share(summary.consented), f"{summary.consented:,} of {total:,}"),
        _kpi(
            "Feedback received",
            f"{summary.feedback:,}",
            f"{share(summary.feedback)} of predictions",
        ),
    ]


def status_banner(summary: Summary, latest: datetime | None, window: Window) -> tuple[str, str]:
    """The sentence above the graphs and its style."""
    if latest is None:
        return (
            "No predictions recorded yet. Classify a photo, or load sample data with "
            f"`{SEED_HINT}`.",
            "status status-empty",
        )
    if summary.predictions == 0:
        return (
            f"No predictions between {window.describe()}; the latest is from "
            f"{latest:%Y-%m-%d %H:%M} UTC. Choose a longer range.",
            "status status-empty",
        )
    now = datetime.now(UTC)
    return (
        f"{summary.predictions:,} predictions, {window.describe()} "
        f"(one point per {window.step()}). Updated {now:%H:%M:%S} UTC.",
        "status status-ok",
    )


def latest_table(rows: list[Any]) -> html.Table:
    """The newest predictions; identifiers are shown only where the user consented."""
    feedback_words = {1: "satisfied", 0: "unsatisfied", None: "—"}
    header = html.Tr(
        [html.Th(name) for name in ("time (UTC)", "prediction", "confidence", "inference",
                                    "model", "feedback", "consent", "id")]
    )  # fmt: skip
    body = [
        html.Tr(
            [
                html.Td(f"{row['created_at']:%Y-%m-%d %H:%M:%S}"),
                html.Td(row["prediction_result"]),
                html.Td(f"{row['confidence']:.1%}", className="num"),
                html.Td(f"{row['inference_time_ms']:.1f} ms", className="num"),
                html.Td(row["model_version"]),
                html.Td(feedback_words.get(row["user_feedback"], "—")),
                html.Td("yes" if row["rgpd_consent"] else "no"),
                html.Td(str(row["id"])[:8] if row["rgpd_consent"] else "—"),
            ]
        )
        for row in rows
    ]
    return html.Table([html.Thead(header), html.Tbody(body)], className="latest")


def role_text(item: VersionFigures) -> str:
    """The version's registry role now, with its traffic share when it is the canary."""
    if item.role is None:
        return "not in the registry"
    role = f"canary, {item.canary_share:.0%} of traffic" if item.canary_share else item.role
    return f"{role} since {item.role_since:%Y-%m-%d %H:%M}" if item.role_since else role


def versions_table(items: list[VersionFigures]) -> html.Table:
    """One row per version (then per shadow): traffic, classes, confidence, latency, accuracy."""
    intervals = wilson_intervals([i.correct for i in items], [i.labelled for i in items])
    header = html.Tr(
        [html.Th(name) for name in ("model version", "registry role", "answers", "share",
                                    "cats", "mean confidence", "p50 / p95", "accuracy",
                                    "95% interval", "agreement")]
    )  # fmt: skip
    body = []
    for item, interval in zip(items, intervals, strict=True):
        if interval is None:
            accuracy, bounds = "no labelled feedback", "—"
        else:
            accuracy = f"{item.correct / item.labelled:.1%} ({item.correct:,} of {item.labelled:,})"
            bounds = f"{interval[0]:.1%}–{interval[1]:.1%}"
            if item.labelled < MIN_TRUSTED_COUNT:
                bounds += " · too few to judge"
        agreement = (
            f"{item.agreed / item.answers:.1%} ({item.agreed:,} of {item.answers:,})"
            if item.agreed is not None and item.answers
            else "—"
        )
        cells = [
            html.Td(figures.version_label(item)),
            html.Td(role_text(item)),
            html.Td(f"{item.answers:,}", className="num"),
            html.Td(f"{item.share:.1%}", className="num"),
            html.Td(f"{item.cats / item.answers:.1%}", className="num"),
            html.Td(f"{item.mean_confidence:.1%}", className="num"),
            html.Td(f"{item.p50_ms:.1f} / {item.p95_ms:.1f} ms", className="num"),
            html.Td(accuracy, className="num"),
            html.Td(bounds, className="num"),
            html.Td(agreement, className="num"),
        ]
        body.append(html.Tr(cells, className="shadow" if item.shadow else "served"))
    return html.Table([html.Thead(header), html.Tbody(body)], className="versions")


def _drift_text(check: Any) -> str:
    if check["drift_score"] is None:
        if check["reference_size"] is None:
            return "no reference set in its card"
        return f"window filling ({check['window_size']:,} answers)"
    verdict = "drift" if check["drift_score"] > check["drift_threshold"] else "no drift"
    return f"{verdict} (p = {check['drift_p_value']:.3f}, {check['window_size']:,} answers)"


def _estimate_text(check: Any) -> str:
    if check["estimated_accuracy"] is None:
        return "—"
    half = Z95 * check["estimated_stderr"]
    return f"{check['estimated_accuracy']:.1%} ± {half:.1%} ({check['predictions']:,} answers)"


def _feedback_text(check: Any) -> str:
    if check["feedback_accuracy"] is None:
        return "no labelled answers"
    return f"{check['feedback_accuracy']:.1%} ({check['labelled']:,} labelled)"


def watch_table(checks: list[Any]) -> html.Table:
    """Each version's newest check: drift verdict, estimated and feedback accuracy, ECE."""
    header = html.Tr(
        [html.Th(name) for name in ("model version", "checked (UTC)", "embedding drift",
                                    "estimated accuracy", "feedback accuracy",
                                    "calibration error")]
    )  # fmt: skip
    body = [
        html.Tr(
            [
                html.Td(check["version"]),
                html.Td(f"{check['at']:%Y-%m-%d %H:%M:%S}"),
                html.Td(_drift_text(check), className="num"),
                html.Td(_estimate_text(check), className="num"),
                html.Td(_feedback_text(check), className="num"),
                html.Td(
                    "—"
                    if check["calibration_error"] is None
                    else f"{check['calibration_error']:.1%}",
                    className="num",
                ),
            ],
            className="drifted"
            if check["drift_score"] is not None and check["drift_score"] > check["drift_threshold"]
            else "served",
        )
        for check in checks
    ]
    return html.Table([html.Thead(header), html.Tbody(body)], className="versions watch")


def register_callbacks(dash_app: Dash, app: FastAPI, settings: Settings) -> None:
    """Attach every callback; `app.state.queries` exists once the lifespan has started."""
    threshold = LOW_CONFIDENCE

    def queries() -> Queries:
        found: Queries = app.state.queries
        return found

    def window_of(preset: str | None, start: str | None, end: str | None) -> Window:
        return resolve(preset, start, end, default=settings.dashboard_default_range)

    @dash_app.callback(Output("refresh", "disabled"), Input("auto-refresh", "value"))
    async def toggle_refresh(value: list[str] | None) -> bool:
        return not (isinstance(value, list) and "on" in value)

    @dash_app.callback(
        Output("status", "children"),
        Output("status", "className"),
        Output("kpis", "children"),
        *RANGE_INPUTS,
    )
    async def status(preset: str, start: str, end: str, _tick: int) -> Any:
        started = time.perf_counter()
        window = window_of(preset, start, end)
        try:
            summary, latest = await asyncio.gather(
                queries().summary(window, threshold), queries().latest_prediction_time()
            )
        except QueryFailed as failure:
            if failure.reason == "unreachable":
                text = (
                    "PostgreSQL is unreachable: the dashboard keeps retrying and fills in again "
                    "as soon as the database answers."
                )
            else:
                text = f"The dashboard cannot read its data: {failure.message}."
            return text, "status status-error", []
        finally:
            metrics.CALLBACK_TIME.labels(callback="status").observe(time.perf_counter() - started)
        text, style = status_banner(summary, latest, window)
        return text, style, kpi_cards(summary, threshold)

    @dash_app.callback(
        Output("graph-traffic", "figure"),
        Output("graph-versions", "figure"),
        Output("graph-low-confidence", "figure"),
        Output("graph-consent", "figure"),
        *RANGE_INPUTS,
    )
    async def series(preset: str, start: str, end: str, _tick: int) -> Any:
        async def work() -> Any:
            window = window_of(preset, start, end)
            rows = await queries().series(window, threshold)
            if not rows:
                return [figures.placeholder(empty_text(window))] * 4
            buckets = window.buckets()
            return (
                figures.traffic(rows, buckets),
                figures.versions(rows, buckets),
                figures.low_confidence(rows, buckets),
                figures.consent(rows, buckets),
            )

        return await answer("series", 4, work)

    @dash_app.callback(
        Output("graph-latency-series", "figure"),
        Output("graph-latency-histogram", "figure"),
        *RANGE_INPUTS,
    )
    async def latency(preset: str, start: str, end: str, _tick: int) -> Any:
        async def work() -> Any:
            window = window_of(preset, start, end)
            series, histogram = await asyncio.gather(
                queries().latency_series(window), queries().latency_histogram(window)
            )
            if not series:
                return [figures.placeholder(empty_text(window))] * 2
            return (
                figures.latency_series(series, window.buckets()),
                figures.latency_histogram(histogram),
            )

        return await answer("latency", 2, work)

    @dash_app.callback(Output("graph-confidence", "figure"), *RANGE_INPUTS)
    async def confidence(preset: str, start: str, end: str, _tick: int) -> Any:
        async def work() -> Any:
            window = window_of(preset, start, end)
            rows = await queries().confidence_histogram(window)
            if not rows:
                return figures.placeholder(empty_text(window))
            return figures.confidence_histogram(rows, threshold)

        return await answer("confidence", 1, work)

    @dash_app.callback(Output("graph-satisfaction", "figure"), *RANGE_INPUTS)
    async def satisfaction(preset: str, start: str, end: str, _tick: int) -> Any:
        async def work() -> Any:
            window = window_of(preset, start, end)
            rows = await queries().feedback_series(window)
            if not rows:
                return figures.placeholder(
                    f"No feedback on predictions between {window.describe()}"
                )
            return figures.satisfaction(rows, window.buckets())

        return await answer("satisfaction", 1, work)

    @dash_app.callback(
        Output("versions-table", "children"), Output(VERSION_GRAPH, "figure"), *RANGE_INPUTS
    )
    async def versions(preset: str, start: str, end: str, _tick: int) -> Any:
        started = time.perf_counter()
        window = window_of(preset, start, end)
        try:
            items = await queries().versions(window)
        except QueryFailed as failure:
            return html.P(failure_text(failure)), figures.placeholder(failure_text(failure))
        finally:
            metrics.CALLBACK_TIME.labels(callback="versions").observe(time.perf_counter() - started)
        if not items:
            return html.P(empty_text(window)), figures.placeholder(empty_text(window))
        if not any(item.labelled for item in items):
            return versions_table(items), figures.placeholder(
                f"No labelled feedback on predictions between {window.describe()}"
            )
        return versions_table(items), figures.version_accuracy(items)

    @dash_app.callback(
        Output("watch-table", "children"),
        *(Output(graph_id, "figure") for graph_id in WATCH_GRAPHS),
        *RANGE_INPUTS,
    )
    async def watch(preset: str, start: str, end: str, _tick: int) -> Any:
        started = time.perf_counter()
        window = window_of(preset, start, end)
        try:
            series, checks = await asyncio.gather(
                queries().watch_series(window), queries().watch_latest(window)
            )
        except QueryFailed as failure:
            return html.P(failure_text(failure)), *[figures.placeholder(failure_text(failure))] * 3
        finally:
            metrics.CALLBACK_TIME.labels(callback="watch").observe(time.perf_counter() - started)
        if not checks:
            text = (
                f"No model-watch checks between {window.describe()}: inference checks each "
                "served version every DRIFT_INTERVAL_S once it has answered."
            )
            return html.P(text), *[figures.placeholder(text)] * 3
        drift = (
            figures.drift(series, window.buckets())
            if any(row["drift_score"] is not None for row in series)
            else figures.placeholder("No full window of answers yet (DRIFT_WINDOW) to test")
        )
        reliability = (
            figures.reliability(checks)
            if any(check["reliability"] is not None for check in checks)
            else figures.placeholder(
                f"No labelled answers on the versions checked between {window.describe()}"
            )
        )
        return (
            watch_table(checks),
            drift,
            figures.estimated_accuracy(series, window.buckets()),
            reliability,
        )

    @dash_app.callback(Output("latest-table", "children"), *RANGE_INPUTS)
    async def latest(preset: str, start: str, end: str, _tick: int) -> Any:
        started = time.perf_counter()
        window = window_of(preset, start, end)
        try:
            rows = await queries().latest(window, settings.dashboard_latest_rows)
        except QueryFailed as failure:
            return html.P(failure_text(failure))
        finally:
            metrics.CALLBACK_TIME.labels(callback="latest").observe(time.perf_counter() - started)
        return latest_table(rows) if rows else html.P(empty_text(window))
