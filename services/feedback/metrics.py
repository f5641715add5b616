"""The feedback service's domain metrics (`cv_user_feedback_total` is in the public contract)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

FEEDBACK = Counter(
    "cv_user_feedback_total",
    "Feedback accepted, by the user's verdict (every accepted submission).",
    ["satisfaction"],
)
SUPERSEDED = Counter(
    "cv_user_feedback_superseded_total",
    "Earlier verdicts replaced by a later feedback on the same prediction, by earlier verdict.",
    ["satisfaction"],
)
CONSENT = Counter(
    "cv_feedback_consent_total",
    "Feedback accepted, by whether the user consented to keeping it.",
    ["consent"],
)
PREDICTION_WAITS = Counter(
    "cv_feedback_prediction_waits_total",
    "Requests that found no prediction yet and waited for inference to write it.",
)
ERASURES = Counter("cv_rgpd_erasures_total", "Predictions erased at their owner's request.")
ACCESS_REQUESTS = Counter(
    "cv_rgpd_access_requests_total", "Predictions exported to their owner (right of access)."
)
RATE_LIMITED = Counter(
    "cv_rgpd_rate_limited_total", "Requests refused by the per-client limiter, by route.", ["route"]
)
RETENTION_PURGED = Counter(
    "cv_retention_purged_total", "Predictions purged (with their feedback and photo) by retention."
)
RETENTION_RUNS = Counter(
    "cv_retention_runs_total", "Retention purges run, by outcome.", ["outcome"]
)
RETENTION_LAST_SUCCESS = Gauge(
    "cv_retention_last_success_timestamp_seconds",
    "Unix time of the last successful retention purge.",
    multiprocess_mode="max",
)
LIVE_ACCURACY = Gauge(
    "cv_feedback_accuracy_ratio",
    "Share of satisfied verdicts among predictions with stored feedback in the window "
    "(each prediction once, latest verdict); NaN without feedback.",
    multiprocess_mode="livemostrecent",
)
LIVE_ACCURACY_COUNT = Gauge(
    "cv_feedback_accuracy_predictions",
    "Predictions with stored feedback in the live-accuracy window.",
    multiprocess_mode="livemostrecent",
)

# Every series exists from the start at 0, so rate() and alerts see the first increment.
for _satisfaction in ("satisfied", "unsatisfied"):
    FEEDBACK.labels(satisfaction=_satisfaction)
    SUPERSEDED.labels(satisfaction=_satisfaction)
for _consent in ("given", "refused"):
    CONSENT.labels(consent=_consent)
for _outcome in ("success", "failure", "skipped"):
    RETENTION_RUNS.labels(outcome=_outcome)
