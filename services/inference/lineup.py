"""Which loaded models answer: the active one, an optional canary and an optional shadow.

A `Lineup` is immutable. Swapping models builds a new one beside the old (the new sessions
loaded and warmed first) and replaces one reference, which is atomic: a request reads the
line-up once and keeps the predictor it chose, so an old session is freed by reference
counting once its last in-flight request ends. No request ever sees a half-loaded model.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncpg
import psycopg

from catdog.images import ImageLimits
from catdog.model import Classifier, ModelError
from services.common.db import DATABASE_ERRORS, Database
from services.inference import metrics
from services.inference.predictor import Predictor
from services.inference.registry import (
    REGISTRY_CHANNEL,
    ModelVersion,
    Registry,
    RegistryError,
    Role,
)

logger = logging.getLogger(__name__)

ServedAs = Literal["active", "canary"]


def canary_draw(prediction_id: uuid.UUID) -> float:
    """A uniform number in [0, 1) fixed by the prediction id: the same id always lands on the
    same side of the canary share, on every replica."""
    digest = hashlib.blake2b(prediction_id.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Lineup:
    """The predictors serving right now."""

    active: Predictor
    canary: Predictor | None = None
    canary_share: float = 0.0
    shadow: Predictor | None = None

    def choose(self, prediction_id: uuid.UUID) -> tuple[Predictor, ServedAs]:
        """The predictor that answers this prediction."""
        if self.canary is not None and canary_draw(prediction_id) < self.canary_share:
            return self.canary, "canary"
        return self.active, "active"

    def key(self) -> tuple[str, str | None, float, str | None]:
        """What identifies a line-up: versions and share."""
        return (
            self.active.version,
            self.canary.version if self.canary else None,
            self.canary_share,
            self.shadow.version if self.shadow else None,
        )

    def roles(self) -> dict[str, Predictor]:
        """Role -> predictor, for the serving roles filled."""
        filled = {"active": self.active, "canary": self.canary, "shadow": self.shadow}
        return {role: predictor for role, predictor in filled.items() if predictor is not None}


LoadModel = Callable[[Path], Classifier]


class LineupManager:
    """Keeps this replica's line-up equal to the registry's serving roles."""

    def __init__(
        self,
        *,
        registry: Registry,
        load_model: LoadModel,
        limits: ImageLimits,
        executor: Executor,
    ) -> None:
        self._lineup: Lineup | None = None
        self._registry = registry
        self._load_model = load_model
        self._limits = limits
        self._executor = executor
        self._lock = asyncio.Lock()

    @property
    def lineup(self) -> Lineup:
        """The current line-up (read it once per request)."""
        if self._lineup is None:
            raise RuntimeError("the line-up is read before start()")
        return self._lineup

    @property
    def registry(self) -> Registry:
        """The registry this manager follows."""
        return self._registry

    async def start(self, fallback: Path, *, actor: str) -> None:
        """Load the registry's line-up, making `fallback` the active version of an empty
        registry; serve `fallback` alone when the registry cannot be reached."""
        loop = asyncio.get_running_loop()
        registry = self._registry
        try:
            await loop.run_in_executor(
                self._executor, lambda: registry.bootstrap(fallback, actor=actor)
            )
        except (RegistryError, psycopg.Error, OSError) as error:
            logger.warning("model registry not bootstrapped", extra={"error": repr(error)})
        await self.sync()
        if self._lineup is None:
            fallback_predictor = await loop.run_in_executor(self._executor, self._load, fallback)
            self._lineup = Lineup(active=fallback_predictor)
            self._publish_info(None, self._lineup)

    async def sync(self) -> bool:
        """Bring the line-up in line with the registry once; True when it changed.

        Registry unreachable or a version that cannot load: the current line-up stays and the
        next sync tries again.
        """
        loop = asyncio.get_running_loop()
        async with self._lock:
            try:
                serving = await loop.run_in_executor(self._executor, self._registry.serving)
            except (RegistryError, psycopg.Error, OSError) as error:
                logger.warning("model registry unreachable", extra={"error": repr(error)})
                return False
            if "active" not in serving:
                return False
            current = self._lineup
            if current is not None and _key(serving) == current.key():
                return False
            try:
                lineup = await loop.run_in_executor(self._executor, self._build, serving)
            except ModelError as error:
                metrics.MODEL_SWAPS.labels(outcome="failed").inc()
                logger.error("model line-up not loaded", extra={"error": str(error)})
                return False
            previous, self._lineup = self._lineup, lineup
        metrics.MODEL_SWAPS.labels(outcome="swapped").inc()
        self._publish_info(previous, lineup)
        logger.info(
            "model line-up changed",
            extra={
                "before": list(previous.key()) if previous else None,
                "after": list(lineup.key()),
            },
        )
        return True

    async def sync_forever(self, every_s: float, database: Database | None = None) -> None:
        """Follow the registry: at once on its NOTIFY, and by polling every `every_s` so that
        a notification missed while PostgreSQL was away is never a change missed."""
        changed = asyncio.Event()
        connection: asyncpg.pool.PoolConnectionProxy | None = None

        def notified(*_: object) -> None:
            changed.set()

        try:
            while True:
                if database is not None and (connection is None or connection.is_closed()):
                    connection = await _listen(database, notified, connection)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), every_s)
                changed.clear()
                await self.sync()
        finally:
            if database is not None and connection is not None:
                with contextlib.suppress(*DATABASE_ERRORS):
                    await connection.remove_listener(REGISTRY_CHANNEL, notified)
                    await database.pool.release(connection)

    def _build(self, serving: Mapping[Role, ModelVersion]) -> Lineup:
        """Load (or reuse) and warm every version the registry wants; runs in a thread."""
        current = self._lineup.roles().values() if self._lineup else ()
        loaded = {predictor.version: predictor for predictor in current}

        def predictor(role: Role) -> Predictor | None:
            row = serving.get(role)
            if row is None:
                return None
            if row.version in loaded:
                return loaded[row.version]
            fresh = self._load(row.path(self._registry.store_dir))
            if fresh.classifier.sha256 != row.sha256:
                raise ModelError(
                    f"{row.version}: the stored file's sha256 {fresh.classifier.sha256} is not "
                    f"the registry's {row.sha256}"
                )
            loaded[row.version] = fresh
            return fresh

        active = predictor("active")
        assert active is not None
        canary = serving.get("canary")
        return Lineup(
            active=active,
            canary=predictor("canary"),
            canary_share=(canary.canary_share or 0.0) if canary else 0.0,
            shadow=predictor("shadow"),
        )

    def _load(self, path: Path) -> Predictor:
        """Load one model file and warm it; runs in a thread."""
        started = time.perf_counter()
        predictor = Predictor(self._load_model(path), self._limits)
        try:
            predictor.warm_up()
        except Exception as error:  # onnxruntime's errors are untyped
            raise ModelError(f"{path} loads but cannot run: {error}") from error
        metrics.MODEL_LOAD_TIME.observe(time.perf_counter() - started)
        return predictor

    @staticmethod
    def _publish_info(previous: Lineup | None, current: Lineup) -> None:
        # Keep the replaced series at 0 rather than removing it, so a swap is visible.
        if previous is not None:
            for role, predictor in previous.roles().items():
                metrics.MODEL_INFO.labels(**_info_labels(predictor, role)).set(0)
        for role, predictor in current.roles().items():
            metrics.MODEL_INFO.labels(**_info_labels(predictor, role)).set(1)


async def _listen(
    database: Database,
    callback: Callable[..., None],
    previous: asyncpg.pool.PoolConnectionProxy | None,
) -> asyncpg.pool.PoolConnectionProxy | None:
    """A pool connection LISTENing on the registry's channel; None while PostgreSQL is away."""
    if previous is not None:
        with contextlib.suppress(*DATABASE_ERRORS):
            await database.pool.release(previous)
    try:
        connection = await database.pool.acquire(timeout=5)
    except DATABASE_ERRORS:
        return None
    try:
        await connection.add_listener(REGISTRY_CHANNEL, callback)
    except DATABASE_ERRORS:
        await database.pool.release(connection)
        return None
    return connection


def _info_labels(predictor: Predictor, role: str) -> dict[str, str]:
    card = predictor.classifier.card
    return {
        "name": card.name,
        "version": card.version,
        "sha256": predictor.classifier.sha256,
        "role": role,
    }


def _key(serving: Mapping[Role, ModelVersion]) -> tuple[str, str | None, float, str | None]:
    canary = serving.get("canary")
    shadow = serving.get("shadow")
    return (
        serving["active"].version,
        canary.version if canary else None,
        (canary.canary_share or 0.0) if canary else 0.0,
        shadow.version if shadow else None,
    )
