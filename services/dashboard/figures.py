"""Plotly figures built from aggregated query rows; no row-level data reaches this module.

Figures are plain dicts in Plotly's JSON schema rather than `plotly.graph_objects`: building
and validating graph objects (with a full template copied into each figure) cost 50-90 ms per
figure, far more than the SQL behind it, and Dash sends the same JSON either way.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from services.common.proportions import Z95, wilson_interval
from services.dashboard.language import moment, percent, t
from services.dashboard.queries import CONFIDENCE_BINS, LATENCY_EDGES_MS, VersionFigures

COLORS = {"cat": "#e07a5f", "dog": "#3d5a80", "p50": "#3d5a80", "p95": "#e07a5f", "max": "#999"}
VERSION_COLORS = ("#3d5a80", "#e07a5f", "#81b29a", "#f2cc8f", "#6d597a", "#98c1d9")
SHADOW_COLOR = "#6d597a"
DRIFT_COLOR = "#c1121f"
GRID = "#eceff3"
# A dot for a point whose neighbours have no value: a line needs two points to show at all.
LONE_POINT_SIZE = 6
Figure = dict[str, Any]
Buckets = Sequence[datetime]  # the window's every bucket start, in order (Window.buckets)
Rows = Sequence[Any]


def _share_hover(extra: str = "") -> str:
    """Hover text of a share: `12.5% (3 of 24)`; Plotly fills in the `%{…}` fields."""
    return (
        f"%{{y:.1%}} (%{{customdata[0]}} {t('figure.of')} %{{customdata[1]}})<extra>{extra}</extra>"
    )


def _time(value: datetime) -> str:
    """Bucket starts as Plotly date strings, in UTC."""
    return value.strftime("%Y-%m-%d %H:%M")


def _layout(y_title: str = "", *, percent: bool = False, **extra: Any) -> dict[str, Any]:
    yaxis: dict[str, Any] = {
        "title": {"text": y_title},
        "rangemode": "tozero",
        "gridcolor": GRID,
        "zeroline": False,
    }
    if percent:
        yaxis.update(tickformat=".0%", range=[0, 1.02])
    layout = {
        # Plotly's decimal and thousands separators, as the page's language writes numbers.
        "separators": t("figure.separators"),
        "height": 280,
        "margin": {"l": 55, "r": 20, "t": 10, "b": 40},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#2a3f5f"},
        # Above the plot area, never on it: estimates and shares crowd its top.
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        "hovermode": "x unified",
        "uirevision": "keep",
        "xaxis": {"gridcolor": GRID, "zeroline": False},
        "yaxis": yaxis,
    }
    layout.update(extra)
    return layout


def _line(x: list[str], y: list[Any], color: str, **extra: Any) -> dict[str, Any]:
    """A line that breaks where a bucket has no value, with a dot on each point left alone
    between breaks (a lone answer on a fresh stack would otherwise draw nothing)."""
    last = len(y) - 1
    sizes = [
        LONE_POINT_SIZE
        if value is not None and (i == 0 or y[i - 1] is None) and (i == last or y[i + 1] is None)
        else 0
        for i, value in enumerate(y)
    ]
    return {
        "type": "scatter", "mode": "lines+markers", "x": x, "y": y, "connectgaps": False,
        **extra,
        "line": {"color": color, **extra.get("line", {})},
        "marker": {"color": color, "size": sizes},
    }  # fmt: skip


def _band(buckets: Buckets, bounds: Sequence[tuple[float, float] | None], **extra: Any) -> Figure:
    """A 95 % band as steps, each bucket's interval as wide as the bucket and centred on it like
    its bar, each run of buckets with an interval a closed shape of its own: Plotly's `tonexty`
    fill would join the pieces of a broken band by straight edges across the empty buckets."""
    half = (buckets[1] - buckets[0]) / 2 if len(buckets) > 1 else timedelta(0)
    x: list[str | None] = []
    y: list[float | None] = []
    pairs = zip(buckets, bounds, strict=True)
    for has_bound, group in itertools.groupby(pairs, key=lambda pair: pair[1] is not None):
        if not has_bound:
            continue
        run = [(start, bound) for start, bound in group if bound is not None]
        upper = [(edge, high) for start, (_, high) in run
                 for edge in (start - half, start + half)]  # fmt: skip
        lower = [(edge, low) for start, (low, _) in reversed(run)
                 for edge in (start + half, start - half)]  # fmt: skip
        for edge, value in [*upper, *lower, upper[0]]:
            x.append(edge.strftime("%Y-%m-%d %H:%M:%S"))
            y.append(value)
        x.append(None)
        y.append(None)
    return {"type": "scatter", "mode": "lines", "x": x, "y": y, "fill": "toself",
            "line": {"width": 0}, "hoverinfo": "skip", **extra}  # fmt: skip


def placeholder(message: str) -> Figure:
    """An empty graph that says why it is empty."""
    return {
        "data": [],
        "layout": {
            "height": 280,
            "margin": {"l": 20, "r": 20, "t": 10, "b": 20},
            "paper_bgcolor": "white",
            "plot_bgcolor": "white",
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "annotations": [
                {"text": message, "showarrow": False, "xref": "paper", "yref": "paper",
                 "x": 0.5, "y": 0.5, "font": {"size": 15, "color": "#555"}}
            ],
        },
    }  # fmt: skip


def _sums(rows: Rows, key: str | None, field: str) -> dict[str, dict[Any, int]]:
    """Per value of `key` (or one "all" group), the sum of `field` per bucket."""
    sums: dict[str, dict[Any, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        sums[row[key] if key else "all"][row["bucket"]] += row[field]
    return sums


def traffic(rows: Rows, buckets: Buckets) -> Figure:
    """Predictions per bucket, stacked by predicted class (an empty bucket is a zero)."""
    x = [_time(b) for b in buckets]
    data = [
        {"type": "bar", "x": x, "y": [per.get(b, 0) for b in buckets],
         "name": t(f"label.{label}") if label in COLORS else label,
         "marker": {"color": COLORS.get(label)}}
        for label, per in sorted(_sums(rows, "label", "n").items())
    ]  # fmt: skip
    return {
        "data": data,
        "layout": _layout(t("figure.predictions"), barmode="stack", bargap=0.05),
    }


def versions(rows: Rows, buckets: Buckets) -> Figure:
    """Predictions per bucket stacked by model version: shows rollouts and rollbacks. Every
    bucket is drawn, at zero when nothing was answered, so a quiet hour is not a slope."""
    x = [_time(b) for b in buckets]
    data = [
        {"type": "scatter", "x": x, "y": [per.get(b, 0) for b in buckets], "name": version,
         "stackgroup": "versions", "mode": "lines",
         "line": {"color": VERSION_COLORS[i % len(VERSION_COLORS)], "width": 0.5}}
        for i, (version, per) in enumerate(sorted(_sums(rows, "version", "n").items()))
    ]  # fmt: skip
    return {"data": data, "layout": _layout(t("figure.predictions"))}


def _share(rows: Rows, buckets: Buckets, field: str, name: str, color: str) -> Figure:
    """The share `field / n` per bucket, with both counts in the hover text; a bucket without
    answers has no share, and the line breaks there."""
    part, total = _sums(rows, None, field)["all"], _sums(rows, None, "n")["all"]
    trace = _line(
        [_time(b) for b in buckets],
        [part[b] / total[b] if total[b] else None for b in buckets],
        color,
        customdata=[[part[b], total[b]] for b in buckets],
        hovertemplate=_share_hover(),
        name=name,
    )
    return {"data": [trace], "layout": _layout(name, percent=True)}


def low_confidence(rows: Rows, buckets: Buckets) -> Figure:
    """Share of answers below the confidence threshold per bucket."""
    return _share(rows, buckets, "low", t("figure.low_confidence_share"), COLORS["cat"])


def consent(rows: Rows, buckets: Buckets) -> Figure:
    """Share of predictions whose user consented to keeping their data, per bucket."""
    return _share(rows, buckets, "consented", t("figure.consented_share"), "#6d597a")


def _on_grid(rows: Rows, buckets: Buckets, value: Callable[[Any], Any]) -> list[Any]:
    """`value` of the row of each bucket, None for a bucket without one (a break in a line)."""
    by_bucket = {row["bucket"]: row for row in rows}
    return [value(by_bucket[b]) if b in by_bucket else None for b in buckets]


def latency_series(rows: Rows, buckets: Buckets) -> Figure:
    """p50, p95 and max inference time per bucket; no line across buckets without answers."""
    x = [_time(b) for b in buckets]
    data = [
        _line(x, _on_grid(rows, buckets, operator.itemgetter(key)), COLORS[key], name=key,
              line={"dash": "dot" if key == "max" else "solid"})
        for key in ("p50", "p95", "max")
    ]  # fmt: skip
    return {"data": data, "layout": _layout(t("figure.inference_time"))}


def _latency_label(index: int) -> str:
    edges = LATENCY_EDGES_MS
    if index >= len(edges):
        return f"≥{edges[-1]}"
    return f"{edges[index - 1]}–{edges[index]}"


def latency_histogram(rows: Rows) -> Figure:
    """How many predictions took how long (ms bins, finer where most of them are)."""
    counts = {row["bin"]: row["n"] for row in rows}
    bins = range(1, len(LATENCY_EDGES_MS) + 1)
    trace = {
        "type": "bar",
        "x": [_latency_label(i) for i in bins],
        "y": [counts.get(i, 0) for i in bins],
        "marker": {"color": COLORS["dog"]},
        "name": t("figure.predictions"),
    }
    layout = _layout(t("figure.predictions"), hovermode="closest")
    layout["margin"]["b"] = 75
    layout["xaxis"].update(
        title={"text": t("figure.inference_time"), "standoff": 8}, type="category"
    )
    return {"data": [trace], "layout": layout}


def confidence_histogram(rows: Rows, threshold: float) -> Figure:
    """Distribution of the winning class's probability, low-confidence bins highlighted."""
    width = 0.5 / CONFIDENCE_BINS
    counts = {row["bin"]: row["n"] for row in rows}
    lefts = [0.5 + (i - 1) * width for i in range(1, CONFIDENCE_BINS + 1)]
    trace = {
        "type": "bar",
        "x": [left + width / 2 for left in lefts],
        "y": [counts.get(i, 0) for i in range(1, CONFIDENCE_BINS + 1)],
        "width": width * 0.95,
        "marker": {
            "color": [COLORS["cat"] if left < threshold else COLORS["dog"] for left in lefts]
        },
        "name": t("figure.predictions"),
    }
    threshold_line = {
        "type": "line", "x0": threshold, "x1": threshold, "y0": 0, "y1": 1, "yref": "paper",
        "line": {"dash": "dash", "color": "#555"},
    }  # fmt: skip
    layout = _layout(t("figure.predictions"), hovermode="closest", shapes=[threshold_line])
    layout["xaxis"].update(title={"text": t("figure.confidence")}, range=[0.5, 1.0])
    return {"data": [trace], "layout": layout}


