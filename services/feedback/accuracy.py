"""The live-accuracy gauge: share of satisfied verdicts over a recent window, from PostgreSQL.

Counters count submissions; this gauge counts each prediction once with its latest verdict,
which is the accuracy users actually report.
"""

from __future__ import annotations

import asyncio
import logging
import math

from services.common.db import DatabaseUnavailable
from services.feedback import metrics
from services.feedback.repository import FeedbackRepository

logger = logging.getLogger(__name__)


async def refresh(repository: FeedbackRepository, window_s: float) -> None:
    """Recompute the gauges once."""
    count, ratio = await repository.live_accuracy(window_s)
    metrics.LIVE_ACCURACY_COUNT.set(count)
    metrics.LIVE_ACCURACY.set(math.nan if ratio is None else ratio)


async def refresh_forever(
    repository: FeedbackRepository, *, window_s: float, every_s: float
) -> None:
    """Keep the gauges current; while the database is away they keep their last value."""
    while True:
        try:
            await refresh(repository, window_s)
        except DatabaseUnavailable:
            logger.debug("live accuracy not refreshed: database unavailable")
        await asyncio.sleep(every_s)
