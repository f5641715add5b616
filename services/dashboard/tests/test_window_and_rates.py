"""Range resolution and rates with their uncertainty."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from services.common.proportions import wilson_interval
from services.dashboard.rates import describe_rate
from services.dashboard.window import bucket_for, resolve

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("preset", "span", "bucket"),
    [
        ("1h", timedelta(hours=1), timedelta(minutes=1)),
        ("24h", timedelta(days=1), timedelta(minutes=15)),
        ("7d", timedelta(days=7), timedelta(hours=1)),
        ("30d", timedelta(days=30), timedelta(hours=6)),
    ],
)
def test_presets_end_now_with_a_readable_bucket(
    preset: str, span: timedelta, bucket: timedelta
) -> None:
    window = resolve(preset, None, None, now=NOW)
    assert (window.start, window.end, window.bucket) == (NOW - span, NOW, bucket)


def test_bucket_width_reads_as_words() -> None:
    steps = [resolve(p, None, None, now=NOW).step() for p in ("1h", "24h", "7d", "30d")]
    assert steps == ["1 min", "15 min", "1 h", "6 h"]
    assert resolve("custom", "2025-03-02", "2026-03-01", now=NOW).step() == "2 days"


def test_custom_range_covers_whole_days_in_either_order() -> None:
    window = resolve("custom", "2026-02-10", "2026-02-01T00:00:00", now=NOW)
    assert window.start == datetime(2026, 2, 1, tzinfo=UTC)
    assert window.end == datetime(2026, 2, 11, tzinfo=UTC)


def test_incomplete_or_invalid_custom_range_falls_back_to_the_default() -> None:
    assert resolve("custom", "2026-02-10", None, now=NOW).start == NOW - timedelta(days=1)
    assert resolve("custom", "garbage", "2026-02-10", now=NOW).end == NOW
    assert resolve("unknown", None, None, now=NOW, default="7d").start == NOW - timedelta(days=7)


def test_buckets_cover_the_window_as_the_queries_number_them() -> None:
    # A window starting mid-bucket: its first bucket starts before it, as date_bin's does.
    window = resolve("1h", None, None, now=NOW + timedelta(seconds=30))
    buckets = window.buckets()
    assert buckets[0] == NOW - timedelta(hours=1)
    assert buckets[-1] == NOW
    assert len(buckets) == 61
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(buckets))
    # Two-day buckets count from 2000-01-01, not from the window's first day.
    year = resolve("custom", "2025-03-02", "2026-03-01", now=NOW)
    assert (year.buckets()[0] - datetime(2000, 1, 1, tzinfo=UTC)) % timedelta(days=2) == timedelta(
        0
    )
    assert year.buckets()[0] <= year.start < year.buckets()[1]
    assert year.buckets()[-1] < year.end <= year.buckets()[-1] + timedelta(days=2)


def test_a_year_stays_under_the_point_budget() -> None:
    assert timedelta(days=365) / bucket_for(timedelta(days=365)) <= 200


def test_three_feedbacks_are_not_read_as_certainty() -> None:
    low, high = wilson_interval(3, 3)
    assert high == 1.0
    assert low < 0.5
    text = describe_rate(3, 3, "feedbacks")
    assert text.startswith("100.0% (n = 3 feedbacks")
    assert "too few to judge" in text
    assert "too few" not in describe_rate(900, 1000, "feedbacks")
    assert describe_rate(0, 0, "feedbacks") == "no feedbacks yet"


def test_wilson_interval_matches_the_textbook_value() -> None:
    low, high = wilson_interval(90, 100)
    assert low == pytest.approx(0.8256, abs=1e-4)
    assert high == pytest.approx(0.9448, abs=1e-4)
