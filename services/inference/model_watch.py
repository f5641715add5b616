"""The live watch over each answering model version: embedding drift, estimated accuracy, and
how well calibrated it turned out on the answers users labelled.

On every interval, for the active and the canary version, one replica (a PostgreSQL advisory
lock per version; the others skip) reads the version's last `window` embeddings and
predictions, tests the embeddings against the model's training reference
(`drift.mmd_test`), estimates accuracy from the calibrated confidences
(`drift.estimate_accuracy`), compares both with the latest predictions users labelled, stores
the result in `drift_checks` and deletes the version's embeddings beyond `keep` rows. Every
replica then publishes the newest stored check as its gauges, so they all agree, whoever ran it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from catdog.calibration import reliability
from catdog.drift import estimate_accuracy, mmd_test
from services.common.db import DATABASE_ERRORS, Database
from services.common.feedback_truth import TRUTH_SQL
from services.inference import metrics
from services.inference.lineup import LineupManager
from services.inference.predictor import Predictor

logger = logging.getLogger(__name__)

# pg_try_advisory_xact_lock(key, hash of the version): one check of a version at a time.
_LOCK_KEY = 7_301_014

_LATEST_CHECK = "SELECT * FROM drift_checks WHERE model_version = $1 ORDER BY at DESC LIMIT 1"
_FRESH_CHECK = """
SELECT 1 FROM drift_checks
WHERE model_version = $1 AND at > now() - make_interval(secs => $2) LIMIT 1
"""
_WINDOW_EMBEDDINGS = """
SELECT embedding FROM prediction_embeddings
WHERE model_version = $1 ORDER BY created_at DESC LIMIT $2
"""
_WINDOW_CONFIDENCE = """
SELECT confidence FROM monitoring WHERE model_version = $1 ORDER BY created_at DESC LIMIT $2
"""
# Only a constant (feedback_truth.TRUTH_SQL) is interpolated.
_LABELLED = f"""
SELECT m.prediction_result, m.confidence, {TRUTH_SQL} AS truth
FROM feedback f JOIN monitoring m ON m.id = f.prediction_id
WHERE m.model_version = $1
ORDER BY m.created_at DESC LIMIT $2
"""  # noqa: S608
_PRUNE = """
DELETE FROM prediction_embeddings
WHERE model_version = $1 AND created_at < (
    SELECT created_at FROM prediction_embeddings
    WHERE model_version = $1 ORDER BY created_at DESC OFFSET $2 - 1 LIMIT 1)
"""
_INSERT_CHECK = """
INSERT INTO drift_checks (model_version, window_size, reference_size, drift_score,
    drift_threshold, drift_p_value, estimated_accuracy, estimated_stderr, predictions,
    labelled, feedback_accuracy, labelled_estimate, labelled_stderr, calibration_error,
    reliability)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
