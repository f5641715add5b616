"""The health strip: each objective green, amber or red against the threshold its alert uses.

The alerts read Prometheus; the dashboard reads PostgreSQL, so each objective is judged on
what PostgreSQL holds that corresponds, over the last hour, against `services.common.objectives`:
latency is the p95 of recorded answers, feedback accuracy the labelled answers' (the Wilson
interval decides amber), estimated accuracy and drift the active version's newest model-watch
check, notifier delivery the age of the oldest message waiting in its outbox. Availability
(5xx) is not in PostgreSQL: the strip says whether answers are being recorded at all.
Amber is "not over the threshold, but close": within `NEAR` of it, or unproven either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.common import objectives
from services.common.feedback_truth import TRUTH_SQL
from services.common.proportions import Z95, wilson_interval

GREEN, AMBER, RED, UNKNOWN = "green", "amber", "red", "unknown"
OBJECTIVES = ("availability", "latency", "estimated", "feedback", "drift", "notifier")
# Amber within this share of a ceiling (latency, backlog).
NEAR = 0.8
# An hour without a recorded answer is amber: the service may be down or unused.
QUIET_S = 3600

# Only the constant TRUTH_SQL is interpolated.
HEALTH_FACTS = f"""
SELECT now() AS now,
       (SELECT max(created_at) FROM monitoring) AS latest_answer,
       (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY inference_time_ms)
        FROM monitoring WHERE created_at >= now() - interval '1 hour') AS p95_ms,
       (SELECT count(*) FROM monitoring m JOIN feedback f ON f.prediction_id = m.id
        WHERE m.created_at >= now() - interval '1 hour') AS labelled,
       (SELECT count(*) FROM monitoring m JOIN feedback f ON f.prediction_id = m.id
        WHERE m.created_at >= now() - interval '1 hour'
          AND m.prediction_result = {TRUTH_SQL}) AS correct,
       (SELECT min(created_at) FROM notifier_outbox WHERE state = 'pending') AS oldest_pending
"""  # noqa: S608
# The active version's newest check; without a registry (a seeded or older database), the
# version of the newest answer.
ACTIVE_CHECK = """
SELECT at, model_version, estimated_accuracy, estimated_stderr, drift_score, drift_threshold
FROM drift_checks
WHERE model_version = coalesce(
    (SELECT version FROM model_versions WHERE role = 'active'),
    (SELECT model_version FROM monitoring ORDER BY created_at DESC LIMIT 1))
ORDER BY at DESC LIMIT 1
"""


@dataclass(frozen=True)
class Verdict:
    """One objective's light, and why: a catalogue key and its values."""

    objective: str
    level: str
    reason: str
    values: dict[str, Any]


def availability(now: datetime, latest_answer: datetime | None) -> Verdict:
    """Answers recorded lately; an hour without any is amber (down, or simply unused)."""
    if latest_answer is None:
        return Verdict("availability", UNKNOWN, "health.availability.none", {})
    quiet = (now - latest_answer).total_seconds()
    minutes = round(quiet / 60)
    if quiet > QUIET_S:
        return Verdict("availability", AMBER, "health.availability.quiet", {"minutes": minutes})
    return Verdict("availability", GREEN, "health.availability.ok", {"minutes": minutes})


def latency(p95_ms: float | None) -> Verdict:
    """The last hour's p95 against the latency alert's ceiling."""
    ceiling = objectives.INFERENCE_P95_CEILING_S * 1000
    if p95_ms is None:
        return Verdict("latency", UNKNOWN, "health.no_answers", {})
    values = {"p95": round(p95_ms), "ceiling": round(ceiling)}
    if p95_ms > ceiling:
        return Verdict("latency", RED, "health.latency.over", values)
    if p95_ms > NEAR * ceiling:
        return Verdict("latency", AMBER, "health.latency.near", values)
    return Verdict("latency", GREEN, "health.latency.ok", values)


