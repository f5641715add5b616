"""Canary analysis: compare each candidate with the active model on real traffic, and roll a
canary back automatically when it is worse.

Figures come from PostgreSQL, so every replica sees the same ones: answers per version since
the candidate took its role, their latency, and the answers users labelled through feedback.
A canary is rolled back when

- its accuracy on labelled answers is lower than the active model's over the same period,
  by a one-sided two-proportion z-test at `alpha`, once both have `min_labelled` labels
  (at most `LABELS_PER_CLIENT` from any one client);
- or its p95 latency exceeds `latency_ratio` × the active model's, over `min_requests`;
- or its model calls fail more often than `max_error_rate` in this replica.

Whichever replica sees it first retires the canary (a conditional registry update: the
others find it already done) and announces it with the figures. Promotion stays a human
decision: `registry_cli list` and the dashboard show the same figures.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.common.db import DATABASE_ERRORS, Database
from services.common.feedback_truth import TRUTH_SQL
from services.common.notify import send_in_background
from services.common.proportions import smaller_proportion_p_value, wilson_interval, z_for
from services.inference import metrics
from services.inference.lineup import LineupManager
from services.inference.registry import Registry, RegistryError, RoleChange

logger = logging.getLogger(__name__)

# Labels one client may give a version, over a comparison period: anyone holding answers can
# label them, so without a cap one client's 32 false labels retired a sound canary (and true
# ones could flatter a bad one). Counted are each client's first ones; the client is the
# feedback service's (its address), stored as a digest.
LABELS_PER_CLIENT = 3

# Each version's feedback counted: its answers (`answered` joined to `feedback f`, under
# `conditions`) numbered per client, the first LABELS_PER_CLIENT kept. A row older than the
# client column counts as a client of its own.
_COUNTED_FEEDBACK = """
SELECT prediction_id, true_label, satisfaction FROM (
    SELECT f.prediction_id, f.true_label, f.satisfaction,
           row_number() OVER (
               PARTITION BY a.model_version, coalesce(f.client_key, uuid_send(f.prediction_id))
               ORDER BY f.created_at, f.prediction_id
           ) AS nth
    FROM {answered} a JOIN feedback f ON f.prediction_id = a.{answer_id}
    WHERE {conditions}
) numbered
WHERE nth <= {cap}
"""

_SERVED_LABELS = _COUNTED_FEEDBACK.format(
    answered="monitoring",
    answer_id="id",
    conditions="a.created_at >= $1 AND a.model_version = ANY($2::text[])",
    cap=LABELS_PER_CLIENT,
)
_SHADOW_LABELS = _COUNTED_FEEDBACK.format(
    answered="shadow_predictions",
    answer_id="prediction_id",
    conditions="a.created_at >= $1 AND a.model_version = $2",
    cap=LABELS_PER_CLIENT,
)

# Only constants (feedback_truth.TRUTH_SQL, the queries above) are interpolated below.
_SERVED_FIGURES = f"""
SELECT m.model_version AS version,
       count(*) AS answers,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY m.inference_time_ms) AS p95_ms,
       count(f.prediction_id) AS labelled,
       count(*) FILTER (WHERE f.prediction_id IS NOT NULL
                        AND m.prediction_result = {TRUTH_SQL}) AS correct
FROM monitoring m
LEFT JOIN ({_SERVED_LABELS}) f ON f.prediction_id = m.id
WHERE m.created_at >= $1 AND m.model_version = ANY($2::text[])
GROUP BY m.model_version
"""  # noqa: S608

_SHADOW_FIGURES = f"""
SELECT s.model_version AS version,
       count(*) AS answers,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY s.inference_time_ms) AS p95_ms,
       count(f.prediction_id) AS labelled,
       count(*) FILTER (WHERE f.prediction_id IS NOT NULL
                        AND s.prediction_result = {TRUTH_SQL}) AS correct
