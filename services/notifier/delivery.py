"""The background sender: claims outbox rows, posts them to Discord, settles each outcome."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Callable

from services.common.db import DATABASE_ERRORS, Database, DatabaseUnavailable
from services.notifier import metrics
from services.notifier.discord import (
    ConfigError,
    Delivered,
    DiscordClient,
    RateLimited,
    Rejected,
    Transient,
    UnknownMessage,
    edit_key,
    redact,
)
from services.notifier.formatting import plain_fallback, stale_summary
from services.notifier.outbox import Claimed, Outbox
from services.notifier.settings import Settings

logger = logging.getLogger(__name__)

# Waits for a rate limit shorter than this are slept through holding the lease; longer ones
# hand the message back so the lease never expires mid-wait.
_MAX_IN_PLACE_WAIT_S = 5.0
_PRUNE_EVERY_S = 3600.0


def backoff_s(
    failures: int, *, base_s: float, max_s: float, rng: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with "equal jitter": half of the step is fixed, half random.

    The fixed half keeps a minimum pause; the random half spreads the retries of replicas
    and groups so they do not hit Discord in lockstep when it comes back.
    """
    step = min(max_s, base_s * 2 ** min(max(failures, 1) - 1, 30))
    return step / 2 + rng() * step / 2


class Dispatcher:
    """Delivers the outbox; several dispatchers (replicas, workers) may run side by side."""

    def __init__(self, database: Database, discord: DiscordClient, settings: Settings) -> None:
        self._database = database
        self._discord = discord
        self._settings = settings
        self.owner = f"notifier-{uuid.uuid4().hex[:12]}"
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.misconfigured = False

    @property
    def outbox(self) -> Outbox:
        """The outbox over the current pool."""
        return Outbox(self._database.pool, dedup_window_s=self._settings.dedup_window_s)

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wakeup.set()

    def start(self) -> None:
        """Start delivering and measuring in the background."""
        self._tasks = [
            asyncio.create_task(self._deliver_forever(), name="notifier-deliver"),
            asyncio.create_task(self._measure_forever(), name="notifier-measure"),
        ]

    async def stop(self) -> None:
        """Stop, handing back any lease so another replica need not wait for it to expire."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(*DATABASE_ERRORS):
            await asyncio.wait_for(self.outbox.release_all(self.owner), 3)

    async def deliver_once(self) -> bool:
        """Claim and deliver one due message; False when none was due."""
        claimed = await self.outbox.claim(self.owner, lease_s=self._settings.delivery_lease_s)
        if not claimed:
            return False
        await self._deliver(claimed[0])
        return True

    async def _deliver_forever(self) -> None:
        while True:
            try:
                # Idling asks the outbox when work is due, so it fails like a delivery does.
                with self._database.guard():
                    if not await self.deliver_once():
                        await self._idle()
            except DatabaseUnavailable:
                await self._database.wait_for_change(self._settings.delivery_poll_s)

    async def _idle(self) -> None:
        pause = self._settings.delivery_poll_s
        due = await self.outbox.seconds_until_due()
        if due is not None:
            pause = min(pause, max(due, 0.01))
        self._wakeup.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), pause)

    async def _deliver(self, message: Claimed) -> None:
        if await self._collapsed(message):
            return
        url = self._settings.webhook_for(message.route)
        if url is None:
            logger.info(
                "Discord is not configured; message logged instead of sent",
                extra={"route": message.route, "payload": json.dumps(message.payload)[:4000]},
            )
            metrics.LOGGED.inc()
            await self.outbox.delivered(message, self.owner, None)
            return
        outbox = self.outbox
        # Decided now, in the group's order: the part's earlier rendering has been sent (or
        # given up on) by the time this one is claimed.
        editing = await outbox.message_of(message)
        key = url if editing is None else edit_key(url)
        wait = self._discord.limiter.delay_for(key)
        if wait > _MAX_IN_PLACE_WAIT_S:
            await outbox.retry_later(
                message, self.owner, wait, "waiting for Discord rate limit", failed=False
            )
            return
        await self._discord.wait_turn(key)
        if editing is None:
            outcome = await self._discord.post(url, message.payload)
        else:
            outcome = await self._discord.edit(url, editing, message.payload)
        match outcome:
            case Delivered(message_id=message_id):
                metrics.ATTEMPTS.labels("delivered", "none").inc()
                metrics.DELIVERED.inc()
                if editing is not None:
                    metrics.EDITED.inc()
                metrics.WEBHOOK_MISCONFIGURED.set(0)
                self.misconfigured = False
                await outbox.delivered(message, self.owner, message_id or editing)
            case UnknownMessage():
                assert editing is not None, "only an edit names a message"
                metrics.ATTEMPTS.labels("unknown_message", "10008").inc()
                metrics.RETRIED.labels("unknown_message").inc()
                logger.warning(
                    "the message to edit was deleted in Discord; posting it anew",
                    extra={"webhook": redact(url), "message_id": editing},
                )
                await outbox.forget_message(message, editing)
                await outbox.retry_later(
                    message, self.owner, 0, "message deleted in Discord", failed=False
                )
            case RateLimited(retry_after_s=seconds, is_global=is_global):
                metrics.ATTEMPTS.labels("rate_limited", "none").inc()
                metrics.RATE_LIMITED.labels("global" if is_global else "webhook").inc()
                metrics.RETRIED.labels("rate_limited").inc()
                await outbox.retry_later(
                    message, self.owner, seconds, "429 rate limited", failed=False
                )
            case Transient(reason=reason):
                delay = self._backoff(message.failures + 1)
                metrics.ATTEMPTS.labels("transient_error", "none").inc()
                metrics.RETRIED.labels("transient_error").inc()
                logger.warning(
                    "Discord delivery failed; will retry",
                    extra={"webhook": redact(url), "reason": reason, "retry_in_s": round(delay, 2)},
                )
                await outbox.retry_later(message, self.owner, delay, reason, failed=True)
            case ConfigError(status=status, code=code):
                await self._misconfigured(message, url, status, code)
            case Rejected():
                await self._rejected(message, url, outcome)

    async def _collapsed(self, message: Claimed) -> bool:
        """Send only what still says something: the latest rendering of each part, and one
        summary for a group that resolved before any of it was posted (after an outage)."""
        outbox = self.outbox
        folded = await outbox.fold_if_stale(message, self.owner, stale_summary)
        if folded:
            metrics.COLLAPSED.labels("resolved_unsent").inc(folded)
            # The summaries replaced the rows, this one included (its lease with them): the
            # next claim sends them, in the group's order.
            return True
        if await outbox.superseded(message, self.owner):
            metrics.COLLAPSED.labels("superseded").inc()
            return True
        return False

    def _backoff(self, failures: int) -> float:
        return backoff_s(
            failures, base_s=self._settings.retry_base_s, max_s=self._settings.retry_max_s
        )

    async def _misconfigured(
        self, message: Claimed, url: str, status: int, code: int | None
    ) -> None:
        pause = self._settings.config_error_retry_s
        metrics.ATTEMPTS.labels("config_error", metrics.code_label(code)).inc()
        metrics.RETRIED.labels("config_error").inc()
        metrics.WEBHOOK_MISCONFIGURED.set(1)
        self.misconfigured = True
        logger.error(
            "Discord refuses the configured webhook (unknown, deleted or unauthorised): "
            "messages are kept and retried; fix DISCORD_WEBHOOK_URL",
            extra={"webhook": redact(url), "status": status, "discord_code": code},
        )
        # Every message for this webhook would meet the same answer: hold them all.
        self._discord.limiter.blocked(url, pause, is_global=False)
        await self.outbox.retry_later(
            message, self.owner, pause, f"HTTP {status} code {code}", failed=True
        )

    async def _rejected(self, message: Claimed, url: str, outcome: Rejected) -> None:
        metrics.ATTEMPTS.labels("rejected", metrics.code_label(outcome.code)).inc()
        if message.payload.get("embeds"):
            logger.error(
                "Discord rejected a message; retrying it as plain text",
                extra={"webhook": redact(url), "status": outcome.status, "detail": outcome.detail},
            )
            metrics.RETRIED.labels("rejected").inc()
            await self.outbox.retry_later(
                message,
                self.owner,
                0,
                outcome.detail,
                failed=True,
                payload=plain_fallback(message.payload),
            )
            return
        logger.error(
            "Discord rejected the plain-text rendering too; message dropped (kept in the outbox)",
            extra={"webhook": redact(url), "status": outcome.status, "detail": outcome.detail},
        )
        metrics.DROPPED.labels("rejected").inc()
        await self.outbox.dropped(message, self.owner, outcome.detail)

    async def _measure_forever(self) -> None:
        since_prune = _PRUNE_EVERY_S
        while True:
            try:
                stats = await self.outbox.stats()
                metrics.QUEUE_DEPTH.set(stats.depth)
                metrics.OLDEST_AGE.set(stats.oldest_s)
                if since_prune >= _PRUNE_EVERY_S:
                    await self.outbox.prune(self._settings.outbox_retention_days)
                    since_prune = 0.0
            except DATABASE_ERRORS as error:
                logger.debug("outbox statistics unavailable", extra={"error": repr(error)})
            await asyncio.sleep(self._settings.stats_interval_s)
            since_prune += self._settings.stats_interval_s
