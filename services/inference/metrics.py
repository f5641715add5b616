"""The inference service's domain metrics (names in the public contract)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PREDICTIONS = Counter("cv_predictions_total", "Predictions served, by predicted class.", ["result"])
INFERENCE_TIME = Histogram(
    "cv_inference_time_seconds",
    "Time to decode, preprocess and score one image.",
    buckets=(0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5),
)
STAGE_TIME = Histogram(
    "cv_inference_stage_seconds",
    "Time per stage of one prediction.",
    ["stage"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1),
)
CONFIDENCE = Histogram(
    "cv_model_confidence",
    "Probability of the predicted class.",
    buckets=(0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0),
)
NOT_A_PET = Counter(
    "cv_predictions_not_pet_total", "Predictions whose photo looked like neither a cat nor a dog."
)
REJECTED = Counter("cv_images_rejected_total", "Uploads refused, by reason.", ["reason"])
WRITES = Counter("cv_prediction_writes_total", "Prediction rows written to PostgreSQL.")
WRITE_FAILURES = Counter(
    "cv_prediction_write_failures_total", "Batches that failed to write and were kept to retry."
)
DROPPED = Counter(
    "cv_prediction_writes_dropped_total",
    "What was dropped past the in-memory bound while PostgreSQL was unreachable.",
    ["kind"],
)
PENDING = Gauge(
    "cv_prediction_writes_pending",
    "Prediction rows waiting to be written.",
    multiprocess_mode="livesum",
)
MODEL_INFO = Gauge(
    "cv_model_info",
    "The model this process serves (value is always 1).",
    ["name", "version", "sha256"],
    multiprocess_mode="liveall",
)
