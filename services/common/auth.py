"""Bearer-token protection for operator endpoints, shared by every service that has them."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from fastapi import HTTPException, Request

from services.common.ratelimit import RateLimiter

# Failed attempts one client may make: a burst an operator's typos never reach, then one
# every 6 s. Guessing a 64-hex-digit token is hopeless anyway; this keeps a guesser from
# spending our CPU and log lines at thousands of attempts a second.
FAILURE_BURST = 20
FAILURES_PER_MINUTE = 10


def token_matches(presented: str | None, expected: str | None) -> bool:
    """Compare in constant time; no expected token configured means nothing matches."""
    if not expected or not presented:
        return False
    return secrets.compare_digest(presented.encode(), expected.encode())


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if there is one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def bearer_token_dependency(
    expected: str | None, *, realm: str = "admin"
) -> Callable[[Request], None]:
    """A FastAPI dependency answering 401 unless the request carries `expected`, and 429 to a
    client past `FAILURE_BURST` failed attempts (refilled at `FAILURES_PER_MINUTE`).

    With no token configured (possible only in DEV_MODE, see `require_secret`) every request
    is refused: an unset secret must never mean "open". `realm` names what the 401's challenge
    protects.
    """

    failures = RateLimiter(rate_per_s=FAILURES_PER_MINUTE / 60, burst=FAILURE_BURST)
    # RFC 6750: a 401 tells the client which scheme to use.
    challenge = {"WWW-Authenticate": f'Bearer realm="{realm}"'}

    def require_bearer_token(request: Request) -> None:
        client = request.client.host if request.client else "unknown"
        # Checked before the token: a throttled client learns nothing, even from a right one.
        wait_s = failures.retry_after(client)
        if wait_s:
            raise HTTPException(
                429,
                f"too many failed attempts: retry in {wait_s} s",
                headers={"Retry-After": str(wait_s)},
            )
        if not token_matches(bearer_token(request), expected):
            failures.acquire(client)
            raise HTTPException(401, "a valid bearer token is required", headers=challenge)

    return require_bearer_token
