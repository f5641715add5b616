"""Figures drawn as the data is: bands that stay within their buckets, legends off the plot,
and a lone point that shows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.dashboard import figures

B0 = datetime(2026, 1, 1, tzinfo=UTC)
BUCKET = timedelta(hours=6)
BUCKETS = [B0 + i * BUCKET for i in range(8)]


def _segments(trace: dict[str, Any]) -> list[list[tuple[datetime, float]]]:
    """The runs of points of a trace between its breaks."""
    runs: list[list[tuple[datetime, float]]] = [[]]
    for x, y in zip(trace["x"], trace["y"], strict=True):
        if y is None:
            runs.append([])
        else:
            runs[-1].append((datetime.fromisoformat(x).replace(tzinfo=UTC), y))
    return [run for run in runs if run]


def _feedback(index: int, satisfied: int, n: int) -> dict[str, Any]:
    return {"bucket": BUCKETS[index], "satisfied": satisfied, "n": n}


def _watch(index: int, estimate: float | None, score: float | None = None) -> dict[str, Any]:
    return {"bucket": BUCKETS[index], "version": "1.0.0", "estimated_accuracy": estimate,
            "estimated_stderr": 0.01 if estimate is not None else None,
            "feedback_accuracy": None, "labelled": 0, "drift_score": score,
            "drift_threshold": 0.05 if score is not None else None, "drifted": 0,
            "checks": 1}  # fmt: skip


def test_the_satisfaction_band_is_a_step_per_bucket_and_never_spans_a_gap() -> None:
    # Feedback in buckets 0, 1 and 5: nothing in 2-4, and 5 alone.
    rows = [_feedback(0, 9, 10), _feedback(1, 1, 2), _feedback(5, 3, 4)]
    (band,) = [trace for trace in figures.satisfaction(rows, BUCKETS)["data"] if "fill" in trace]
    assert band["fill"] == "toself"
    runs = _segments(band)
    assert len(runs) == 2  # buckets 0-1, then bucket 5 on its own
    for run in runs:
        for (x0, y0), (x1, y1) in itertools.pairwise(run):
            assert x0 == x1 or y0 == y1, "a sloped edge"
    first, lone = runs
    assert min(x for x, _ in first) == BUCKETS[0] - BUCKET / 2
    assert max(x for x, _ in first) == BUCKETS[1] + BUCKET / 2
    # The lone bucket's interval is a box as wide as its bucket, not a vertical hairline.
    assert {x for x, _ in lone} == {BUCKETS[5] - BUCKET / 2, BUCKETS[5] + BUCKET / 2}
    assert max(y for _, y in lone) > min(y for _, y in lone)


def test_the_estimated_accuracy_band_never_spans_a_gap() -> None:
    rows = [_watch(0, 0.97), _watch(4, 0.95)]
    band = figures.estimated_accuracy(rows, BUCKETS)["data"][0]
    runs = _segments(band)
    assert [sorted({x for x, _ in run}) for run in runs] == [
        [BUCKETS[0] - BUCKET / 2, BUCKETS[0] + BUCKET / 2],
        [BUCKETS[4] - BUCKET / 2, BUCKETS[4] + BUCKET / 2],
    ]
    assert max(y for _, y in runs[1]) == pytest.approx(0.95 + figures.Z95 * 0.01)


def test_the_legend_sits_above_the_plot_area() -> None:
    figure = figures.estimated_accuracy([_watch(0, 0.97), _watch(1, 0.9)], BUCKETS)
    legend = figure["layout"]["legend"]
    # Paper coordinates: the plot area is 0-1, so a legend whose bottom edge is at y >= 1
    # covers none of it, and none of the 85-100 % band at its top in particular.
    assert legend["yanchor"] == "bottom"
    assert legend["y"] >= 1


def _dot_sizes(trace: dict[str, Any]) -> list[int]:
    assert "markers" in trace["mode"], trace.get("name")
    sizes: list[int] = trace["marker"]["size"]
    return sizes


def test_a_lone_point_is_drawn_as_a_dot_and_a_line_has_none() -> None:
    shares = figures.low_confidence(
        [{"bucket": BUCKETS[2], "n": 4, "low": 1}, {"bucket": BUCKETS[5], "n": 2, "low": 0},
         {"bucket": BUCKETS[6], "n": 2, "low": 1}],
        BUCKETS,
    )  # fmt: skip
    (trace,) = shares["data"]
    sizes = _dot_sizes(trace)
    assert sizes[2] > 0  # alone: a line would draw nothing
    assert sizes[5] == sizes[6] == 0  # a line joins them
    assert trace["marker"]["color"] == trace["line"]["color"]


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("latency", lambda: figures.latency_series(
            [{"bucket": BUCKETS[3], "p50": 8.0, "p95": 12.0, "max": 20.0}], BUCKETS)),
        ("drift", lambda: figures.drift([_watch(3, None, score=0.02)], BUCKETS)),
        ("estimated accuracy", lambda: figures.estimated_accuracy([_watch(3, 0.97)], BUCKETS)),
        ("consent", lambda: figures.consent(
            [{"bucket": BUCKETS[3], "n": 1, "consented": 1}], BUCKETS)),
    ],
)  # fmt: skip
def test_a_single_answer_shows_on_every_time_series(name: str, build: Any) -> None:
    lines = [trace for trace in build()["data"]
             if trace.get("mode", "").startswith("lines") and "fill" not in trace
             and any(y is not None for y in trace["y"])]  # fmt: skip
    assert lines, name
    for trace in lines:
        assert _dot_sizes(trace)[3] > 0, (name, trace.get("name"))
