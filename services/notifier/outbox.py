"""The PostgreSQL outbox: enqueue with de-duplication, claim under a lease, settle, measure."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import asyncpg

from services.common.errors import InvalidInput
from services.notifier.episodes import Episode
from services.notifier.formatting import OutboundMessage
from services.notifier.priority import QueueFull, Quota, most_urgent, rank_of
from services.notifier.schemas import AlertmanagerAlert

T = TypeVar("T")

# A key is new when never seen, or when last queued longer ago than the window (reminders).
_CLAIM_KEYS = """
INSERT INTO notifier_dedup (dedup_key) SELECT unnest($1::text[])
ON CONFLICT (dedup_key) DO UPDATE SET last_queued_at = now()
WHERE notifier_dedup.last_queued_at < now() - make_interval(secs => $2)
RETURNING dedup_key
"""
_INSERT = """
INSERT INTO notifier_outbox (group_key, route, source, payload, episode_id, part, severity_rank,
                             caller)
VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8)
"""
# One caller's requests are admitted one at a time, so concurrent ones cannot all pass the cap.
_LOCK_CALLER = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
# Counts no further than the cap: the cost of the check is bounded whatever the backlog.
_CALLER_PENDING = """
SELECT count(*) FROM (
    SELECT 1 FROM notifier_outbox
    WHERE state = 'pending' AND caller = $1 AND severity_rank = $2
    LIMIT $3
) AS capped
"""
_OPEN_EPISODE = """
INSERT INTO notifier_episodes (group_key, route) VALUES ($1, $2)
ON CONFLICT (group_key, route) WHERE resolved_at IS NULL DO NOTHING
"""
_LOCK_EPISODE = """
SELECT id, receiver, group_labels::text AS group_labels, alerts::text AS alerts,
       parts::text AS parts
FROM notifier_episodes WHERE group_key = $1 AND route = $2 AND resolved_at IS NULL
FOR UPDATE
"""
_SAVE_EPISODE = """
UPDATE notifier_episodes
SET receiver = $2, group_labels = $3::jsonb, alerts = $4::jsonb, parts = $5::jsonb,
    resolved_at = CASE WHEN $6 THEN now() END
WHERE id = $1
"""
# A rendering of a part with a later one pending goes unsent: only the latest state matters.
_SUPERSEDED = """
UPDATE notifier_outbox o
SET state = 'collapsed', delivered_at = now(), lease_owner = NULL, lease_until = NULL,
    last_error = 'replaced by a later rendering of the same part'
WHERE o.id = $1 AND o.lease_owner = $2 AND EXISTS (
    SELECT 1 FROM notifier_outbox later
    WHERE later.episode_id = o.episode_id AND later.part = o.part
      AND later.state = 'pending' AND later.id > o.id
)
"""
_OWNER = "SELECT lease_owner FROM notifier_outbox WHERE id = $1 FOR UPDATE"
# Resolved, and no part of it ever reached Discord.
_STALE_EPISODE = """
SELECT e.id, e.receiver, e.group_labels::text AS group_labels, e.alerts::text AS alerts,
       e.parts::text AS parts
FROM notifier_episodes e
WHERE e.id = $1 AND e.resolved_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM notifier_episode_messages m WHERE m.episode_id = e.id)
FOR UPDATE
"""
_EPISODE_ROWS = """
SELECT id, part FROM notifier_outbox
WHERE episode_id = $1 AND state = 'pending' AND part IS NOT NULL
ORDER BY id
FOR UPDATE
"""
_FOLDED = """
UPDATE notifier_outbox
SET state = 'collapsed', delivered_at = now(), lease_owner = NULL, lease_until = NULL,
    last_error = 'resolved before it reached Discord: folded into its summary'
