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

from services.common.proportions import Z95, wilson_interval
from services.common.thresholds import LOW_CONFIDENCE
from services.dashboard import figures, health, metrics
from services.dashboard.language import count, decimal, describe, moment, percent, step, t
from services.dashboard.layout import VERSION_GRAPH, WATCH_GRAPHS
from services.dashboard.queries import Queries, QueryFailed, Summary, VersionFigures
from services.dashboard.rates import MIN_TRUSTED_COUNT, describe_rate
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
ROLE_KEYS = {"role.active", "role.shadow", "role.canary", "role.registered", "role.retired"}


def failure_text(failure: QueryFailed) -> str:
    """What a panel says when its data could not be read."""
    if failure.reason == "unreachable":
        return t("failure.unreachable")
    return t("failure.other", message=failure.message)


def empty_text(window: Window) -> str:
    """What a panel says when the range holds no predictions."""
    return t("empty.predictions", range=describe(window))


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
    return "—" if value is None else f"{decimal(value)} ms"


def kpi_cards(summary: Summary, threshold: float) -> list[html.Div]:
    """Headline numbers; every rate says how many answers it rests on."""
    total = summary.predictions
    share = (lambda part: percent(part / total)) if total else (lambda part: "—")
    accuracy = percent(summary.satisfied / summary.feedback) if summary.feedback else "—"
    return [
        _kpi(t("kpi.predictions"), count(total), t("kpi.cats", share=share(summary.cats))),
        _kpi(t("kpi.latency"), _ms(summary.p50_ms), t("kpi.p95", value=_ms(summary.p95_ms))),
        _kpi(
            t("kpi.low_confidence"),
            share(summary.low_confidence),
            t("kpi.below", count=count(summary.low_confidence), threshold=percent(threshold, 0)),
        ),
        _kpi(
            t("kpi.accuracy"),
            accuracy,
            describe_rate(summary.satisfied, summary.feedback, t("rate.feedbacks")),
        ),
        _kpi(
            t("kpi.consented"),
            share(summary.consented),
            t("kpi.part_of", part=count(summary.consented), total=count(total)),
        ),
        _kpi(
            t("kpi.feedback"),
            count(summary.feedback),
            t("kpi.of_predictions", share=share(summary.feedback)),
        ),
    ]


def status_banner(summary: Summary, latest: datetime | None, window: Window) -> tuple[str, str]:
    """The sentence above the graphs and its style."""
    if latest is None:
        return t("status.no_predictions", command=SEED_HINT), "status status-empty"
    if summary.predictions == 0:
        return (
            t("status.none_in_range", range=describe(window), latest=moment(latest)),
            "status status-empty",
        )
    text = t(
        "status.ok",
        count=count(summary.predictions),
        range=describe(window),
        step=step(window),
        time=moment(datetime.now(UTC), "%H:%M:%S"),
    )
    return text, "status status-ok"


def latest_table(rows: list[Any]) -> html.Table:
    """The newest predictions; identifiers are shown only where the user consented."""
    feedback_words = {1: t("latest.satisfied"), 0: t("latest.unsatisfied"), None: "—"}
    header = html.Tr(
        [html.Th(t(f"latest.{name}")) for name in ("time", "prediction", "confidence",
                                                   "inference", "model", "feedback", "consent",
                                                   "id")]
    )  # fmt: skip
    labels = {"cat": t("label.cat"), "dog": t("label.dog")}
    body = [
        html.Tr(
            [
                html.Td(moment(row["created_at"], "%Y-%m-%d %H:%M:%S")),
                html.Td(labels.get(row["prediction_result"], row["prediction_result"])),
                html.Td(percent(row["confidence"]), className="num"),
                html.Td(f"{decimal(row['inference_time_ms'])} ms", className="num"),
                html.Td(row["model_version"]),
                html.Td(feedback_words.get(row["user_feedback"], "—")),
                html.Td(t("latest.yes") if row["rgpd_consent"] else t("latest.no")),
                html.Td(str(row["id"])[:8] if row["rgpd_consent"] else "—"),
            ]
        )
        for row in rows
    ]
    return html.Table([html.Thead(header), html.Tbody(body)], className="latest")


def role_text(item: VersionFigures) -> str:
    """The version's registry role now, with its traffic share when it is the canary."""
    if item.role is None:
        return t("role.none")
    if item.canary_share:
        role = t("role.canary_share", share=percent(item.canary_share, 0))
    else:
        role = t(f"role.{item.role}") if f"role.{item.role}" in ROLE_KEYS else item.role
    return t("role.since", role=role, since=moment(item.role_since)) if item.role_since else role


