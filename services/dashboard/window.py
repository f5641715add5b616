"""Turns the range selector's state into a time window and the bucket width of its graphs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

PRESETS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
CUSTOM = "custom"

# Bucket widths to choose from: the finest one that keeps a graph readable wins.
BUCKETS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(days=1),
    timedelta(days=2),
    timedelta(days=7),
)
MAX_BUCKETS = 200
# The origin the queries' `date_bin` counts buckets from.
BUCKET_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """A half-open time range [start, end) and the bucket width its time series use."""

    start: datetime
    end: datetime
    bucket: timedelta

    def step(self) -> str:
        """The bucket width in words: `15 min`, `6 h`, `2 days`."""
        minutes = int(self.bucket.total_seconds() // 60)
        if minutes < 60:
            return f"{minutes} min"
        if minutes < 24 * 60:
            return f"{minutes // 60} h"
        days = minutes // (24 * 60)
        return "1 day" if days == 1 else f"{days} days"

    def buckets(self) -> list[datetime]:
        """Every bucket start of the window, as the queries' `date_bin` numbers them: the graphs
        draw each one, so an empty bucket shows as empty rather than being skipped."""
        first = BUCKET_ORIGIN + (self.start - BUCKET_ORIGIN) // self.bucket * self.bucket
        count = -(-(self.end - first) // self.bucket)  # ceiling: the last bucket may be partial
        return [first + i * self.bucket for i in range(count)]

    def describe(self) -> str:
        """Human words for the range, in UTC."""
        fmt = "%Y-%m-%d %H:%M"
        return f"{self.start:{fmt}} – {self.end:{fmt}} UTC"


def bucket_for(span: timedelta) -> timedelta:
    """The finest bucket that keeps at most MAX_BUCKETS points."""
    for bucket in BUCKETS:
        if span / bucket <= MAX_BUCKETS:
            return bucket
    return BUCKETS[-1]


def _parse_day(value: object) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


# The longest custom range: MAX_BUCKETS of the widest bucket, so every graph keeps its budget.
MAX_RANGE = MAX_BUCKETS * BUCKETS[-1]


def range_problem(preset: object, start_day: object, end_day: object) -> str | None:
    """Why a custom range cannot be drawn (a day past the calendar, a span too long), or None.

    Unparseable or missing days are no problem: `resolve` falls back to the default range.
    """
    first, last = _parse_day(start_day), _parse_day(end_day)
    if preset != CUSTOM or first is None or last is None:
        return None
    first, last = min(first, last), max(first, last)
    if last >= date.max:
        return f"a custom range must end before {date.max.isoformat()}"
    if last - first + timedelta(days=1) > MAX_RANGE:
        return f"a custom range covers at most {MAX_RANGE.days} days"
    return None


def resolve(
    preset: str | None,
    start_day: str | None,
    end_day: str | None,
    *,
    now: datetime | None = None,
    default: str = "24h",
) -> Window:
    """The window the selector means; a custom range covers whole UTC days, both included."""
    now = now or datetime.now(UTC)
    if preset == CUSTOM:
        first, last = _parse_day(start_day), _parse_day(end_day)
        if first is not None and last is not None:
            first, last = min(first, last), max(first, last)
            start = datetime(first.year, first.month, first.day, tzinfo=UTC)
            end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
            return Window(start, end, bucket_for(end - start))
    span = PRESETS.get(preset if isinstance(preset, str) else "", PRESETS[default])
    return Window(now - span, now, bucket_for(span))
