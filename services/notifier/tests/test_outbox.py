"""The outbox under concurrency: exclusive claims, per-group order, leases that expire."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import pytest

from services.notifier.delivery import backoff_s
from services.notifier.formatting import OutboundMessage
from services.notifier.outbox import Outbox
from services.notifier.priority import QueueFull, Quota


def _render(kept: list[tuple[str, str]]) -> list[OutboundMessage]:
    return [OutboundMessage("default", {"content": text}) for text, _ in kept]


async def _fill(outbox: Outbox, groups: int, per_group: int) -> None:
    for number in range(per_group):
        for group in range(groups):
            await outbox.enqueue(f"g{group}", "test", [(f"g{group}-{number}", "")], _render)


@pytest.mark.asyncio
async def test_two_replicas_never_claim_the_same_message(database_url: str) -> None:
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=4) for _ in range(2)]
    try:
        outboxes = [Outbox(pool, dedup_window_s=60) for pool in pools]
        await _fill(outboxes[0], groups=40, per_group=3)

        settled: list[str] = []

        async def replica(outbox: Outbox, owner: str) -> list[str]:
            taken: list[str] = []
            while True:
                claimed = await outbox.claim(owner, lease_s=30, limit=3)
                if not claimed:
                    return taken
                for message in claimed:
                    taken.append(message.payload["content"])
                    await outbox.delivered(message, owner, None)
                    settled.append(message.payload["content"])

        first, second = await asyncio.gather(replica(outboxes[0], "a"), replica(outboxes[1], "b"))
        assert first
        assert second
        assert not set(first) & set(second)
        assert sorted(settled) == sorted(f"g{g}-{n}" for g in range(40) for n in range(3))
        for group in range(40):
            in_order = [item for item in settled if item.startswith(f"g{group}-")]
            assert in_order == [f"g{group}-{n}" for n in range(3)]
    finally:
        for pool in pools:
            await pool.close()


@pytest.mark.asyncio
async def test_only_the_oldest_pending_message_of_a_group_is_claimable(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        outbox = Outbox(pool, dedup_window_s=60)
        await _fill(outbox, groups=2, per_group=3)
        heads = await outbox.claim("a", lease_s=30, limit=10)
        assert sorted(m.payload["content"] for m in heads) == ["g0-0", "g1-0"]
        await outbox.retry_later(heads[0], "a", 0, "503", failed=True)
        again = await outbox.claim("a", lease_s=30, limit=10)
        assert [m.payload["content"] for m in again] == [heads[0].payload["content"]]
        assert again[0].failures == 1
    finally:
        await pool.close()


@pytest.mark.asyncio
async def test_next_due_time_is_the_heads_not_the_rows_waiting_behind(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        outbox = Outbox(pool, dedup_window_s=60)
        assert await outbox.seconds_until_due() is None
        await _fill(outbox, groups=1, per_group=3)
        (head,) = await outbox.claim("a", lease_s=30)
        await outbox.retry_later(head, "a", 120, "503", failed=True)
        due = await outbox.seconds_until_due()
        assert due is not None
        assert 100 < due <= 120
    finally:
        await pool.close()


@pytest.mark.asyncio
async def test_a_crashed_senders_lease_expires_and_its_late_answer_is_ignored(
    database_url: str,
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        outbox = Outbox(pool, dedup_window_s=60)
        await _fill(outbox, groups=1, per_group=1)
        (crashed,) = await outbox.claim("crashed", lease_s=0.3, limit=1)
        assert await outbox.claim("other", lease_s=30, limit=1) == []
        deadline = time.monotonic() + 10
        taken = []
        while not taken and time.monotonic() < deadline:
            taken = await outbox.claim("other", lease_s=30, limit=1)
            await asyncio.sleep(0.05)
        assert [m.id for m in taken] == [crashed.id]
        await outbox.delivered(crashed, "crashed", "late")
        state = await pool.fetchval("SELECT state FROM notifier_outbox WHERE id = $1", crashed.id)
        assert state == "pending"
        await outbox.release_all("other")
        assert [m.id for m in await outbox.claim("third", lease_s=30)] == [crashed.id]
    finally:
        await pool.close()


@pytest.mark.asyncio
async def test_duplicate_keys_are_queued_once_even_concurrently(database_url: str) -> None:
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=2) for _ in range(2)]
    try:
        outboxes = [Outbox(pool, dedup_window_s=3600) for pool in pools]
        candidates = [(f"alert-{i}", f"key-{i}") for i in range(20)]
        results = await asyncio.gather(
            *(outbox.enqueue("g", "test", candidates, _render) for outbox in outboxes)
        )
        assert sorted(results) == [(0, 20), (20, 0)]
        assert (await outboxes[0].stats()).depth == 20
    finally:
        for pool in pools:
            await pool.close()


@pytest.mark.asyncio
async def test_the_same_key_twice_in_one_request_is_queued_once(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        outbox = Outbox(pool, dedup_window_s=3600)
        candidates = [("a", "k1"), ("b", "k2"), ("a again", "k1"), ("free", "")]
        assert await outbox.enqueue("g", "test", candidates, _render) == (3, 1)
        contents = await pool.fetch("SELECT payload->>'content' AS c FROM notifier_outbox")
        assert sorted(row["c"] for row in contents) == ["a", "b", "free"]
    finally:
        await pool.close()


@pytest.mark.asyncio
async def test_a_key_is_queued_again_after_the_window(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        outbox = Outbox(pool, dedup_window_s=3600)
        assert await outbox.enqueue("g", "test", [("first", "k")], _render) == (1, 0)
        assert await outbox.enqueue("g", "test", [("retry", "k")], _render) == (0, 1)
        await pool.execute("UPDATE notifier_dedup SET last_queued_at = now() - interval '2 hours'")
        assert await outbox.enqueue("g", "test", [("reminder", "k")], _render) == (1, 0)
    finally:
        await pool.close()


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    low = [backoff_s(n, base_s=1, max_s=60, rng=lambda: 0.0) for n in range(1, 9)]
    high = [backoff_s(n, base_s=1, max_s=60, rng=lambda: 1.0) for n in range(1, 9)]
    assert low == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert high == [1, 2, 4, 8, 16, 32, 60, 60]


def _in_lane(lane: str) -> Callable[[list[tuple[str, str]]], list[OutboundMessage]]:
    def render(kept: list[tuple[str, str]]) -> list[OutboundMessage]:
        return [OutboundMessage("default", {"content": text}, lane=lane) for text, _ in kept]

    return render


async def _drain(outbox: Outbox) -> list[str]:
    sent: list[str] = []
    while claimed := await outbox.claim("a", lease_s=30):
        sent.append(claimed[0].payload["content"])
        await outbox.delivered(claimed[0], "a", None)
    return sent


@pytest.mark.asyncio
async def test_due_messages_go_by_severity_first_each_group_still_in_order(
    database_url: str,
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        outbox = Outbox(pool, dedup_window_s=60)
        for number in range(3):
            await outbox.enqueue("flood", "test", [(f"info-{number}", "")], _in_lane("info"))
        await outbox.enqueue("w", "test", [("warning", "")], _in_lane("warning"))
        await outbox.enqueue("c", "test", [("critical", "")], _in_lane("critical"))
        # A group turning critical: its first, milder row goes first, at the critical's rank.
        await outbox.enqueue("g", "test", [("g-info", "")], _in_lane("info"))
        await outbox.enqueue("g", "test", [("g-critical", "")], _in_lane("critical"))
        assert await _drain(outbox) == [
            "critical",
            "g-info",
            "g-critical",
            "warning",
            "info-0",
            "info-1",
            "info-2",
        ]
    finally:
        await pool.close()


@pytest.mark.asyncio
async def test_a_caller_past_its_quota_in_a_lane_is_refused_with_nothing_queued(
    database_url: str,
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        outbox = Outbox(pool, dedup_window_s=60)
        quota = Quota(caller="test@10.0.0.1", max_pending=2)
        # Judged before the request, then taken whole: three messages fit in a quota of two.
        many = [(f"info-{n}", f"k{n}") for n in range(3)]
        assert await outbox.enqueue("g", "test", many, _in_lane("info"), quota) == (3, 0)
        with pytest.raises(QueueFull) as refused:
            await outbox.enqueue("g", "test", [("more", "k-more")], _in_lane("info"), quota)
        assert (refused.value.source, refused.value.lane) == ("test", "info")
        # Other lanes, and other callers, have their own share.
        critical = [("critical", "k-critical")]
        assert await outbox.enqueue("g", "test", critical, _in_lane("critical"), quota) == (1, 0)
        other = Quota(caller="test@10.0.0.2", max_pending=2)
        assert await outbox.enqueue("g", "test", [("x", "")], _in_lane("info"), other) == (1, 0)
        assert await outbox.enqueue("g", "test", [("y", "")], _in_lane("info")) == (1, 0)
        assert "more" not in await _drain(outbox)
        # The refused key was not kept: the retry is queued, not taken for a duplicate.
        assert await outbox.enqueue("g", "test", [("more", "k-more")], _in_lane("info"), quota) == (
            1,
            0,
        )
    finally:
        await pool.close()