WHERE id = ANY($1::bigint[])
"""
# A summary is a message of its own (no part): it is never collapsed nor edited.
_SUMMARY = """
UPDATE notifier_outbox
SET payload = $2::jsonb, part = NULL, lease_owner = NULL, lease_until = NULL
WHERE id = $1
"""
_MESSAGE_OF = "SELECT message_id FROM notifier_episode_messages WHERE episode_id = $1 AND part = $2"
_FORGET_MESSAGE = """
UPDATE notifier_episode_messages SET message_id = NULL
WHERE episode_id = $1 AND part = $2 AND message_id = $3
"""
# Only the oldest pending row of each group on each route is a candidate, so a group is
# delivered in order on every webhook, and one webhook's trouble holds back no other;
# SKIP LOCKED lets two replicas claim at the same time without waiting on each other.
# Due heads go by severity first, then age: a critical message never waits behind info. A
# head carries the most urgent rank pending in its group, so that a group's critical edit is
# not held back behind its own earlier, milder rendering.
_CLAIM = """
WITH heads AS (
    SELECT DISTINCT ON (group_key, route) id,
           min(severity_rank) OVER (PARTITION BY group_key, route) AS urgency
    FROM notifier_outbox
    WHERE state = 'pending'
    ORDER BY group_key, route, id
),
claimable AS (
    SELECT o.id
    FROM notifier_outbox o JOIN heads h ON h.id = o.id
    WHERE o.next_attempt_at <= now() AND (o.lease_until IS NULL OR o.lease_until < now())
    ORDER BY h.urgency, o.next_attempt_at, o.id
    LIMIT $3
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE notifier_outbox o
SET lease_owner = $1, lease_until = now() + make_interval(secs => $2), attempts = o.attempts + 1
FROM claimable c
WHERE o.id = c.id
RETURNING o.id, o.group_key, o.route, o.payload::text AS payload, o.attempts, o.failures,
          o.episode_id, o.part
"""
# The message a part became is recorded with the settle, so the next row of the episode edits it.
_DELIVERED = """
WITH settled AS (
    UPDATE notifier_outbox
    SET state = 'delivered', delivered_at = now(), discord_message_id = $3, failures = 0,
        lease_owner = NULL, lease_until = NULL, last_error = NULL
    WHERE id = $1 AND lease_owner = $2
    RETURNING episode_id, part
)
INSERT INTO notifier_episode_messages (episode_id, part, message_id)
SELECT episode_id, part, $3 FROM settled
WHERE episode_id IS NOT NULL AND part IS NOT NULL AND $3::text IS NOT NULL
ON CONFLICT (episode_id, part) DO UPDATE SET message_id = EXCLUDED.message_id
"""
_RETRY = """
UPDATE notifier_outbox
SET next_attempt_at = now() + make_interval(secs => $3), last_error = $4,
    failures = failures + $6::int, lease_owner = NULL, lease_until = NULL,
    payload = COALESCE($5::jsonb, payload)
WHERE id = $1 AND lease_owner = $2
"""
_DROPPED = """
UPDATE notifier_outbox
SET state = 'dropped', delivered_at = now(), last_error = $3, lease_owner = NULL, lease_until = NULL
WHERE id = $1 AND lease_owner = $2
"""
_RELEASE_ALL = """
UPDATE notifier_outbox SET lease_owner = NULL, lease_until = NULL
WHERE lease_owner = $1 AND state = 'pending'
"""
_STATS = """
SELECT count(*) AS depth, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) AS oldest_s
FROM notifier_outbox WHERE state = 'pending'
"""
# Only group heads can be claimed, so only they say when there is work again.
_NEXT_DUE = """
WITH heads AS (
    SELECT DISTINCT ON (group_key, route) next_attempt_at, lease_until
    FROM notifier_outbox
    WHERE state = 'pending'
    ORDER BY group_key, route, id
)
SELECT EXTRACT(EPOCH FROM min(GREATEST(next_attempt_at, COALESCE(lease_until, now()))) - now())
FROM heads
"""
_PRUNE_OUTBOX = """
DELETE FROM notifier_outbox
WHERE state <> 'pending' AND delivered_at < now() - make_interval(days => $1::int)
"""
# Resolved episodes go once no pending row renders them (their messages are final).
_PRUNE_EPISODES = """
DELETE FROM notifier_episodes e
WHERE e.resolved_at < now() - make_interval(days => $1::int)
  AND NOT EXISTS (
      SELECT 1 FROM notifier_outbox o WHERE o.episode_id = e.id AND o.state = 'pending'
  )
