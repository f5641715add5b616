"""`/health` and `/ready`, the same shape in every service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

# A readiness check returns component -> "ok" | "down".
ReadinessCheck = Callable[[Request], Awaitable[dict[str, str]]]


def health_router(readiness: ReadinessCheck, *, required: Collection[str]) -> APIRouter:
    """Liveness answers while the process can; readiness reports each component.

    Components in `required` make the service unready (503) when not "ok"; the others only
    mark it degraded, because it still does its job without them (e.g. inference keeps
    answering while PostgreSQL is away).
    """
    router = APIRouter(tags=["health"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        components = await readiness(request)
        unready = any(components.get(name) != "ok" for name in required)
        degraded = any(state != "ok" for state in components.values())
        status = "unready" if unready else "degraded" if degraded else "ok"
        return JSONResponse({"status": status, **components}, status_code=503 if unready else 200)

    return router
