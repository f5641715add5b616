"""Domain errors become statuses in one place, the shared app factory, for every service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from prometheus_client import REGISTRY

from services.common.db import Database, DatabaseUnavailable
from services.common.errors import InvalidInput, NotFound
from services.common.settings import ServiceSettings
from services.common.web import create_service_app

router = APIRouter()


class NoSuchThing(NotFound):
    pass


class Unacceptable(InvalidInput):
    pass


@router.get("/unavailable")
async def unavailable() -> None:
    try:
        raise OSError("connection refused")
    except OSError as error:
        raise DatabaseUnavailable("the database is unreachable") from error


@router.get("/missing")
async def missing() -> None:
    raise NoSuchThing("nothing has this id")


@router.get("/unacceptable")
async def unacceptable() -> None:
    raise Unacceptable("this cannot be accepted")


@contextlib.asynccontextmanager
async def no_lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield


async def nothing_to_check(request: Request) -> dict[str, str]:
    return {}


def service(**options: Any) -> FastAPI:
    return create_service_app(
        title="t",
        version="0",
        settings=ServiceSettings(),
        lifespan=no_lifespan,
        routers=[router],
        readiness=nothing_to_check,
        required=(),
        **options,
    )


async def get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


def answered(status: str) -> float:
    labels = {"handler": "/unavailable", "method": "GET", "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


@pytest.mark.asyncio
async def test_a_route_raising_database_unavailable_answers_503_with_retry_after() -> None:
    app = service(unavailable_detail="nothing was queued; retry later", unavailable_retry_after_s=7)
    before = answered("5xx")
    response = await get(app, "/unavailable")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.json() == {"detail": "nothing was queued; retry later"}
    assert answered("5xx") - before == 1


@pytest.mark.asyncio
async def test_the_503_has_a_default_body_and_retry_after() -> None:
    response = await get(service(), "/unavailable")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json() == {
        "detail": "the database is unavailable: nothing was recorded, retry shortly"
    }


@pytest.mark.asyncio
async def test_not_found_and_invalid_input_answer_404_and_422_with_their_message() -> None:
    app = service()
    missing = await get(app, "/missing")
    unacceptable = await get(app, "/unacceptable")
    assert (missing.status_code, missing.json()) == (404, {"detail": "nothing has this id"})
    assert (unacceptable.status_code, unacceptable.json()) == (
        422,
        {"detail": "this cannot be accepted"},
    )


@pytest.mark.asyncio
async def test_a_lost_connection_marks_the_database_down_and_raises_database_unavailable() -> None:
    database = Database("postgresql://postgres@127.0.0.1:1/nowhere", connect_timeout_s=0.5)
    await database.start()
    try:
        database.mark(True)
        with pytest.raises(DatabaseUnavailable, match="unreachable"):
            async with database.connection(acquire_timeout_s=0.5):
                pass
        assert not database.connected
        assert REGISTRY.get_sample_value("cv_database_connected") == 0
    finally:
        await database.close()


@pytest.mark.asyncio
async def test_a_refused_query_is_database_unavailable_and_the_database_stays_up(
    database_url: str,
) -> None:
    database = Database(database_url)
    await database.start()
    try:
        with pytest.raises(DatabaseUnavailable, match="cannot serve") as raised:
            async with database.connection() as connection:
                await connection.fetch("SELECT * FROM no_such_table")
        assert isinstance(raised.value.__cause__, asyncpg.UndefinedTableError)
        assert database.connected
        async with database.connection() as connection:
            assert await connection.fetchval("SELECT 1") == 1
    finally:
        await database.close()