"""
_PRUNE_DEDUP = """
DELETE FROM notifier_dedup WHERE last_queued_at < now() - make_interval(secs => $1)
"""


class UnstorableText(InvalidInput):
    """Text PostgreSQL cannot store, e.g. a NUL character."""


@contextlib.contextmanager
def _storable() -> Iterator[None]:
    try:
        yield
    except asyncpg.DataError as error:
        # Retrying cannot help: the text itself cannot be stored.
        raise UnstorableText(
            "the payload holds characters PostgreSQL cannot store (e.g. NUL)"
        ) from error


def _episode_of(row: asyncpg.Record, group_key: str, route: str) -> Episode:
    return Episode(
        id=row["id"],
        group_key=group_key,
        route=route,
        receiver=row["receiver"],
        group_labels=json.loads(row["group_labels"]),
        alerts=Episode.alerts_from(json.loads(row["alerts"])),
        parts=json.loads(row["parts"]),
    )


class LivingMessages(Protocol):
    """How alerts become episodes and episodes messages (routing and rendering)."""

    def route_of(self, alert: AlertmanagerAlert) -> str:
        """The route carrying an alert."""

    def merge(self, episode: Episode, alerts: list[AlertmanagerAlert]) -> None:
        """Take new alert states into the episode."""

    def render(self, episode: Episode) -> list[OutboundMessage]:
        """The episode's living message, every part."""


@dataclass(frozen=True)
class Claimed:
    """A message reserved for one sender until its lease ends."""

    id: int
    group_key: str
    route: str
    payload: dict[str, Any]
    attempts: int
    failures: int
    episode_id: int | None = None
    part: int | None = None


@dataclass(frozen=True)
class QueueStats:
    """What the gauges show."""

    depth: int
    oldest_s: float


