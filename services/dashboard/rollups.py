"""The hourly and daily roll-ups (migration 0302): which of them a window reads, the SQL that
reads them, percentiles from their histograms, and the loop that rolls closed hours.

A window whose graphs use buckets of an hour or more reads, for each part of its range, the
coarsest source that covers it exactly: daily rows for whole rolled days (when buckets are a
day or more), hourly rows for the other whole rolled hours, and the raw tables for the
partial hours at both ends and everything after the watermark. Counts and sums are exact
whatever the source; percentiles from roll-ups are interpolated inside one bin of a log-scale
histogram whose bins are 5 % wide, so they are within 5 % of the exact value.

`python -m services.dashboard.rollups --help` rolls (or catches up) by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from services.common.cli import run_cli
from services.common.db import Database, DatabaseUnavailable
from services.dashboard import metrics
from services.dashboard.window import BUCKET_ORIGIN, Window

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# The fine latency histogram's bin k covers [BASE × RATIO^k, BASE × RATIO^(k+1)) ms (bin 0
# also everything faster); `monitoring_latency_bin` in migration 0302 computes the same.
LATENCY_BIN_BASE_MS = 0.1
LATENCY_BIN_RATIO = 1.05
# Hours rolled per transaction: a day, so that writes to past hours, which wait for a step to
# end (migration 0302's locks), never wait long while a year is caught up.
HOURS_PER_STEP = 24

# $1–$6: the window's start, the first whole hour, the first and end day of the daily part,
# the end of the rolled part, the window's end (see `Tiers`).
_ROWS = """
    SELECT * FROM monitoring_daily WHERE period_start >= $3 AND period_start < $4
    UNION ALL
    SELECT * FROM monitoring_hourly
    WHERE (period_start >= $2 AND period_start < $3) OR (period_start >= $4 AND period_start < $5)
    UNION ALL
    SELECT * FROM monitoring_rollup_rows($1, $2)
    UNION ALL
    SELECT * FROM monitoring_rollup_rows($5, $6)
"""
_BINS = _ROWS.replace("monitoring_daily", "monitoring_daily_bins").replace(
    "monitoring_hourly", "monitoring_hourly_bins").replace(
    "monitoring_rollup_rows", "monitoring_rollup_bins")  # fmt: skip
_BUCKET = "date_bin($7::interval, period_start, TIMESTAMPTZ '2000-01-01 00:00:00+00')"

# Only the constant fragments above are interpolated into the queries below.
SUMMARY = f"""
WITH r AS ({_ROWS})
SELECT coalesce(sum(predictions), 0)                                     AS predictions,
       coalesce(sum(predictions) FILTER (WHERE prediction_result = 'cat'), 0) AS cats,
       coalesce(sum(low_confidence), 0)                                  AS low_confidence,
       coalesce(sum(consented), 0)                                       AS consented,
       coalesce(sum(feedback), 0)                                        AS feedback,
       coalesce(sum(satisfied), 0)                                       AS satisfied,
       max(latency_max_ms)                                               AS max_ms
FROM r WHERE NOT shadow
"""  # noqa: S608
# Fine latency histograms come back as two arrays (bins ascending, counts) per group: a few
# hundred rows for a year instead of tens of thousands.
LATENCY_BINS = f"""
WITH b AS ({_BINS}),
bins AS (SELECT bin, sum(n) AS n FROM b WHERE histogram = 'latency' AND NOT shadow GROUP BY 1)
SELECT array_agg(bin ORDER BY bin) AS bins, array_agg(n ORDER BY bin) AS counts FROM bins
"""  # noqa: S608
SERIES = f"""
WITH r AS ({_ROWS})
SELECT {_BUCKET} AS bucket, prediction_result AS label, model_version AS version,
       sum(predictions) AS n, sum(low_confidence) AS low, sum(consented) AS consented
