"""Every answer of a service is counted, the refusals its middleware makes included."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from prometheus_client import REGISTRY

from services.common.settings import ServiceSettings
from services.common.web import create_service_app

router = APIRouter()
released = asyncio.Event()


@router.get("/slow")
async def slow() -> dict[str, str]:
    await released.wait()
    return {"status": "done"}


@contextlib.asynccontextmanager
async def no_lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield


async def nothing_to_check(request: Request) -> dict[str, str]:
    return {}


def answered(status: str) -> float:
    labels = {"handler": "/slow", "method": "GET", "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


@pytest.mark.asyncio
async def test_the_concurrency_limit_answers_503_with_retry_after_and_counts_it() -> None:
    app = create_service_app(
        title="t",
        version="0",
        settings=ServiceSettings(max_concurrency=1),
        lifespan=no_lifespan,
        routers=[router],
        readiness=nothing_to_check,
        required=(),
    )
    refused_before = answered("5xx")
    released.clear()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        first = asyncio.create_task(client.get("/slow"))
        await asyncio.sleep(0.05)  # the first request now holds the only slot
        second = await client.get("/slow")
        released.set()
        assert (await first).status_code == 200
    assert second.status_code == 503
    assert second.headers["retry-after"] == "1"
    assert "retry" in second.json()["detail"]
    assert answered("5xx") - refused_before == 1