RETURNING *
"""


@dataclass(frozen=True)
class WatchPolicy:
    """How much each check looks at (from the settings)."""

    window: int = 200
    interval_s: float = 60.0
    alpha: float = 0.01
    permutations: int = 500
    keep_windows: int = 5
    labelled_window: int = 500


def figures(
    reference: np.ndarray | None,
    embeddings: np.ndarray,
    confidence: np.ndarray,
    labelled: list[tuple[str, float, str]],
    policy: WatchPolicy,
    *,
    seed: int,
) -> dict[str, Any]:
    """One check's numbers, as the `drift_checks` columns hold them (None: not enough data).

    Drift is tested only on a full window: a smaller one would make the alert's sensitivity
    depend on traffic.
    """
    row: dict[str, Any] = {
        "window_size": len(embeddings),
        "reference_size": None if reference is None else len(reference),
        "drift_score": None,
        "drift_threshold": None,
        "drift_p_value": None,
    }
    if reference is not None and len(embeddings) >= policy.window:
        result = mmd_test(
            reference, embeddings, alpha=policy.alpha, permutations=policy.permutations, seed=seed
        )
        row.update(
            drift_score=result.score,
            drift_threshold=result.threshold,
            drift_p_value=result.p_value,
        )
    estimate = estimate_accuracy(confidence)
    row.update(
        estimated_accuracy=_finite(estimate.ratio),
        estimated_stderr=_finite(estimate.stderr),
        predictions=estimate.count,
        labelled=len(labelled),
        feedback_accuracy=None,
        labelled_estimate=None,
        labelled_stderr=None,
        calibration_error=None,
        reliability=None,
    )
    if labelled:
        predicted = np.array([answer == "dog" for answer, _, _ in labelled])
        truth = np.array([actual == "dog" for _, _, actual in labelled]).astype(np.int64)
        chosen = np.array([value for _, value, _ in labelled])
        curve = reliability(np.where(predicted, chosen, 1.0 - chosen), truth)
        on_labelled = estimate_accuracy(chosen)
        row.update(
            feedback_accuracy=float(np.mean(predicted == truth.astype(bool))),
            labelled_estimate=on_labelled.ratio,
            labelled_stderr=on_labelled.stderr,
            calibration_error=curve.ece,
            reliability=json.dumps(
                {
                    "confidence": [_finite(value) for value in curve.confidence],
                    "accuracy": [_finite(value) for value in curve.accuracy],
                    "count": [int(value) for value in curve.count],
                }
            ),
        )
    return row


async def latest_check(connection: asyncpg.Connection, version: str) -> dict[str, Any] | None:
    """The newest stored check of a version, None before its first."""
    row = await connection.fetchrow(_LATEST_CHECK, version)
    return None if row is None else dict(row)


def drift_verdict(check: Mapping[str, Any] | None) -> str:
    """What a check says of drift: "drift" when its score passed the test's threshold (p <
    alpha), "no drift", "not tested" (a window short of full, or no reference), "not checked"."""
    if check is None:
        return "not checked"
    if check["drift_score"] is None or check["drift_threshold"] is None:
        return "not tested"
    return "drift" if check["drift_score"] > check["drift_threshold"] else "no drift"


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


class ModelWatch:
    """Runs the checks on an interval and keeps the gauges on the newest one."""

    def __init__(self, database: Database, manager: LineupManager, policy: WatchPolicy) -> None:
        self._database = database
        self._manager = manager
        self.policy = policy
        self._rounds = 0
        self._published: set[str] = set()

    def watched(self) -> list[Predictor]:
        """The versions that answer, and so have embeddings and predictions of their own."""
        roles = self._manager.lineup.roles()
        return [roles[role] for role in ("active", "canary") if role in roles]

    async def check(self) -> dict[str, dict[str, Any]]:
        """One round: check each watched version if due, publish its newest stored check."""
        self._rounds += 1
        published: dict[str, dict[str, Any]] = {}
        for predictor in self.watched():
            row = await self._check_version(predictor)
            if row is not None:
                publish(row)
                published[predictor.version] = row
        # A version that stopped answering is no longer watched: its gauges go, rather than
        # staying at their last value (and making the watch look stale).
        for version in self._published - set(published):
            forget(version)
        self._published = set(published)
        return published

    async def _check_version(self, predictor: Predictor) -> dict[str, Any] | None:
        version = predictor.version
        policy = self.policy
        async with self._database.pool.acquire() as connection, connection.transaction():
            # A replica that just ran it, or is running it, leaves it alone: one row per round.
            due = await connection.fetchval(
                "SELECT pg_try_advisory_xact_lock($1, hashtext($2))", _LOCK_KEY, version
            ) and not await connection.fetchval(_FRESH_CHECK, version, policy.interval_s * 0.8)
            if not due:
                return await latest_check(connection, version)
            embedded = await connection.fetch(_WINDOW_EMBEDDINGS, version, policy.window)
            confidence = await connection.fetch(_WINDOW_CONFIDENCE, version, policy.window)
            labelled = await connection.fetch(_LABELLED, version, policy.labelled_window)
            embeddings = np.array(
                [np.frombuffer(row["embedding"], dtype="<f2") for row in embedded],
                dtype=np.float32,
            )
            numbers = await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: figures(
                    predictor.classifier.reference,
                    embeddings,
                    np.array([row["confidence"] for row in confidence], dtype=np.float64),
                    [
                        (row["prediction_result"], row["confidence"], row["truth"])
                        for row in labelled
                    ],
                    policy,
                    seed=zlib.crc32(f"{version}:{self._rounds}".encode()),
                ),
            )
            stored = await connection.fetchrow(
                _INSERT_CHECK,
                version,
                *(numbers[column] for column in _COLUMNS),
            )
            await connection.execute(_PRUNE, version, policy.window * policy.keep_windows)
        logger.info(
            "model watch",
            extra={
                "version": version,
                "p_value": numbers["drift_p_value"],
                "estimated_accuracy": numbers["estimated_accuracy"],
            },
        )
        return dict(stored)

    async def check_forever(self) -> None:
        """`check` on the policy's interval; a database outage only skips a round."""
        while True:
            await asyncio.sleep(self.policy.interval_s)
            try:
                await self.check()
            except DATABASE_ERRORS as error:
                logger.warning("model watch skipped", extra={"error": repr(error)})
            except Exception:  # the loop must survive anything a round can raise
                logger.exception("model watch failed")


_COLUMNS = (
    "window_size",
    "reference_size",
    "drift_score",
    "drift_threshold",
    "drift_p_value",
    "estimated_accuracy",
    "estimated_stderr",
    "predictions",
    "labelled",
    "feedback_accuracy",
    "labelled_estimate",
    "labelled_stderr",
    "calibration_error",
    "reliability",
)


def publish(row: dict[str, Any]) -> None:
    """Set the gauges of one version from a stored check (NaN where it had too little data)."""
    version = row["model_version"]
    for gauge, column in metrics.WATCH_GAUGES:
        value = row[column]
        gauge.labels(model_version=version).set(math.nan if value is None else float(value))
    metrics.WATCH_CHECKED.labels(model_version=version).set(row["at"].timestamp())


def forget(version: str) -> None:
    """Remove the gauges of a version no longer watched."""
    for gauge, _ in (*metrics.WATCH_GAUGES, (metrics.WATCH_CHECKED, "at")):
        with contextlib.suppress(KeyError):
            gauge.remove(version)
