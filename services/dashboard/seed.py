"""Fill `monitoring` with realistic predictions, fast (COPY), to try and benchmark the dashboard.

Feedback rows, a shadow model's answers and the model watch's checks (with one episode of
drift) come along, as the services would store them; the registry (`model_versions`) is left
alone, since inference replicas load what it lists.

`python -m services.dashboard.seed --rows 1000000 --days 365`
"""

from __future__ import annotations

import argparse
import io
import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from tqdm import tqdm

from services.common.cli import run_cli
from services.common.migrate import apply_migrations, create_database_if_missing

COLUMNS = (
    "id", "created_at", "prediction_result", "proba_cat", "proba_dog", "confidence", "pet_score",
    "inference_time_ms", "model_version", "user_feedback", "rgpd_consent",
)  # fmt: skip
FEEDBACK_COLUMNS = ("prediction_id", "satisfaction", "true_label", "consent_at", "created_at",
                    "updated_at")  # fmt: skip
SHADOW_COLUMNS = ("prediction_id", "model_version", "created_at", "prediction_result",
                  "proba_cat", "confidence", "inference_time_ms")  # fmt: skip
OLD_VERSION, NEW_VERSION, SHADOW_VERSION = "1.0.0", "1.1.0", "1.2.0"
CHUNK_ROWS = 50_000
WATCH_COLUMNS = (
    "at", "model_version", "window_size", "reference_size", "drift_score", "drift_threshold",
    "drift_p_value", "estimated_accuracy", "estimated_stderr", "predictions", "labelled",
    "feedback_accuracy", "calibration_error", "reliability",
)  # fmt: skip
# Checks per version at most: one every 10 minutes over a short period, sparser over a year.
WATCH_CHECKS = 2_000


@dataclass(frozen=True)
class Profile:
    """The shape of the fake traffic."""

    consent_share: float = 0.35
    feedback_share_of_consented: float = 0.25
    rollout_at: float = 0.7  # share of the period after which the new model rolls out
    rollout_days: float = 7.0
    true_label_share: float = 0.4  # of feedback, the share that also names the right class
    shadow_at: float = 0.9  # share of the period after which SHADOW_VERSION scores every photo
    shadow_accuracy: float = 0.97
    drift_at: tuple[float, float] = (0.45, 0.48)  # a spell of unusual photos (share of period)


def traffic_weight(hours: np.ndarray, weekdays: np.ndarray, progress: np.ndarray) -> np.ndarray:
    """Relative request rate: quiet nights, busy afternoons, livelier weekends, slow growth."""
    daily = 0.15 + 0.85 * np.exp(-(((hours - 15.0) / 5.0) ** 2))
    weekly = np.where(weekdays >= 5, 1.2, 1.0)
    growth = 0.6 + 0.4 * progress
    result: np.ndarray = daily * weekly * growth
    return result


