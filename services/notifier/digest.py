"""The daily model-health digest: one Discord message comparing the last 24 hours with the day
before (predictions, cat share, low-confidence share (under the shared LOW_CONFIDENCE),
not-a-pet share, feedback and live accuracy with its Wilson interval, alerts fired).

Queued through the outbox like any message, once a day at NOTIFIER_DIGEST_HOUR (UTC; the first
replica to get there queues it, `notifier_digests` keeps the others from doing it again), and on
demand: `python -m services.notifier.client digest [--print]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from services.common.db import DATABASE_ERRORS, Database
from services.common.feedback_truth import TRUTH_SQL
from services.common.proportions import wilson_interval
from services.common.thresholds import LOW_CONFIDENCE
from services.notifier import limits
from services.notifier.formatting import COLOURS, OutboundMessage, Presentation
from services.notifier.settings import Settings

logger = logging.getLogger(__name__)

WINDOW = timedelta(days=1)
GROUP_KEY = "digest"

# `pet_rank` is not stored, so "not a pet" here is the score half of the model card's rule
# (pet_score under the answering version's pet_threshold): at least every photo flagged.
_PREDICTIONS = """
SELECT count(*) AS predictions,
       count(*) FILTER (WHERE m.prediction_result = 'cat') AS cats,
       count(*) FILTER (WHERE m.confidence < $3) AS low_confidence,
       count(*) FILTER (WHERE m.pet_score < (v.card->>'pet_threshold')::float8) AS not_a_pet
FROM monitoring m LEFT JOIN model_versions v ON v.version = m.model_version
WHERE m.created_at >= $1 AND m.created_at < $2
"""
# TRUTH_SQL is a constant of services.common, never input.
_FEEDBACK = f"""
SELECT count(*) AS feedback,
       count(*) FILTER (WHERE {TRUTH_SQL} = m.prediction_result) AS correct
FROM feedback f JOIN monitoring m ON m.id = f.prediction_id
WHERE f.updated_at >= $1 AND f.updated_at < $2
"""  # noqa: S608
# Alerts that went through the notifier, counted by when they started firing.
_ALERTS = """
SELECT count(*) FROM notifier_episodes e, jsonb_array_elements(e.alerts) a
WHERE (a->>'startsAt')::timestamptz >= $1 AND (a->>'startsAt')::timestamptz < $2
"""
_CLAIM_DAY = "INSERT INTO notifier_digests (day) VALUES ($1) ON CONFLICT DO NOTHING RETURNING day"
_INSERT = """
INSERT INTO notifier_outbox (group_key, route, source, payload) VALUES ($1, $2, 'digest', $3::jsonb)
"""


@dataclass(frozen=True)
class Figures:
    """One day of the model's life."""

    predictions: int
    cats: int
    low_confidence: int
    not_a_pet: int
    feedback: int
    correct: int
    alerts_fired: int

    def share(self, count: int) -> float | None:
        """`count` as a share of the predictions (None without any)."""
        return count / self.predictions if self.predictions else None

    @property
    def accuracy(self) -> tuple[float, float, float] | None:
        """Live accuracy and its Wilson interval, from the feedback (None without any)."""
        if not self.feedback:
            return None
        # 95 %, Wilson's: sound with few feedbacks and near 100 %.
        low, high = wilson_interval(self.correct, self.feedback)
        return self.correct / self.feedback, low, high


async def figures(
    connection: asyncpg.Connection, start: datetime, end: datetime, low_confidence: float
) -> Figures:
    """The figures of [start, end)."""
    predictions = await connection.fetchrow(_PREDICTIONS, start, end, low_confidence)
    feedback = await connection.fetchrow(_FEEDBACK, start, end)
    alerts = await connection.fetchval(_ALERTS, start, end)
    assert predictions is not None
    assert feedback is not None
    return Figures(
        predictions=predictions["predictions"],
        cats=predictions["cats"],
        low_confidence=predictions["low_confidence"],
        not_a_pet=predictions["not_a_pet"],
        feedback=feedback["feedback"],
        correct=feedback["correct"],
        alerts_fired=int(alerts or 0),
    )


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _change(today: float | None, before: float | None, *, points: bool) -> str:
    if today is None or before is None:
        return "no figure the day before" if today is not None else ""
    if points:
        return f"{(today - before) * 100:+.1f} pts (was {before:.1%})"
    return f"{today - before:+,.0f} (was {before:,.0f})"


