"""The per-client token bucket of services/common/ratelimit.py."""

from __future__ import annotations

import pytest

from services.common.ratelimit import RateLimiter


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refusal_with_the_wait_then_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=0.5, burst=2, clock=clock)
    assert [limiter.acquire("a"), limiter.acquire("a")] == [0, 0]
    assert limiter.acquire("a") == 2
    assert limiter.acquire("b") == 0
    clock.now = 2.0
    assert limiter.acquire("a") == 0
    assert limiter.acquire("a") == 2


def test_retry_after_does_not_spend() -> None:
    limiter = RateLimiter(rate_per_s=1, burst=1, clock=Clock())
    assert limiter.retry_after("a") == 0
    assert limiter.retry_after("a") == 0
    assert limiter.acquire("a") == 0
    assert limiter.retry_after("a") == 1


def test_memory_is_bounded_by_forgetting_the_least_recent_clients() -> None:
    limiter = RateLimiter(rate_per_s=0.001, burst=1, max_clients=2, clock=Clock())
    limiter.acquire("a")
    limiter.acquire("b")
    limiter.acquire("c")
    assert limiter.acquire("a") == 0
    assert limiter.acquire("c") > 0


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0), (-1, 5)])
def test_nonsense_limits_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        RateLimiter(rate_per_s=rate, burst=burst)