def satisfaction(rows: Rows, buckets: Buckets) -> Figure:
    """Satisfied share per bucket with its 95% band, and how many feedbacks it rests on (zero
    bars, and breaks in the share, where no feedback came)."""
    x = [_time(b) for b in buckets]
    intervals = _on_grid(rows, buckets, lambda row: wilson_interval(row["satisfied"], row["n"]))
    data = [
        {"type": "bar", "x": x, "y": [n or 0 for n in _on_grid(rows, buckets, lambda r: r["n"])],
         "name": t("figure.feedbacks"), "yaxis": "y2", "marker": {"color": "rgba(61,90,128,0.35)"}},
        _band(buckets, intervals, fillcolor="rgba(129,178,154,0.3)", name=t("figure.interval")),
        {"type": "scatter", "x": x,
         "y": _on_grid(rows, buckets, lambda row: row["satisfied"] / row["n"]),
         "mode": "lines+markers", "connectgaps": False, "line": {"color": "#2a9d8f"},
         "marker": {"size": 4}, "name": t("figure.satisfied_share"),
         "customdata": _on_grid(rows, buckets, lambda row: [row["satisfied"], row["n"]]),
         "hovertemplate": _share_hover(t("figure.satisfied"))},
    ]  # fmt: skip
    second_axis = {
        "overlaying": "y", "side": "right", "showgrid": False,
        "title": {"text": t("figure.feedbacks")},
        "rangemode": "tozero", "tickformat": "d",
    }  # fmt: skip
    layout = _layout(t("figure.satisfied_share"), percent=True, yaxis2=second_axis)
    layout["margin"]["r"] = 60
    return {"data": data, "layout": layout}


