"""A small in-process token-bucket limiter keyed by client, with bounded memory."""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`rate_per_s` tokens refill each bucket, up to `burst`; one request spends one token.

    Per process: with several workers each keeps its own buckets, so the effective limit is
    at most `workers` times the configured one, which still defeats enumeration. Memory is
    bounded by forgetting the least recently seen clients past `max_clients`.
    """

    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: int,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        self._rate = rate_per_s
        self._burst = burst
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: collections.OrderedDict[str, _Bucket] = collections.OrderedDict()

    def _bucket(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.pop(key, None) or _Bucket(tokens=float(self._burst), updated=now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        self._buckets[key] = bucket
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return bucket

    def retry_after(self, key: str, cost: float = 1.0) -> int:
        """Whole seconds until `key` may spend `cost`, without spending; 0 means now."""
        bucket = self._bucket(key)
        if bucket.tokens >= cost:
            return 0
        return max(1, math.ceil((cost - bucket.tokens) / self._rate))

    def acquire(self, key: str, cost: float = 1.0) -> int:
        """Spend `cost` tokens (one request, by default); returns 0 when allowed, else the
        seconds to wait (Retry-After). A cost over `burst` is never allowed."""
        wait = self.retry_after(key, cost)
        if wait == 0:
            self._buckets[key].tokens -= cost
        return wait