def digest_message(
    today: Figures, before: Figures, end: datetime, threshold: float, route: str
) -> OutboundMessage:
    """The digest as one Discord message: a field per figure, each beside the day before's."""
    rows: list[tuple[str, str, str]] = [
        (
            "Predictions",
            f"{today.predictions:,}",
            _change(today.predictions, before.predictions, points=False),
        ),
        (
            "Cat share",
            _percent(today.share(today.cats)),
            _change(today.share(today.cats), before.share(before.cats), points=True),
        ),
        (
            f"Low confidence (< {threshold:g})",
            _percent(today.share(today.low_confidence)),
            _change(
                today.share(today.low_confidence), before.share(before.low_confidence), points=True
            ),
        ),
        (
            "Not a cat nor a dog",
            _percent(today.share(today.not_a_pet)),
            _change(today.share(today.not_a_pet), before.share(before.not_a_pet), points=True),
        ),
        ("Feedback", f"{today.feedback:,}", _change(today.feedback, before.feedback, points=False)),
        ("Live accuracy", *_accuracy(today, before)),
        (
            "Alerts fired",
            f"{today.alerts_fired:,}",
            _change(today.alerts_fired, before.alerts_fired, points=False),
        ),
    ]
    fields = [
        {
            "name": name,
            "value": limits.truncate(f"**{value}**" + (f"\n{change}" if change else ""), 1024),
            "inline": True,
        }
        for name, value, change in rows
    ]
    start = end - WINDOW
    embed: dict[str, Any] = {
        "title": "📊 Model health, the last 24 hours",
        "description": f"<t:{int(start.timestamp())}:f> → <t:{int(end.timestamp())}:f>, "
        "compared with the 24 hours before.",
        "color": COLOURS["info"],
        "fields": fields,
        "footer": {"text": "daily digest"},
        "timestamp": end.isoformat(),
    }
    payload = {"embeds": [embed], "allowed_mentions": {"parse": []}}
    return OutboundMessage(route, payload)


def _accuracy(today: Figures, before: Figures) -> tuple[str, str]:
    now, then = today.accuracy, before.accuracy
    if now is None:
        return "— (no feedback)", ""
    value = f"{now[0]:.1%} (95 % CI {now[1]:.1%}–{now[2]:.1%})"
    if then is None:
        return value, "no feedback the day before"
    return value, f"{(now[0] - then[0]) * 100:+.1f} pts (was {then[0]:.1%}, n={before.feedback})"


async def build(
    connection: asyncpg.Connection, settings: Settings, end: datetime, route: str
) -> OutboundMessage:
    """The digest of the 24 hours before `end`."""
    threshold = LOW_CONFIDENCE
    today = await figures(connection, end - WINDOW, end, threshold)
    before = await figures(connection, end - 2 * WINDOW, end - WINDOW, threshold)
    return digest_message(today, before, end, threshold, route)


async def queue(
    pool: asyncpg.Pool, settings: Settings, end: datetime, *, day: date | None = None
) -> OutboundMessage | None:
    """Queue the digest ending at `end`; with `day`, only if that day's was not queued yet
    (None then). Committed in one transaction with the day's mark."""
    route = Presentation(routes=tuple(settings.routes)).route_of({"severity": "info"})
    async with pool.acquire() as connection, connection.transaction():
        if day is not None and await connection.fetchval(_CLAIM_DAY, day) is None:
            return None
        message = await build(connection, settings, end, route)
        await connection.execute(_INSERT, GROUP_KEY, message.route, json.dumps(message.payload))
    return message


def due(now: datetime, hour: int) -> tuple[date, datetime] | None:
    """Today's digest (its day and end) once `now` is past today's hour, else None."""
    end = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    return (end.date(), end) if now >= end else None


class DigestScheduler:
    """Queues the day's digest once NOTIFIER_DIGEST_HOUR has passed (UTC)."""

    def __init__(self, database: Database, settings: Settings, wake: Callable[[], None]) -> None:
        self._database = database
        self._settings = settings
        self._wake = wake
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Check in the background (nothing to do when no hour is set)."""
        if self._settings.digest_hour is not None:
            self._task = asyncio.create_task(self._forever(), name="notifier-digest")

    async def stop(self) -> None:
        """Stop checking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _forever(self) -> None:
        hour = self._settings.digest_hour
        assert hour is not None
        while True:
            found = due(datetime.now(UTC), hour)
            if found is not None:
                try:
                    if await queue(self._database.pool, self._settings, found[1], day=found[0]):
                        logger.info("daily digest queued", extra={"day": found[0].isoformat()})
                        self._wake()
                except DATABASE_ERRORS as error:
                    logger.warning("daily digest not queued yet", extra={"error": repr(error)})
            await asyncio.sleep(self._settings.digest_check_s)


async def on_demand(settings: Settings, *, send: bool) -> str:
    """The digest of the last 24 hours, queued when `send`; returns its text."""
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        end = datetime.now(UTC)
        if send:
            message = await queue(pool, settings, end)
        else:
            async with pool.acquire() as connection:
                message = await build(connection, settings, end, "default")
    finally:
        await pool.close()
    assert message is not None
    return as_text(message)


def as_text(message: OutboundMessage) -> str:
    """The digest as lines of text (the CLI prints it)."""
    (embed,) = message.payload["embeds"]
    lines = [embed["title"]]
    for item in embed["fields"]:
        lines.append(f"{item['name']}: " + item["value"].replace("**", "").replace("\n", " · "))
    return "\n".join(lines)
