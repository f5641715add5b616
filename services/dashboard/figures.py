"""Plotly figures built from aggregated query rows; no row-level data reaches this module."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from services.dashboard.queries import CONFIDENCE_BINS, LATENCY_EDGES_MS
from services.dashboard.rates import wilson_interval

COLORS = {"cat": "#e07a5f", "dog": "#3d5a80", "p50": "#3d5a80", "p95": "#e07a5f", "max": "#999"}
VERSION_COLORS = ("#3d5a80", "#e07a5f", "#81b29a", "#f2cc8f", "#6d597a", "#98c1d9")
Rows = Sequence[Any]


def _layout(figure: go.Figure, *, y_title: str = "", percent: bool = False) -> go.Figure:
    figure.update_layout(
        template="plotly_white",
        margin={"l": 50, "r": 20, "t": 10, "b": 40},
        height=280,
        legend={"orientation": "h", "y": 1.12, "x": 0},
        hovermode="x unified",
        uirevision="keep",
    )
    figure.update_yaxes(title_text=y_title, rangemode="tozero")
    if percent:
        figure.update_yaxes(tickformat=".0%", range=[0, 1.02])
    return figure


def placeholder(message: str) -> go.Figure:
    """An empty graph that says why it is empty."""
    figure = go.Figure()
    figure.add_annotation(
        text=message, showarrow=False, font={"size": 15, "color": "#555"}, x=0.5, y=0.5
    )
    figure.update_layout(
        template="plotly_white",
        height=280,
        margin={"l": 20, "r": 20, "t": 10, "b": 20},
        xaxis={"visible": False},
        yaxis={"visible": False},
    )
    return figure


def _totals(rows: Rows, key: str | None, field: str) -> tuple[list[Any], dict[str, dict[Any, int]]]:
    """Buckets in order, and per value of `key` (or one "all" group) the sum of `field`."""
    buckets: list[Any] = []
    sums: dict[str, dict[Any, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        if not buckets or buckets[-1] != row["bucket"]:
            buckets.append(row["bucket"])
        sums[row[key] if key else "all"][row["bucket"]] += row[field]
    return buckets, sums


def traffic(rows: Rows) -> go.Figure:
    """Predictions per bucket, stacked by predicted class."""
    buckets, sums = _totals(rows, "label", "n")
    figure = go.Figure(
        [
            go.Bar(x=buckets, y=[per.get(b, 0) for b in buckets], name=label,
                   marker_color=COLORS.get(label))
            for label, per in sorted(sums.items())
        ]
    )  # fmt: skip
    figure.update_layout(barmode="stack", bargap=0.05)
    return _layout(figure, y_title="predictions")


def latency_series(rows: Rows) -> go.Figure:
    """p50, p95 and max inference time per bucket."""
    x = [row["bucket"] for row in rows]
    figure = go.Figure(
        [
            go.Scatter(x=x, y=[row[key] for row in rows], name=key, mode="lines",
                       line={"color": COLORS[key], "dash": "dot" if key == "max" else "solid"})
            for key in ("p50", "p95", "max")
        ]
    )  # fmt: skip
    return _layout(figure, y_title="inference time (ms)")


def _latency_label(index: int) -> str:
    edges = LATENCY_EDGES_MS
    if index <= 0:
        return f"<{edges[0]}"
    if index >= len(edges):
        return f"≥{edges[-1]}"
    return f"{edges[index - 1]}–{edges[index]}"


def latency_histogram(rows: Rows) -> go.Figure:
    """How many predictions took how long (ms bins, finer where most of them are)."""
    counts = {row["bin"]: row["n"] for row in rows}
    bins = range(1, len(LATENCY_EDGES_MS) + 1)
    figure = go.Figure(
        go.Bar(
            x=[_latency_label(i) for i in bins],
            y=[counts.get(i, 0) for i in bins],
            marker_color=COLORS["dog"],
            name="predictions",
        )
    )
    figure.update_xaxes(title_text="inference time (ms)", type="category")
    return _layout(figure, y_title="predictions")


def confidence_histogram(rows: Rows, threshold: float) -> go.Figure:
    """Distribution of the winning class's probability, low-confidence bins highlighted."""
    width = 0.5 / CONFIDENCE_BINS
    counts = {row["bin"]: row["n"] for row in rows}
    lefts = [0.5 + (i - 1) * width for i in range(1, CONFIDENCE_BINS + 1)]
    figure = go.Figure(
        go.Bar(
            x=[left + width / 2 for left in lefts],
            y=[counts.get(i, 0) for i in range(1, CONFIDENCE_BINS + 1)],
            width=width * 0.95,
            marker_color=[COLORS["cat"] if left < threshold else COLORS["dog"] for left in lefts],
            name="predictions",
        )
    )
    figure.add_vline(x=threshold, line_dash="dash", line_color="#555")
    figure.update_xaxes(title_text="confidence", range=[0.5, 1.0])
    return _layout(figure, y_title="predictions")