class Outbox:
    """SQL over the outbox tables; every method takes what it needs and holds no state."""

    def __init__(self, pool: asyncpg.Pool, *, dedup_window_s: float) -> None:
        self._pool = pool
        self._dedup_window_s = dedup_window_s

    async def enqueue(
        self,
        group_key: str,
        source: str,
        candidates: Sequence[tuple[T, str]],
        render: Callable[[list[tuple[T, str]]], list[OutboundMessage]],
        quota: Quota | None = None,
    ) -> tuple[int, int]:
        """Keep the candidates whose keys are new, render them, queue; one transaction.

        `candidates` are (item, dedup key) pairs (key "" means never a duplicate) and `render`
        turns the kept pairs into `OutboundMessage`s. Returns (messages queued, duplicates).
        Raises `QueueFull` past the `quota`, queueing nothing.
        """
        with _storable():
            async with self._pool.acquire() as connection, connection.transaction():
                kept = await self._new_only(connection, candidates)
                messages = render(kept) if kept else []
                await self._admit(connection, source, quota, messages)
                await self._insert(connection, group_key, source, messages, None, quota)
        return len(messages), len(candidates) - len(kept)

    async def enqueue_alerts(
        self,
        group_key: str,
        source: str,
        candidates: Sequence[tuple[AlertmanagerAlert, str]],
        living: LivingMessages,
        quota: Quota | None = None,
    ) -> tuple[int, int]:
        """Merge the new alerts into their open episodes (opened when there is none) and queue
        every part of each changed episode's living message; one transaction.

        Returns (messages queued, duplicates). Raises `QueueFull` past the `quota`, leaving
        the episodes and the de-duplication keys as they were: a retry is queued whole.
        """
        rendered: list[tuple[int, list[OutboundMessage]]] = []
        with _storable():
            async with self._pool.acquire() as connection, connection.transaction():
                kept = await self._new_only(connection, candidates)
                by_route: dict[str, list[AlertmanagerAlert]] = {}
                for alert, _ in kept:
                    by_route.setdefault(living.route_of(alert), []).append(alert)
                # Sorted, so that concurrent requests lock the episodes in the same order.
                for route in sorted(by_route):
                    episode = await self._open_episode(connection, group_key, route)
                    # Off the event loop: thousands of alerts take seconds to lay out, and
                    # health checks and other callers must still be answered meanwhile.
                    await asyncio.to_thread(living.merge, episode, by_route[route])
                    await connection.execute(
                        _SAVE_EPISODE,
                        episode.id,
                        episode.receiver,
                        json.dumps(episode.group_labels),
                        episode.alerts_json(),
                        json.dumps(episode.parts),
                        episode.resolved,
                    )
                    rendered.append((episode.id, await asyncio.to_thread(living.render, episode)))
                everything = [message for _, messages in rendered for message in messages]
                await self._admit(connection, source, quota, everything)
                for episode_id, messages in rendered:
                    await self._insert(connection, group_key, source, messages, episode_id, quota)
        return sum(len(messages) for _, messages in rendered), len(candidates) - len(kept)

    async def _new_only(
        self, connection: asyncpg.Connection, candidates: Sequence[tuple[T, str]]
    ) -> list[tuple[T, str]]:
        # Sorted, so that concurrent requests lock shared keys in the same order.
        keys = sorted({key for _, key in candidates if key})
        new = {
            row["dedup_key"]
            for row in await connection.fetch(_CLAIM_KEYS, keys, self._dedup_window_s)
        }
        kept: list[tuple[T, str]] = []
        for item, key in candidates:
            if not key or key in new:
                kept.append((item, key))
                # The same key twice in one request is one item.
                new.discard(key)
        return kept

    async def _open_episode(
        self, connection: asyncpg.Connection, group_key: str, route: str
    ) -> Episode:
        await connection.execute(_OPEN_EPISODE, group_key, route)
        row = await connection.fetchrow(_LOCK_EPISODE, group_key, route)
        assert row is not None, "the open episode was just ensured, under this transaction"
        return _episode_of(row, group_key, route)

    @staticmethod
    async def _admit(
        connection: asyncpg.Connection,
        source: str,
        quota: Quota | None,
        messages: Sequence[OutboundMessage],
    ) -> None:
        """Refuse the request when its caller already has its quota pending in the request's
        most urgent lane. Judged before the request, which is then taken whole: one webhook
        larger than the quota still gets in, and a request carrying a critical alert is never
        refused because of the caller's info backlog."""
        if quota is None or not messages:
            return
        lane = most_urgent(message.lane for message in messages)
        await connection.execute(_LOCK_CALLER, quota.caller)
        pending = await connection.fetchval(
            _CALLER_PENDING, quota.caller, rank_of(lane), quota.max_pending
        )
        if pending >= quota.max_pending:
            raise QueueFull(source, lane)

    @staticmethod
    async def _insert(
        connection: asyncpg.Connection,
        group_key: str,
        source: str,
        messages: Sequence[OutboundMessage],
        episode_id: int | None,
        quota: Quota | None,
    ) -> None:
        await connection.executemany(
            _INSERT,
            [
                (
                    group_key,
                    message.route,
                    source,
                    json.dumps(message.payload),
                    episode_id,
                    message.part,
                    rank_of(message.lane),
                    quota.caller if quota else None,
                )
                for message in messages
            ],
        )

    async def claim(self, owner: str, *, lease_s: float, limit: int = 1) -> list[Claimed]:
        """Reserve up to `limit` due group heads for `owner`."""
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(_CLAIM, owner, lease_s, limit)
        return [
            Claimed(
                id=row["id"],
                group_key=row["group_key"],
                route=row["route"],
                payload=json.loads(row["payload"]),
                attempts=row["attempts"],
                failures=row["failures"],
                episode_id=row["episode_id"],
                part=row["part"],
            )
            for row in rows
        ]

    async def delivered(self, claimed: Claimed, owner: str, message_id: str | None) -> None:
        """Settle a message Discord confirmed."""
        await self._pool.execute(_DELIVERED, claimed.id, owner, message_id)

    async def retry_later(
        self,
        claimed: Claimed,
        owner: str,
        delay_s: float,
        error: str,
        *,
        failed: bool,
        payload: dict[str, Any] | None = None,
    ) -> None:
        """Give the message back, due again after `delay_s` (optionally with a new payload)."""
        new_payload = json.dumps(payload) if payload is not None else None
        await self._pool.execute(
            _RETRY, claimed.id, owner, delay_s, error[:500], new_payload, int(failed)
        )

    async def dropped(self, claimed: Claimed, owner: str, error: str) -> None:
        """Give up on a message Discord will never accept; kept in the table for inspection."""
        await self._pool.execute(_DROPPED, claimed.id, owner, error[:500])

    async def message_of(self, claimed: Claimed) -> str | None:
        """The Discord message the claimed part became, if it was posted already."""
        if claimed.episode_id is None or claimed.part is None:
            return None
        value = await self._pool.fetchval(_MESSAGE_OF, claimed.episode_id, claimed.part)
        return None if value is None else str(value)

    async def forget_message(self, claimed: Claimed, message_id: str) -> None:
        """The message was deleted in Discord: the part is posted anew."""
        await self._pool.execute(_FORGET_MESSAGE, claimed.episode_id, claimed.part, message_id)

    async def superseded(self, claimed: Claimed, owner: str) -> bool:
        """Settle the claimed rendering as collapsed when a later one of its part is pending."""
        if claimed.episode_id is None or claimed.part is None:
            return False
        status = await self._pool.execute(_SUPERSEDED, claimed.id, owner)
        return bool(status == "UPDATE 1")

    async def fold_if_stale(
        self,
        claimed: Claimed,
        owner: str,
        summarise: Callable[[Episode, int], dict[str, Any]],
    ) -> int:
        """When the claimed row's episode is resolved and none of it reached Discord, fold its
        pending rows into one summary per part (the part's latest row becomes it); returns the
        rows folded (0: not stale). The summaries are left pending, unleased, in place."""
        if claimed.episode_id is None or claimed.part is None:
            return 0
        async with self._pool.acquire() as connection, connection.transaction():
            # A lease lost meanwhile means another sender has the row: leave it to it.
            if await connection.fetchval(_OWNER, claimed.id) != owner:
                return 0
            row = await connection.fetchrow(_STALE_EPISODE, claimed.episode_id)
            if row is None:
                return 0
            episode = _episode_of(row, claimed.group_key, claimed.route)
            rows = await connection.fetch(_EPISODE_ROWS, claimed.episode_id)
            latest = {record["part"]: record["id"] for record in rows}
            others = [record["id"] for record in rows if record["id"] not in latest.values()]
            await connection.execute(_FOLDED, others)
            await connection.executemany(
                _SUMMARY,
                [(row_id, json.dumps(summarise(episode, part))) for part, row_id in latest.items()],
            )
        return len(rows)

    async def release_all(self, owner: str) -> None:
        """Hand back every lease of `owner` (graceful shutdown), so others need not wait."""
        await self._pool.execute(_RELEASE_ALL, owner)

    async def stats(self) -> QueueStats:
        """Pending messages and the age of the oldest."""
        row = await self._pool.fetchrow(_STATS)
        assert row is not None
        return QueueStats(depth=int(row["depth"]), oldest_s=float(row["oldest_s"]))

    async def seconds_until_due(self) -> float | None:
        """When the next pending message becomes claimable; None when nothing is pending."""
        value = await self._pool.fetchval(_NEXT_DUE)
        return None if value is None else max(0.0, float(value))

    async def prune(self, retention_days: float) -> None:
        """Forget settled messages and expired de-duplication keys."""
        await self._pool.execute(_PRUNE_OUTBOX, max(1, round(retention_days)))
        await self._pool.execute(_PRUNE_EPISODES, max(1, round(retention_days)))
        await self._pool.execute(_PRUNE_DEDUP, max(self._dedup_window_s, 86400.0))
