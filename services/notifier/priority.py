"""Which messages go first, and how many one caller may keep waiting.

Every message travels in a severity lane: critical, then warning, then info (every other
severity or level). The outbox claims due messages by lane first, so a critical message never
waits behind a flood of info; and it caps what one caller may have pending in each lane, so
that a flood of info can never be the reason a critical message is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

LANES = ("critical", "warning", "info")
# Discord takes about 30 messages a minute per channel: by then a full lane has had room made.
QUEUE_FULL_RETRY_AFTER_S = 30


def lane_of(severity: str) -> str:
    """The lane of an alert's severity or a notification's level."""
    return severity if severity in LANES else "info"


def rank_of(lane: str) -> int:
    """0 for the most urgent lane; what the outbox orders and counts by."""
    return LANES.index(lane)


def most_urgent(severities: Iterable[str]) -> str:
    """The most urgent lane among these severities (info when there are none)."""
    return LANES[
        min((rank_of(lane_of(severity)) for severity in severities), default=rank_of("info"))
    ]


@dataclass(frozen=True)
class Quota:
    """How many messages `caller` may have pending in each lane."""

    caller: str
    max_pending: int


class QueueFull(Exception):
    """The caller already has its quota of pending messages in the request's lane: 429."""

    def __init__(self, source: str, lane: str) -> None:
        super().__init__(
            f"too many {lane} messages of this caller are waiting for Discord: "
            f"retry in {QUEUE_FULL_RETRY_AFTER_S} s"
        )
        self.source = source
        self.lane = lane