def version_label(item: VersionFigures) -> str:
    """How a version is named on the page: shadows are marked, as their answers were not shown."""
    return t("figure.shadow", version=item.version) if item.shadow else item.version


def version_accuracy(items: Sequence[VersionFigures]) -> Figure:
    """Feedback accuracy of each version with labelled answers, error bars the 95% interval."""
    labelled = [item for item in items if item.labelled]
    intervals = [wilson_interval(i.correct, i.labelled) if i.labelled else None for i in labelled]
    data = []
    for shadow, name, color in ((False, t("figure.answers_given"), COLORS["dog"]),
                                (True, t("figure.shadow_answers"), SHADOW_COLOR)):  # fmt: skip
        picked = [(item, interval) for item, interval in zip(labelled, intervals, strict=True)
                  if item.shadow is shadow and interval is not None]  # fmt: skip
        if not picked:
            continue
        accuracy = [item.correct / item.labelled for item, _ in picked]
        lows = [low for _, (low, _) in picked]
        highs = [high for _, (_, high) in picked]
        data.append(
            {"type": "scatter", "mode": "markers", "name": name,
             "x": [version_label(item) for item, _ in picked], "y": accuracy,
             "marker": {"color": color, "size": 10},
             "error_y": {"type": "data", "symmetric": False, "color": color, "thickness": 1.5,
                         "width": 8,
                         "array": [high - y for high, y in zip(highs, accuracy, strict=True)],
                         "arrayminus": [y - low for low, y in zip(lows, accuracy, strict=True)]},
             "customdata": [[item.correct, item.labelled, low, high]
                            for (item, _), low, high in zip(picked, lows, highs, strict=True)],
             "hovertemplate": f"%{{y:.1%}} (%{{customdata[0]}} {t('figure.of')} "
                              f"%{{customdata[1]}} {t('figure.labelled')}; {t('figure.ci')} "
                              "%{customdata[2]:.1%}–%{customdata[3]:.1%})<extra>%{x}</extra>"}
        )  # fmt: skip
    lowest = min((interval[0] for interval in intervals if interval), default=0.0)
    layout = _layout(t("figure.accuracy_on_labelled"), percent=True, hovermode="closest")
    # Versions usually differ by a few points: start the axis just under the lowest bar.
    layout["yaxis"]["range"] = [math.floor(lowest * 10) / 10, 1.01]
    layout["xaxis"].update(type="category")
    return {"data": data, "layout": layout}