def feedback(labelled: int, correct: int) -> Verdict:
    """Labelled answers' accuracy against the live-accuracy alert's floor, once it has the
    labels that alert waits for; amber while the interval still reaches below the floor."""
    floor = objectives.LIVE_ACCURACY_FLOOR
    minimum = objectives.LIVE_ACCURACY_MIN_PREDICTIONS
    if labelled < minimum:
        return Verdict(
            "feedback", UNKNOWN, "health.feedback.few", {"labelled": labelled, "minimum": minimum}
        )
    accuracy = correct / labelled
    low, _ = wilson_interval(correct, labelled)
    values = {"accuracy": accuracy, "low": low, "floor": floor, "labelled": labelled}
    if accuracy < floor:
        return Verdict("feedback", RED, "health.feedback.under", values)
    if low < floor:
        return Verdict("feedback", AMBER, "health.feedback.near", values)
    return Verdict("feedback", GREEN, "health.feedback.ok", values)


def estimated(check: dict[str, Any] | None) -> Verdict:
    """The active version's estimate against the estimated-accuracy alert's floor; amber while
    its 95 % interval reaches below it."""
    floor = objectives.ESTIMATED_ACCURACY_FLOOR
    if check is None or check["estimated_accuracy"] is None:
        return Verdict("estimated", UNKNOWN, "health.not_checked", {})
    value = check["estimated_accuracy"]
    low = value - Z95 * (check["estimated_stderr"] or 0.0)
    values = {"accuracy": value, "low": low, "floor": floor, "version": check["model_version"]}
    if value < floor:
        return Verdict("estimated", RED, "health.estimated.under", values)
    if low < floor:
        return Verdict("estimated", AMBER, "health.estimated.near", values)
    return Verdict("estimated", GREEN, "health.estimated.ok", values)


def drift(check: dict[str, Any] | None, now: datetime) -> Verdict:
    """The active version's newest drift test (score over its threshold is p < DRIFT_ALPHA);
    amber when the watch has not checked for longer than its staleness alert allows."""
    if check is None:
        return Verdict("drift", UNKNOWN, "health.not_checked", {})
    age = (now - check["at"]).total_seconds()
    if age > objectives.MODEL_WATCH_STALE_S:
        return Verdict("drift", AMBER, "health.drift.stale", {"minutes": round(age / 60)})
    if check["drift_score"] is None or check["drift_threshold"] is None:
        return Verdict("drift", UNKNOWN, "health.drift.untested", {})
    values = {"alpha": objectives.DRIFT_ALPHA, "version": check["model_version"]}
    if check["drift_score"] > check["drift_threshold"]:
        return Verdict("drift", RED, "health.drift.drifted", values)
    return Verdict("drift", GREEN, "health.drift.ok", values)


def notifier(now: datetime, oldest_pending: datetime | None) -> Verdict:
    """The oldest message waiting to reach Discord against the backlog alert's ceiling."""
    ceiling = objectives.NOTIFIER_BACKLOG_S
    if oldest_pending is None:
        return Verdict("notifier", GREEN, "health.notifier.empty", {})
    age = (now - oldest_pending).total_seconds()
    values = {"age": round(age), "ceiling": ceiling}
    if age > ceiling:
        return Verdict("notifier", RED, "health.notifier.over", values)
    if age > NEAR * ceiling:
        return Verdict("notifier", AMBER, "health.notifier.near", values)
    return Verdict("notifier", GREEN, "health.notifier.ok", values)


def verdicts(facts: dict[str, Any], check: dict[str, Any] | None) -> list[Verdict]:
    """Every objective's verdict, in the strip's order, from `HEALTH_FACTS` and `ACTIVE_CHECK`."""
    now = facts["now"]
    return [
        availability(now, facts["latest_answer"]),
        latency(facts["p95_ms"]),
        estimated(check),
        feedback(facts["labelled"], facts["correct"]),
        drift(check, now),
        notifier(now, facts["oldest_pending"]),
    ]