FROM shadow_predictions s
JOIN monitoring m ON m.id = s.prediction_id
LEFT JOIN ({_SHADOW_LABELS}) f ON f.prediction_id = s.prediction_id
WHERE s.created_at >= $1 AND s.model_version = $2
GROUP BY s.model_version
"""  # noqa: S608


@dataclass(frozen=True)
class RollbackPolicy:
    """When a canary is judged worse (from the settings)."""

    alpha: float = 0.05
    min_labelled: int = 30
    latency_ratio: float = 2.0
    min_requests: int = 100
    max_error_rate: float = 0.02


@dataclass(frozen=True)
class VersionFigures:
    """One version's answers over the comparison period."""

    version: str
    answers: int
    p95_ms: float | None
    labelled: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        """Share of labelled answers that were right."""
        return self.correct / self.labelled if self.labelled else None

    def accuracy_interval(self, alpha: float) -> tuple[float, float] | None:
        """Wilson score interval of the accuracy."""
        if not self.labelled:
            return None
        return wilson_interval(self.correct, self.labelled, z_for(alpha))

    @classmethod
    def empty(cls, version: str) -> VersionFigures:
        """No answers yet."""
        return cls(version, 0, None, 0, 0)


@dataclass(frozen=True)
class Verdict:
    """Why a canary must go, with the figures that show it."""

    reason: str  # "accuracy", "latency" or "errors"
    summary: str
    figures: dict[str, Any]


def accuracy_p_value(canary: VersionFigures, active: VersionFigures) -> float | None:
    """One-sided p-value of "the canary is less accurate than the active model"."""
    if not canary.labelled or not active.labelled:
        return None
    if canary.accuracy == active.accuracy:
        return 1.0  # identical shares (all right, say): no evidence either way
    p_value = smaller_proportion_p_value(
        canary.correct, canary.labelled, active.correct, active.labelled
    )
    return p_value if math.isfinite(p_value) else None


def judge(
    canary: VersionFigures,
    active: VersionFigures,
    policy: RollbackPolicy,
    *,
    canary_calls: int = 0,
    canary_errors: int = 0,
) -> Verdict | None:
    """The rollback decision; None keeps the canary."""
    figures: dict[str, Any] = {
        "canary": _figures_dict(canary, policy.alpha),
        "active": _figures_dict(active, policy.alpha),
        "policy": asdict(policy),
    }
    if canary_calls and canary_errors / canary_calls > policy.max_error_rate:
        figures["errors"] = {"calls": canary_calls, "failed": canary_errors}
        return Verdict(
            "errors",
            f"{canary_errors} of {canary_calls} canary model calls failed "
            f"(budget {policy.max_error_rate:.0%})",
            figures,
        )
    if min(canary.labelled, active.labelled) >= policy.min_labelled:
        p_value = accuracy_p_value(canary, active)
        figures["p_value"] = p_value
        if p_value is not None and p_value < policy.alpha:
            return Verdict(
                "accuracy",
                f"accuracy {canary.accuracy:.1%} on {canary.labelled} labelled answers against "
                f"{active.accuracy:.1%} on {active.labelled} for the active model "
                f"(one-sided two-proportion z-test p = {p_value:.2g} < {policy.alpha})",
                figures,
            )
    if (
        canary.answers >= policy.min_requests
        and active.answers >= policy.min_requests
        and canary.p95_ms is not None
        and active.p95_ms
        and canary.p95_ms > policy.latency_ratio * active.p95_ms
    ):
        return Verdict(
            "latency",
            f"p95 latency {canary.p95_ms:.0f} ms against {active.p95_ms:.0f} ms for the active "
            f"model (budget {policy.latency_ratio:g}×)",
            figures,
        )
    return None


def _figures_dict(figures: VersionFigures, alpha: float) -> dict[str, Any]:
    interval = figures.accuracy_interval(alpha)
    return {
        **asdict(figures),
        "accuracy": figures.accuracy,
        "accuracy_interval": list(interval) if interval else None,
    }


async def served_figures(
    database: Database, versions: list[str], since: datetime
) -> dict[str, VersionFigures]:
    """Answers, latency and labelled accuracy per version since `since`."""
    async with database.pool.acquire() as connection:
        return await figures_since(connection, versions, since)


async def figures_since(
    connection: asyncpg.Connection, versions: list[str], since: datetime
) -> dict[str, VersionFigures]:
    """`served_figures` on a connection of the caller's (the registry CLI has no pool)."""
    rows = await connection.fetch(_SERVED_FIGURES, since, versions)
    found = {row["version"]: _from_row(row) for row in rows}
    return {version: found.get(version, VersionFigures.empty(version)) for version in versions}


async def shadow_figures(database: Database, version: str, since: datetime) -> VersionFigures:
    """The shadow's answers since `since`, judged by feedback on the photos it scored."""
    async with database.pool.acquire() as connection:
        row = await connection.fetchrow(_SHADOW_FIGURES, since, version)
    return VersionFigures.empty(version) if row is None else _from_row(row)