def versions_table(items: list[VersionFigures]) -> html.Table:
    """One row per version (then per shadow): traffic, classes, confidence, latency, accuracy."""
    intervals = [wilson_interval(i.correct, i.labelled) if i.labelled else None for i in items]
    header = html.Tr(
        [html.Th(t(f"versions.{name}")) for name in ("version", "role", "answers", "share",
                                                     "cats", "mean_confidence", "latency",
                                                     "accuracy", "interval", "agreement")]
    )  # fmt: skip
    body = []
    for item, interval in zip(items, intervals, strict=True):
        if interval is None:
            accuracy, bounds = t("versions.no_labelled"), "—"
        else:
            accuracy = t(
                "versions.of",
                rate=percent(item.correct / item.labelled),
                part=count(item.correct),
                total=count(item.labelled),
            )
            bounds = f"{percent(interval[0])}–{percent(interval[1])}"
            if item.labelled < MIN_TRUSTED_COUNT:
                bounds += t("versions.too_few")
        agreement = (
            t(
                "versions.of",
                rate=percent(item.agreed / item.answers),
                part=count(item.agreed),
                total=count(item.answers),
            )
            if item.agreed is not None and item.answers
            else "—"
        )
        cells = [
            html.Td(figures.version_label(item)),
            html.Td(role_text(item)),
            html.Td(count(item.answers), className="num"),
            html.Td(percent(item.share), className="num"),
            html.Td(percent(item.cats / item.answers), className="num"),
            html.Td(percent(item.mean_confidence), className="num"),
            html.Td(f"{decimal(item.p50_ms)} / {decimal(item.p95_ms)} ms", className="num"),
            html.Td(accuracy, className="num"),
            html.Td(bounds, className="num"),
            html.Td(agreement, className="num"),
        ]
        body.append(html.Tr(cells, className="shadow" if item.shadow else "served"))
    return html.Table([html.Thead(header), html.Tbody(body)], className="versions")


def _drift_text(check: Any) -> str:
    if check["drift_score"] is None:
        if check["reference_size"] is None:
            return t("watch.no_reference")
        return t("watch.filling", count=count(check["window_size"]))
    drifted = check["drift_score"] > check["drift_threshold"]
    return t(
        "watch.verdict",
        verdict=t("watch.drifted") if drifted else t("watch.not_drifted"),
        p=decimal(check["drift_p_value"], 3),
        count=count(check["window_size"]),
    )


def _estimate_text(check: Any) -> str:
    if check["estimated_accuracy"] is None:
        return "—"
    return t(
        "watch.estimate",
        rate=percent(check["estimated_accuracy"]),
        half=percent(Z95 * check["estimated_stderr"]),
        count=count(check["predictions"]),
    )


def _feedback_text(check: Any) -> str:
    if check["feedback_accuracy"] is None:
        return t("watch.no_labelled")
    return t(
        "watch.labelled", rate=percent(check["feedback_accuracy"]), count=count(check["labelled"])
    )


def watch_table(checks: list[Any]) -> html.Table:
    """Each version's newest check: drift verdict, estimated and feedback accuracy, ECE."""
    header = html.Tr(
        [html.Th(t(f"watch.{name}")) for name in ("version", "checked", "drift", "estimated",
                                                  "feedback", "calibration")]
    )  # fmt: skip
    body = [
        html.Tr(
            [
                html.Td(check["version"]),
                html.Td(moment(check["at"], "%Y-%m-%d %H:%M:%S")),
                html.Td(_drift_text(check), className="num"),
                html.Td(_estimate_text(check), className="num"),
                html.Td(_feedback_text(check), className="num"),
                html.Td(
                    "—"
                    if check["calibration_error"] is None
                    else percent(check["calibration_error"]),
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


# Verdict values shown as percentages.
_SHARES = frozenset({"accuracy", "low", "floor", "alpha"})


def health_strip(verdicts: list[health.Verdict]) -> list[html.Div]:
    """One light per objective: its name, its colour (also said in words), and why."""
    lights = []
    for verdict in verdicts:
        values = {
            name: percent(value) if name in _SHARES else value
            for name, value in verdict.values.items()
        }
        level: dict[str, Any] = {"data-level": verdict.level}
        lights.append(
            html.Div(
                [
                    html.Strong(t(f"health.{verdict.objective}")),
                    html.Span(t(f"health.level.{verdict.level}"), className="level"),
                    html.Span(t(verdict.reason, **values), className="reason"),
                ],
                id=f"health-{verdict.objective}",
                className=f"light light-{verdict.level}",
                **level,
            )
        )
    return lights


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

    @dash_app.callback(Output("health", "children"), Input("refresh", "n_intervals"))
    async def health_lights(_tick: int) -> Any:
        started = time.perf_counter()
        try:
            return health_strip(await queries().health())
        except QueryFailed as failure:
            return html.Div(failure_text(failure), className="light light-red")
        finally:
            metrics.CALLBACK_TIME.labels(callback="health").observe(time.perf_counter() - started)

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
                text = t("status.unreachable")
            else:
                text = t("status.failed", message=failure.message)
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
                return figures.placeholder(t("empty.feedback", range=describe(window)))
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
                t("empty.labelled", range=describe(window))
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
            text = t("empty.checks", range=describe(window))
            return html.P(text), *[figures.placeholder(text)] * 3
        drift = (
            figures.drift(series, window.buckets())
            if any(row["drift_score"] is not None for row in series)
            else figures.placeholder(t("empty.drift_window"))
        )
        reliability = (
            figures.reliability(checks)
            if any(check["reliability"] is not None for check in checks)
            else figures.placeholder(t("empty.reliability", range=describe(window)))
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