FROM r WHERE NOT shadow
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""  # noqa: S608
# Bins and maximum in one statement: one snapshot, so both see the same buckets.
LATENCY_SERIES = f"""
WITH b AS ({_BINS}), r AS ({_ROWS}),
bins AS (
    SELECT {_BUCKET} AS bucket, bin, sum(n) AS n FROM b
    WHERE histogram = 'latency' AND NOT shadow GROUP BY 1, 2
),
maxima AS (
    SELECT {_BUCKET} AS bucket, max(latency_max_ms) AS max FROM r WHERE NOT shadow GROUP BY 1
)
SELECT bins.bucket, array_agg(bin ORDER BY bin) AS bins, array_agg(n ORDER BY bin) AS counts,
       min(maxima.max) AS max
FROM bins JOIN maxima USING (bucket) GROUP BY 1 ORDER BY 1
"""  # noqa: S608
HISTOGRAM = f"""
WITH b AS ({_BINS})
SELECT bin, sum(n) AS n FROM b WHERE histogram = $7 GROUP BY 1 ORDER BY 1
"""  # noqa: S608
FEEDBACK_SERIES = f"""
WITH r AS ({_ROWS})
SELECT {_BUCKET} AS bucket, sum(feedback) AS n, sum(satisfied) AS satisfied
FROM r WHERE NOT shadow
GROUP BY 1 HAVING sum(feedback) > 0 ORDER BY 1
"""  # noqa: S608
VERSIONS = f"""
WITH r AS ({_ROWS}),
versions AS (
    SELECT model_version AS version, shadow,
           sum(predictions)                                               AS answers,
           sum(predictions) FILTER (WHERE prediction_result = 'cat')      AS cats,
           sum(confidence_sum) / sum(predictions)                         AS mean_confidence,
           max(latency_max_ms)                                            AS max_ms,
           sum(labelled) AS labelled, sum(correct) AS correct, sum(agreed) AS agreed
    FROM r GROUP BY 1, 2
)
SELECT v.*, m.role, m.canary_share, m.role_since
FROM versions v LEFT JOIN model_versions m USING (version)
ORDER BY v.shadow, v.answers DESC, v.version
"""  # noqa: S608
VERSION_BINS = f"""
WITH b AS ({_BINS}),
bins AS (
    SELECT model_version AS version, shadow, bin, sum(n) AS n FROM b
    WHERE histogram = 'latency' GROUP BY 1, 2, 3
)
SELECT version, shadow, array_agg(bin ORDER BY bin) AS bins, array_agg(n ORDER BY bin) AS counts
FROM bins GROUP BY 1, 2
"""  # noqa: S608
ROLLED_UNTIL = "SELECT rolled_until FROM monitoring_rollup_state"
ADVANCE = "SELECT monitoring_rollup_advance($1, $2)"
ANALYZE = (
    "ANALYZE monitoring_hourly, monitoring_hourly_bins, monitoring_daily, monitoring_daily_bins"
)


def floor_to(at: datetime, step: timedelta) -> datetime:
    return BUCKET_ORIGIN + (at - BUCKET_ORIGIN) // step * step


def ceil_to(at: datetime, step: timedelta) -> datetime:
    floor = floor_to(at, step)
    return floor if floor == at else floor + step


@dataclass(frozen=True)
class Tiers:
    """[start, hours) raw, [hours, days) hourly, [days, days_end) daily, [days_end, rolled)
    hourly, [rolled, end) raw: the sources of one window, as the queries' $1–$6."""

    start: datetime
    hours: datetime
    days: datetime
    days_end: datetime
    rolled: datetime
    end: datetime

    def args(self) -> tuple[datetime, ...]:
        return (self.start, self.hours, self.days, self.days_end, self.rolled, self.end)


def tiers_for(window: Window, rolled_until: datetime | None) -> Tiers | None:
    """Where each part of the window is read from, or None when the raw tables serve it all
    (buckets under an hour, nothing rolled, or no whole rolled hour inside the window)."""
    if rolled_until is None or window.bucket < HOUR or window.bucket % HOUR:
        return None
    hours = ceil_to(window.start, HOUR)
    rolled = min(floor_to(window.end, HOUR), rolled_until)
    if hours >= rolled:
        return None
    days, days_end = rolled, rolled
    if window.bucket >= DAY and not window.bucket % DAY:
        first, last = ceil_to(hours, DAY), floor_to(rolled, DAY)
        if first < last:
            days, days_end = first, last
    if days == days_end:
        days = days_end = rolled  # no daily part: the hourly part is [hours, rolled)
    return Tiers(window.start, hours, days, days_end, rolled, window.end)


def latency_percentile(
    bins: Sequence[int] | None,
    counts: Sequence[int] | None,
    q: float,
    ceiling_ms: float | None = None,
) -> float | None:
    """The q-quantile of the latencies a fine histogram counts (bins ascending, their counts),
    as `percentile_cont` computes it (between the values ranked ⌊q(n − 1)⌋ and ⌈q(n − 1)⌉),
    each value placed inside its bin; never above `ceiling_ms`, the exact maximum."""
    if not bins or not counts:
        return None
    ends = list(itertools.accumulate(counts))
    rank = q * (ends[-1] - 1)

    def ranked(at: int) -> float:
        # The bin's values are taken as spread evenly over it in log scale: the value found is
        # within the bin, so within 5 %, of the true one.
        index = bisect.bisect_right(ends, at)
        position = (at - (ends[index] - counts[index]) + 0.5) / counts[index]
        return float(LATENCY_BIN_BASE_MS * LATENCY_BIN_RATIO ** (bins[index] + position))

    low, high = ranked(math.floor(rank)), ranked(math.ceil(rank))
    value = low + (rank - math.floor(rank)) * (high - low)
    return min(value, ceiling_ms) if ceiling_ms is not None else value


