"""Bearer-token protection for operator endpoints, shared by every service that has them."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from fastapi import HTTPException, Request

# RFC 6750: a 401 tells the client which scheme to use.
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="admin"'}


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


def bearer_token_dependency(expected: str | None) -> Callable[[Request], None]:
    """A FastAPI dependency answering 401 unless the request carries `expected`.

    With no token configured (possible only in DEV_MODE, see `require_secret`) every request
    is refused: an unset secret must never mean "open".
    """

    def require_bearer_token(request: Request) -> None:
        if not token_matches(bearer_token(request), expected):
            raise HTTPException(401, "a valid bearer token is required", headers=_CHALLENGE)

    return require_bearer_token