def _by_version(rows: Rows) -> list[tuple[int, str, list[Any]]]:
    """(colour index, version, its rows in bucket order), versions sorted."""
    grouped: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[row["version"]].append(row)
    return [(i, version, grouped[version]) for i, version in enumerate(sorted(grouped))]


def drift(rows: Rows, buckets: Buckets) -> Figure:
    """Each version's embedding drift score against the score beyond which p < DRIFT_ALPHA."""
    data: list[dict[str, Any]] = []
    for i, version, own in _by_version(rows):
        color = VERSION_COLORS[i % len(VERSION_COLORS)]
        tested = [row for row in own if row["drift_score"] is not None]
        if not tested:
            continue
        x = [_time(b) for b in buckets]
        score = _on_grid(tested, buckets, lambda row: row["drift_score"])
        threshold = _on_grid(tested, buckets, lambda row: row["drift_threshold"])
        drifted = [row for row in tested if row["drifted"]]
        data += [
            _line(x, score, color, name=version, legendgroup=version,
                  hovertemplate=f"%{{y:.4f}}<extra>{t('figure.score', version=version)}</extra>"),
            _line(x, threshold, color, showlegend=False, legendgroup=version,
                  line={"dash": "dash", "width": 1},
                  hovertemplate=f"%{{y:.4f}}<extra>{t('figure.threshold', version=version)}"
                                "</extra>"),
            {"type": "scatter", "mode": "markers",
             "name": t("figure.drifted", version=version),
             "legendgroup": version, "showlegend": False,
             "x": [_time(row["bucket"]) for row in drifted],
             "y": [row["drift_score"] for row in drifted],
             "customdata": [[row["drifted"], row["checks"]] for row in drifted],
             "hovertemplate": f"%{{customdata[0]}} {t('figure.of')} %{{customdata[1]}} "
                              f"{t('figure.checks_drifted')}<extra>{version}</extra>",
             "marker": {"color": DRIFT_COLOR, "symbol": "x", "size": 9}},
        ]  # fmt: skip
    return {"data": data, "layout": _layout(t("figure.mmd"))}