async def rolled_until(connection: asyncpg.Connection) -> datetime | None:
    """The watermark: every hour before it is rolled."""
    value: datetime | None = await connection.fetchval(ROLLED_UNTIL)
    return value


async def advance(
    connection: asyncpg.Connection, *, grace: timedelta, max_hours: int = HOURS_PER_STEP
) -> datetime:
    """Roll one step of closed hours (an hour closes `grace` after it ends); the new watermark."""
    upto = datetime.now(UTC) - grace
    async with connection.transaction():
        watermark: datetime = await connection.fetchval(ADVANCE, upto, max_hours)
    return watermark


async def catch_up(
    connection: asyncpg.Connection,
    *,
    grace: timedelta,
    on_step: Callable[[datetime], object] | None = None,
) -> datetime:
    """Roll every closed hour, a step at a time; `on_step` is told each new watermark."""
    previous = await rolled_until(connection)
    while True:
        watermark = await advance(connection, grace=grace)
        if on_step is not None:
            on_step(watermark)
        if watermark == previous:
            return watermark
        previous = watermark


async def run_forever(database: Database, *, interval_s: float, grace: timedelta) -> None:
    """The dashboard's schedule: catch up now, then every `interval_s`, surviving outages.

    Every replica runs it; the state row's lock makes them take turns, and a turn that finds
    nothing to roll costs one small query.
    """
    while True:
        started = time.perf_counter()
        try:
            async with database.connection() as connection:
                watermark = await catch_up(connection, grace=grace)
            metrics.ROLLUP_WATERMARK.set(watermark.timestamp())
            metrics.ROLLUP_RUNS.labels(outcome="ok").inc()
        except DatabaseUnavailable:
            metrics.ROLLUP_RUNS.labels(outcome="unavailable").inc()
            logger.warning("roll-up postponed: database unavailable")
        except asyncpg.PostgresError:
            metrics.ROLLUP_RUNS.labels(outcome="failed").inc()
            logger.exception("roll-up failed; the dashboard reads the raw tables meanwhile")
        metrics.ROLLUP_SECONDS.observe(time.perf_counter() - started)
        await asyncio.sleep(interval_s)


async def _main_async(database_url: str, *, grace: timedelta) -> str:
    from tqdm import tqdm

    connection = await asyncpg.connect(database_url)
    try:
        before = await rolled_until(connection)
        oldest = await connection.fetchval("SELECT min(created_at) FROM monitoring")
        start = before or (floor_to(oldest, HOUR) if oldest else None)
        total = int((floor_to(datetime.now(UTC) - grace, HOUR) - start) / HOUR) if start else 0
        with tqdm(total=max(total, 0), unit="h", desc="rolling hours") as bar:

            def show(watermark: datetime) -> None:
                bar.update(int((watermark - start) / HOUR) - bar.n if start else 0)

            watermark = await catch_up(connection, grace=grace, on_step=show)
        # After catching up many hours at once, give the planner their statistics now rather
        # than when autovacuum comes by.
        await connection.execute(ANALYZE)
    finally:
        await connection.close()
    return f"rolled up to {watermark.isoformat()}"


def main(argv: list[str] | None = None) -> int:
    """CLI: roll every closed hour now (what the dashboard's loop does on its schedule)."""
    from services.common.logs import configure_logging
    from services.dashboard.settings import RollupSettings

    parser = argparse.ArgumentParser(
        prog="python -m services.dashboard.rollups",
        description="Roll the closed hours of `monitoring` into the dashboard's hourly and "
        "daily roll-ups, catching up from the watermark (or from the oldest prediction).",
    )
    parser.add_argument("--database-url", help="default: $DATABASE_URL")
    args = parser.parse_args(argv)
    settings = RollupSettings()
    configure_logging(settings.log_level, settings.log_format)
    url = args.database_url or settings.database_url
    print(asyncio.run(_main_async(url, grace=timedelta(seconds=settings.rollup_grace_s))))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
