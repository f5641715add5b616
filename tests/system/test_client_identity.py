"""Who "the client" is, for every per-client limit: the peer, or what a trusted proxy says.

A spoofed `X-Forwarded-For` must not give a client a fresh bucket; behind a configured proxy,
each user it forwards must get their own.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.services import ServiceProcess

pytestmark = pytest.mark.slow

PROXY = "127.0.0.9"
BURST = 5


def feedback(tmp_path: Path, database_url: str, **extra: str) -> ServiceProcess:
    env = {
        "DATABASE_URL": database_url,
        "DEV_MODE": "true",
        "PREDICTION_WAIT_S": "0",
        "RGPD_RATE_LIMIT_BURST": str(BURST),
        "RGPD_RATE_LIMIT_PER_MINUTE": "1",
        **extra,
    }
    return ServiceProcess("feedback", env, tmp_path)


def guesses(service: ServiceProcess, source: str, forwarded_for: Iterator[str]) -> Counter[int]:
    """`GET /predictions/{random id}` from `source`, each claiming the next forwarded address."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=15) as client:
        return Counter(
            client.get(
                f"{service.url}/predictions/{uuid.uuid4()}",
                headers={"X-Forwarded-For": address},
            ).status_code
            for address in forwarded_for
        )


def spoofed() -> Iterator[str]:
    return (f"203.0.113.{n}" for n in range(1, 21))


def test_a_forged_forwarded_for_from_loopback_buys_no_fresh_bucket(
    tmp_path: Path, database_url: str
) -> None:
    with feedback(tmp_path, database_url) as service:
        statuses = guesses(service, "127.0.0.1", spoofed())
    assert statuses[429] >= 20 - BURST, statuses


def test_behind_a_configured_proxy_each_forwarded_client_has_its_own_bucket(
    tmp_path: Path, database_url: str
) -> None:
    with feedback(tmp_path, database_url, FORWARDED_ALLOW_IPS=PROXY) as service:
        users = guesses(service, PROXY, spoofed())
        one_user = guesses(service, PROXY, iter(["198.51.100.7"] * 20))
        # A client that is not the proxy is still itself, whatever it claims.
        direct = guesses(service, "127.0.0.1", spoofed())
    assert users == {404: 20}, users
    assert one_user[429] >= 20 - BURST, one_user
    assert direct[429] >= 20 - BURST, direct