def sample_times(
    rng: np.random.Generator, count: int, start: datetime, span_s: float
) -> np.ndarray:
    """`count` sorted timestamps (seconds after `start`) following `traffic_weight`."""
    accepted: list[np.ndarray] = []
    total = 0
    start_hour = start.hour + start.minute / 60
    start_weekday = start.weekday()
    while total < count:
        offsets = rng.uniform(0, span_s, size=max(count, 10_000) * 2)
        hours = (start_hour + offsets / 3600) % 24
        weekdays = (start_weekday + (start_hour + offsets / 3600) // 24) % 7
        weight = traffic_weight(hours, weekdays, offsets / span_s)
        keep = offsets[rng.uniform(0, 1.2, size=offsets.size) < weight]
        accepted.append(keep)
        total += keep.size
    return np.sort(np.concatenate(accepted)[:count])


@dataclass(frozen=True)
class Chunk:
    """One chunk of rows of each table, in COPY text format."""

    predictions: str
    feedback: str
    shadow: str


def chunk_rows(
    rng: np.random.Generator, offsets: np.ndarray, start: datetime, span_s: float, profile: Profile
) -> Chunk:
    """One chunk of predictions, with their feedback and shadow answers."""
    n = offsets.size
    progress = offsets / span_s
    rollout_start = profile.rollout_at
    rollout_span = profile.rollout_days * 86400 / span_s
    new_share = np.clip((progress - rollout_start) / rollout_span, 0, 1)
    is_new = rng.uniform(size=n) < new_share
    # Seasonal drift of what people photograph: more cats as the year goes on.
    cat_share = 0.45 + 0.15 * progress + 0.03 * np.sin(progress * 2 * math.pi * 4)
    is_cat = rng.uniform(size=n) < cat_share
    sharp = rng.uniform(size=n) < np.where(is_new, 0.9, 0.84)
    confidence = np.where(
        sharp, 0.5 + 0.5 * rng.beta(18, 1.0, size=n), 0.5 + 0.5 * rng.beta(1.6, 1.6, size=n)
    )
    proba_cat = np.where(is_cat, confidence, 1 - confidence)
    hours = (start.hour + offsets / 3600) % 24
    load = 1 + 0.25 * np.exp(-(((hours - 15.0) / 4.0) ** 2))
    median_ms = np.where(is_new, 9.0, 12.0) * load
    latency = median_ms * rng.lognormal(0, 0.35, size=n)
    slow = rng.uniform(size=n) < 0.01
    latency = np.where(slow, latency * rng.uniform(3, 12, size=n), latency)
    consent = rng.uniform(size=n) < profile.consent_share
    gave_feedback = consent & (rng.uniform(size=n) < profile.feedback_share_of_consented)
    correct = rng.uniform(size=n) < np.clip(0.25 + 0.73 * confidence, 0, 0.995)
    pet_score = np.clip(rng.beta(30, 1.2, size=n), 0, 1)
    names_label = rng.uniform(size=n) < profile.true_label_share
    feedback_delay_s = rng.uniform(20, 600, size=n)
    truth_is_cat = np.where(correct, is_cat, ~is_cat)
    shadowed = progress >= profile.shadow_at
    shadow_is_cat = np.where(
        rng.uniform(size=n) < profile.shadow_accuracy, truth_is_cat, ~truth_is_cat
    )
    shadow_confidence = 0.5 + 0.5 * rng.beta(20, 1.0, size=n)
    shadow_proba_cat = np.where(shadow_is_cat, shadow_confidence, 1 - shadow_confidence)
    shadow_ms = 10.0 * load * rng.lognormal(0, 0.3, size=n)
    predictions, feedback, shadow = io.StringIO(), io.StringIO(), io.StringIO()
    for i in range(n):
        prediction_id = uuid.uuid4()
        created = start + timedelta(seconds=float(offsets[i]))
        verdict = ("1" if correct[i] else "0") if gave_feedback[i] else "\\N"
        predictions.write(
            f"{prediction_id}\t{created.isoformat()}\t{'cat' if is_cat[i] else 'dog'}\t"
            f"{proba_cat[i]:.6f}\t{1 - proba_cat[i]:.6f}\t{confidence[i]:.6f}\t"
            f"{pet_score[i]:.4f}\t{latency[i]:.3f}\t{NEW_VERSION if is_new[i] else OLD_VERSION}\t"
            f"{verdict}\t{'t' if consent[i] else 'f'}\n"
        )
        if gave_feedback[i]:
            given = (created + timedelta(seconds=float(feedback_delay_s[i]))).isoformat()
            true_label = ("cat" if truth_is_cat[i] else "dog") if names_label[i] else "\\N"
            feedback.write(
                f"{prediction_id}\t{'satisfied' if correct[i] else 'unsatisfied'}\t"
                f"{true_label}\t{given}\t{given}\t{given}\n"
            )
        if shadowed[i]:
            shadow.write(
                f"{prediction_id}\t{SHADOW_VERSION}\t"
                f"{(created + timedelta(milliseconds=50)).isoformat()}\t"
                f"{'cat' if shadow_is_cat[i] else 'dog'}\t{shadow_proba_cat[i]:.6f}\t"
                f"{shadow_confidence[i]:.6f}\t{shadow_ms[i]:.3f}\n"
            )
    return Chunk(predictions.getvalue(), feedback.getvalue(), shadow.getvalue())


def watch_checks(rng: np.random.Generator, start: datetime, span_s: float, profile: Profile) -> str:
    """The model watch's checks of every version while it served, in COPY text format.

    Scores sit well under their threshold except during `profile.drift_at`, when they jump over
    it and the estimated accuracy sags; calibration error stays near what a calibrated model has.
    """
    step_s = max(600.0, span_s / WATCH_CHECKS)
    progress = np.arange(0, span_s, step_s) / span_s
    rollout_end = profile.rollout_at + profile.rollout_days * 86400 / span_s
    serving = {
        OLD_VERSION: progress < rollout_end,
        NEW_VERSION: progress >= profile.rollout_at,
        SHADOW_VERSION: progress >= profile.shadow_at,
    }
    drifting = (progress >= profile.drift_at[0]) & (progress < profile.drift_at[1])
    edges = np.linspace(0, 1, 16)[8:-1] + 1 / 30  # the centres of the 7 upper bins of 15
    lines = io.StringIO()
    for version, active in serving.items():
        for i in np.flatnonzero(active):
            at = (start + timedelta(seconds=float(progress[i] * span_s))).isoformat()
            threshold = 0.012 * rng.uniform(0.9, 1.1)
            score = threshold * (rng.uniform(3, 6) if drifting[i] else rng.uniform(-0.3, 0.6))
            p_value = 0.002 if drifting[i] else float(rng.uniform(0.05, 1))
            estimate = (0.93 if drifting[i] else 0.975) + rng.normal(0, 0.004)
            feedback = min(1.0, estimate + rng.normal(0, 0.015))
            accuracy = np.clip(edges + rng.normal(0, 0.03, size=edges.size), 0, 1)
            curve = {"confidence": [None] * 8 + [round(float(c), 4) for c in edges],
                     "accuracy": [None] * 8 + [round(float(a), 4) for a in accuracy],
                     "count": [0] * 8 + [3, 4, 6, 9, 14, 30, 434]}  # fmt: skip
            lines.write(
                f"{at}\t{version}\t200\t1000\t{score:.6f}\t{threshold:.6f}\t{p_value:.4f}\t"
                f"{estimate:.4f}\t0.0080\t200\t500\t{feedback:.4f}\t"
                f"{rng.uniform(0.01, 0.03):.4f}\t{json.dumps(curve)}\n"
            )
    return lines.getvalue()


def seed(
    database_url: str,
    *,
    rows: int,
    days: float,
    end: datetime | None = None,
    random_seed: int = 7,
    replace: bool = False,
    progress: bool = True,
) -> int:
    """Insert `rows` predictions spread over the `days` before `end`; returns the row count."""
    end = end or datetime.now(UTC)
    span_s = days * 86400
    start = end - timedelta(seconds=span_s)
    rng = np.random.default_rng(random_seed)
    offsets = sample_times(rng, rows, start, span_s)
    tables = {
        "monitoring": COLUMNS,
        "feedback": FEEDBACK_COLUMNS,
        "shadow_predictions": SHADOW_COLUMNS,
    }
    with psycopg.connect(database_url, autocommit=True) as connection:
        if replace:
            connection.execute("TRUNCATE monitoring, drift_checks CASCADE")
        with (
            tqdm(total=rows, unit="rows", disable=not progress) as bar,
            connection.cursor() as cursor,
        ):
            for first in range(0, rows, CHUNK_ROWS):
                offsets_chunk = offsets[first : first + CHUNK_ROWS]
                chunk = chunk_rows(rng, offsets_chunk, start, span_s, Profile())
                # Predictions first: feedback and shadow answers refer to them.
                texts = (chunk.predictions, chunk.feedback, chunk.shadow)
                for (table, columns), text in zip(tables.items(), texts, strict=True):
                    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        copy.write(text)
                bar.update(offsets_chunk.size)
            with cursor.copy(f"COPY drift_checks ({', '.join(WATCH_COLUMNS)}) FROM STDIN") as copy:
                copy.write(watch_checks(rng, start, span_s, Profile()))
        tables["drift_checks"] = WATCH_COLUMNS
        # Fresh statistics for the planner, and an all-visible map for index-only scans.
        for table in tables:
            connection.execute(f"VACUUM ANALYZE {table}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """CLI: migrate the database if needed, then COPY the generated rows."""
    from services.common.settings import ServiceSettings

    parser = argparse.ArgumentParser(
        prog="python -m services.dashboard.seed",
        description="Insert realistic fake predictions into `monitoring` (demos, benchmarks).",
    )
    parser.add_argument("--rows", type=int, default=100_000, help="rows to insert (default 100000)")
    parser.add_argument("--days", type=float, default=365, help="period they span, ending now")
    parser.add_argument("--database-url", help="DSN (default: DATABASE_URL from the environment)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument(
        "--replace", action="store_true", help="empty `monitoring` (and what references it) first"
    )
    args = parser.parse_args(argv)
    if args.rows < 1 or args.days <= 0:
        parser.error("--rows must be positive and --days greater than zero")
    url = args.database_url or ServiceSettings().database_url
    create_database_if_missing(url)
    apply_migrations(url)
    count = seed(url, rows=args.rows, days=args.days, random_seed=args.seed, replace=args.replace)
    print(f"inserted {count:,} predictions over {args.days:g} days")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