def _from_row(row: asyncpg.Record) -> VersionFigures:
    return VersionFigures(
        version=row["version"],
        answers=int(row["answers"]),
        p95_ms=float(row["p95_ms"]) if row["p95_ms"] is not None else None,
        labelled=int(row["labelled"]),
        correct=int(row["correct"]),
    )


class CanaryAnalysis:
    """Runs `judge` on an interval for the candidate in this replica's line-up."""

    def __init__(
        self,
        database: Database,
        registry: Registry,
        manager: LineupManager,
        policy: RollbackPolicy,
        calls: CallCounts,
    ) -> None:
        self._calls = calls
        self._database = database
        self._registry = registry
        self._manager = manager
        self.policy = policy

    async def check(self) -> RoleChange | None:
        """Publish the figures once and roll the canary back if it must go."""
        loop = asyncio.get_running_loop()
        serving = await loop.run_in_executor(None, self._registry.serving)
        active = serving.get("active")
        if active is None:
            return None
        candidate = serving.get("canary")
        shadow = serving.get("shadow")
        if shadow is not None:
            _publish(
                await shadow_figures(self._database, shadow.version, shadow.role_since), "shadow"
            )
            if candidate is None:
                # The active model's figures over the shadow's period; with a canary, over
                # the canary's (below): one window per round, not two alternating.
                served = await served_figures(self._database, [active.version], shadow.role_since)
                _publish(served[active.version], "active")
        if candidate is None:
            return None
        figures = await served_figures(
            self._database, [candidate.version, active.version], candidate.role_since
        )
        canary_figures, active_figures = figures[candidate.version], figures[active.version]
        for role, item in (("canary", canary_figures), ("active", active_figures)):
            _publish(item, role)
        p_value = accuracy_p_value(canary_figures, active_figures)
        metrics.CANARY_P_VALUE.labels(model_version=candidate.version).set(
            math.nan if p_value is None else p_value
        )
        calls, errors = self._calls.of(candidate.version)
        verdict = judge(
            canary_figures, active_figures, self.policy, canary_calls=calls, canary_errors=errors
        )
        if verdict is None:
            return None
        try:
            change = await loop.run_in_executor(
                None,
                lambda: self._registry.retire(
                    candidate.version,
                    actor="canary-analysis",
                    reason=f"automatic rollback: {verdict.summary}",
                    figures=verdict.figures,
                    only_from="canary",
                ),
            )
        except RegistryError as error:
            logger.info("canary already changed", extra={"error": str(error)})
            return None
        metrics.ROLLBACKS.labels(reason=verdict.reason).inc()
        logger.warning(
            "canary rolled back", extra={"version": candidate.version, "reason": verdict.summary}
        )
        send_in_background(
            f"Canary {candidate.version} rolled back",
            f"Model {candidate.version} was answering {candidate.canary_share:.0%} of requests "
            f"and is retired: {verdict.summary}. Model {active.version} answers everything "
            "again.",
            "error",
        )
        await self._manager.sync()
        return change

    async def check_forever(self, every_s: float) -> None:
        """`check` on an interval; a database outage only skips a round."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.check()
            except (*DATABASE_ERRORS, RegistryError) as error:  # type: ignore[misc]
                logger.warning("canary analysis skipped", extra={"error": repr(error)})
            except Exception:  # the loop must survive anything a round can raise
                logger.exception("canary analysis failed")


def _publish(figures: VersionFigures, role: str) -> None:
    labels = {"model_version": figures.version, "role": role}
    accuracy = figures.accuracy
    metrics.VERSION_ACCURACY.labels(**labels).set(math.nan if accuracy is None else accuracy)
    metrics.VERSION_LABELLED.labels(**labels).set(figures.labelled)


class CallCounts:
    """Model calls and failures per version in this replica: the error budget's input.

    Failures are not stored (the request was answered by the active model), so each replica
    judges its own; any one of them finding the budget burnt rolls the canary back.
    """

    def __init__(self) -> None:
        self._calls: collections.Counter[str] = collections.Counter()
        self._errors: collections.Counter[str] = collections.Counter()

    def record(self, version: str, *, failed: bool) -> None:
        """Count one model call."""
        self._calls[version] += 1
        if failed:
            self._errors[version] += 1
            metrics.MODEL_ERRORS.labels(model_version=version).inc()

    def of(self, version: str) -> tuple[int, int]:
        """(calls, failures) for `version`."""
        return self._calls[version], self._errors[version]