def estimated_accuracy(rows: Rows, buckets: Buckets) -> Figure:
    """Accuracy estimated from calibrated confidence (band: ±1.96 standard errors) beside the
    accuracy users' feedback gives on the labelled answers."""
    data: list[dict[str, Any]] = []
    for i, version, own in _by_version(rows):
        color = VERSION_COLORS[i % len(VERSION_COLORS)]
        estimated = [row for row in own if row["estimated_accuracy"] is not None]
        x = [_time(b) for b in buckets]
        band = _on_grid(estimated, buckets, _interval)
        value = _on_grid(estimated, buckets, lambda r: r["estimated_accuracy"])
        labelled = [row for row in own if row["feedback_accuracy"] is not None]
        feedback = _on_grid(labelled, buckets, lambda r: r["feedback_accuracy"])
        counts = _on_grid(labelled, buckets, lambda r: r["labelled"])
        data += [
            _band(buckets, band, fillcolor=_translucent(color),
                  name=t("figure.band", version=version), showlegend=False),
            _line(x, value, color, name=t("figure.estimated", version=version),
                  hovertemplate=f"%{{y:.1%}}<extra>{t('figure.estimate')}</extra>"),
            {"type": "scatter", "x": x, "y": feedback, "mode": "lines+markers",
             "connectgaps": False, "line": {"color": color, "dash": "dot"},
             "marker": {"size": 5}, "name": t("figure.feedback", version=version),
             "customdata": [[count] for count in counts],
             "hovertemplate": f"%{{y:.1%}} {t('figure.of')} %{{customdata[0]}} "
                              f"{t('figure.labelled')}<extra>{t('figure.by_feedback')}</extra>"},
        ]  # fmt: skip
    layout = _layout(t("figure.accuracy"), percent=True)
    lowest = min((y for trace in data for y in trace["y"] if y is not None), default=0.0)
    # Estimates sit near the top: start the axis just under the lowest point.
    layout["yaxis"]["range"] = [max(0.0, math.floor(lowest * 10) / 10), 1.01]
    return {"data": data, "layout": layout}


def reliability(latest: Rows) -> Figure:
    """The newest reliability curve of each version: accuracy of labelled answers per confidence
    bin against the diagonal a calibrated model follows (marker area: answers in the bin)."""
    data: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines", "x": [0.5, 1.0], "y": [0.5, 1.0],
         "line": {"color": "#999", "dash": "dash", "width": 1}, "name": t("figure.calibrated"),
         "hoverinfo": "skip"},
    ]  # fmt: skip
    for i, version, own in _by_version(latest):
        row = own[0]
        if row["reliability"] is None:
            continue
        curve = json.loads(row["reliability"])
        bins = [(confidence, accuracy, count)
                for confidence, accuracy, count
                in zip(curve["confidence"], curve["accuracy"], curve["count"], strict=True)
                if count]  # fmt: skip
        largest = max(count for _, _, count in bins)
        data.append(
            {"type": "scatter", "mode": "lines+markers",
             "name": t("figure.curve", version=version, ece=percent(row["reliability_error"]),
                       at=moment(row["reliability_at"], t("figure.day_format"))),
             "x": [confidence for confidence, _, _ in bins],
             "y": [accuracy for _, accuracy, _ in bins],
             "customdata": [[count] for _, _, count in bins],
             "hovertemplate": f"{t('figure.confidence')} %{{x:.1%}}: {t('figure.right_on')} "
                              f"%{{y:.1%}} {t('figure.of')} %{{customdata[0]}}<extra></extra>",
             "line": {"color": VERSION_COLORS[i % len(VERSION_COLORS)]},
             "marker": {"size": [6 + 14 * math.sqrt(count / largest) for _, _, count in bins]}}
        )  # fmt: skip
    layout = _layout(t("figure.accuracy_of_labelled"), percent=True, hovermode="closest")
    layout["xaxis"].update(
        title={"text": t("figure.confidence")}, range=[0.5, 1.0], tickformat=".0%"
    )
    return {"data": data, "layout": layout}


def _interval(row: Any) -> tuple[float, float] | None:
    """The estimate ± 1.96 standard errors, kept within [0, 1]."""
    if row["estimated_stderr"] is None:
        return None
    spread = Z95 * row["estimated_stderr"]
    estimate = row["estimated_accuracy"]
    return max(0.0, estimate - spread), min(1.0, estimate + spread)


def _translucent(color: str, alpha: float = 0.18) -> str:
    """`#rrggbb` as rgba, for bands drawn under their line."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"
