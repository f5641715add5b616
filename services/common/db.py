"""The asyncpg pool every service uses, and a probe that tracks whether PostgreSQL is up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from services.common.metrics import DATABASE_CONNECTED
from services.common.settings import ServiceSettings

logger = logging.getLogger(__name__)

# Errors that mean "the database is unreachable or restarting", as opposed to a bug in our SQL.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.PostgresConnectionError,
)
# Everything PostgreSQL, or the way to it, can raise: what background loops survive.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached or cannot serve the schema right now: retry later."""


class Database:
    """A lazily connecting pool, so a service starts and serves while PostgreSQL is down."""

    def __init__(
        self,
        dsn: str,
        *,
        max_size: int = 10,
        connect_timeout_s: float = 3.0,
        probe_interval_s: float = 2.0,
    ) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._connect_timeout_s = connect_timeout_s
        self._probe_interval_s = probe_interval_s
        self._pool: asyncpg.Pool | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._connected = False
        self._state_changed = asyncio.Event()
        DATABASE_CONNECTED.set(0)

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> Database:
        """The pool every service builds from its shared database settings."""
        return cls(
            settings.database_url,
            max_size=settings.db_pool_max_size,
            connect_timeout_s=settings.db_connect_timeout_s,
            probe_interval_s=settings.db_probe_interval_s,
        )

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool; only valid between `start()` and `close()`."""
        if self._pool is None:
            raise RuntimeError("Database.start() has not been awaited")
        return self._pool

    @property
    def connected(self) -> bool:
        """Whether the last probe or query reached PostgreSQL."""
        return self._connected

    async def start(self) -> None:
        """Create the pool (min_size=0 connects nothing yet) and start probing."""
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=0,
            max_size=self._max_size,
            timeout=self._connect_timeout_s,
            # Connections idle for a while are closed so that a restarted server is rediscovered.
            max_inactive_connection_lifetime=60,
        )
        await self.probe()
        self._probe_task = asyncio.create_task(self._probe_forever(), name="db-probe")

    async def close(self) -> None:
        """Stop probing and close every connection."""
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        if self._pool is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await asyncio.wait_for(self._pool.close(), timeout=5)
            self._pool = None

    async def probe(self) -> bool:
        """Run `SELECT 1` and record the outcome."""
        try:
            async with self.pool.acquire(timeout=self._connect_timeout_s) as connection:
                await connection.fetchval("SELECT 1", timeout=self._connect_timeout_s)
        except DATABASE_ERRORS as error:
            # A server that answers but refuses us (database missing, auth) is down for us too;
            # the service keeps running so that fixing the configuration needs no restart.
            self.mark(False, reason=repr(error))
        else:
            self.mark(True)
        return self._connected

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Run queries; a failure of PostgreSQL becomes `DatabaseUnavailable`, success marks it up.

        A lost connection also marks the database down, so that readiness and
        `cv_database_connected` follow at once rather than at the next probe.
        """
        try:
            yield
        except CONNECTION_ERRORS as error:
            self.mark(False, reason=repr(error))
            raise DatabaseUnavailable("the database is unreachable") from error
        except asyncpg.PostgresError as error:
            # e.g. the schema is not migrated yet: an operational state, not the caller's fault.
            # The class and SQLSTATE only: a message may quote a row, and rows are personal.
            logger.error(
                "database refused a query",
                extra={"error": type(error).__name__, "sqlstate": error.sqlstate},
            )
            raise DatabaseUnavailable("the database cannot serve this request") from error
        self.mark(True)

    @contextlib.asynccontextmanager
    async def connection(
        self, *, acquire_timeout_s: float | None = None
    ) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection under `guard()`: its queries fail as `DatabaseUnavailable`."""
        with self.guard():
            async with self.pool.acquire(timeout=acquire_timeout_s) as connection:
                yield connection

    def mark(self, connected: bool, *, reason: str = "") -> None:
        """Record reachability, e.g. after a query failed for a connection error."""
        if connected != self._connected:
            if connected:
                logger.info("database reachable")
            else:
                logger.warning("database unreachable", extra={"reason": reason})
            self._state_changed.set()
        self._connected = connected
        DATABASE_CONNECTED.set(1 if connected else 0)

    async def wait_for_change(self, at_most_s: float) -> None:
        """Sleep until the reachability changes or `at_most_s` passes."""
        self._state_changed.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._state_changed.wait(), at_most_s)

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self._probe_interval_s)
            await self.probe()


def get_database(request: Request) -> Database:
    """The service's `Database`, created in its lifespan."""
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