def _share(rows: Rows, field: str, name: str, color: str) -> go.Figure:
    """The share `field / n` per bucket, with both counts in the hover text."""
    buckets, parts = _totals(rows, None, field)
    _, totals = _totals(rows, None, "n")
    part, total = parts["all"], totals["all"]
    figure = go.Figure(
        go.Scatter(
            x=buckets,
            y=[part[b] / total[b] if total[b] else None for b in buckets],
            customdata=[[part[b], total[b]] for b in buckets],
            hovertemplate="%{y:.1%} (%{customdata[0]} of %{customdata[1]})<extra></extra>",
            mode="lines",
            line={"color": color},
            name=name,
        )
    )
    return _layout(figure, y_title=name, percent=True)


def low_confidence(rows: Rows) -> go.Figure:
    """Share of answers below the confidence threshold per bucket."""
    return _share(rows, "low", "low-confidence share", COLORS["cat"])


def consent(rows: Rows) -> go.Figure:
    """Share of predictions whose user consented to keeping their data, per bucket."""
    return _share(rows, "consented", "consented share", "#6d597a")


def satisfaction(rows: Rows) -> go.Figure:
    """Satisfied share per bucket with its 95% band, and how many feedbacks it rests on."""
    x = [row["bucket"] for row in rows]
    intervals = [wilson_interval(row["satisfied"], row["n"]) for row in rows]
    figure = go.Figure(
        [
            go.Bar(x=x, y=[row["n"] for row in rows], name="feedbacks", yaxis="y2",
                   marker_color="rgba(61,90,128,0.35)", hoverinfo="y+name"),
            go.Scatter(x=x, y=[high for _, high in intervals], mode="lines",
                       line={"width": 0}, showlegend=False, hoverinfo="skip"),
            go.Scatter(x=x, y=[low for low, _ in intervals], mode="lines", line={"width": 0},
                       fill="tonexty", fillcolor="rgba(129,178,154,0.3)", name="95% interval",
                       hoverinfo="skip"),
            go.Scatter(x=x, y=[row["satisfied"] / row["n"] for row in rows], mode="lines+markers",
                       line={"color": "#2a9d8f"}, marker={"size": 4}, name="satisfied share",
                       customdata=[[row["satisfied"], row["n"]] for row in rows],
                       hovertemplate="%{y:.1%} (%{customdata[0]} of %{customdata[1]})"
                                     "<extra>satisfied</extra>"),
        ]
    )  # fmt: skip
    _layout(figure, y_title="satisfied share", percent=True)
    figure.update_layout(
        yaxis2={"overlaying": "y", "side": "right", "showgrid": False, "title": "feedbacks",
                "rangemode": "tozero", "tickformat": "d"}
    )  # fmt: skip
    return figure


def versions(rows: Rows) -> go.Figure:
    """Predictions per bucket stacked by model version: shows rollouts and rollbacks."""
    buckets, sums = _totals(rows, "version", "n")
    figure = go.Figure(
        [
            go.Scatter(x=buckets, y=[per.get(b, 0) for b in buckets], name=version,
                       stackgroup="versions", mode="lines",
                       line={"color": VERSION_COLORS[i % len(VERSION_COLORS)], "width": 0.5})
            for i, (version, per) in enumerate(sorted(sums.items()))
        ]
    )  # fmt: skip
    return _layout(figure, y_title="predictions")
