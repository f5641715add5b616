"""The inference service's domain metrics (names in the public contract)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.common.thresholds import LOW_CONFIDENCE

PREDICTIONS = Counter(
    "cv_predictions_total",
    "Predictions served, by predicted class and the model version that answered.",
    ["result", "model_version"],
)
INFERENCE_TIME = Histogram(
    "cv_inference_time_seconds",
    "Time to decode, preprocess and score one image, by the model version that answered.",
    ["model_version"],
    buckets=(0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5),
)
STAGE_TIME = Histogram(
    "cv_inference_stage_seconds",
    "Time per stage of one prediction.",
    ["stage"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1),
)
BATCH_SIZE = Histogram(
    "cv_inference_batch_size",
    "Photos per model call.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
# LOW_CONFIDENCE is a boundary: the recording rules read the low-confidence share from its bucket.
CONFIDENCE_BUCKETS = tuple(
    sorted({0.5, 0.6, 0.7, LOW_CONFIDENCE, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0})
)
CONFIDENCE = Histogram(
    "cv_model_confidence",
    "Probability of the predicted class, by the model version that answered.",
    ["model_version"],
    buckets=CONFIDENCE_BUCKETS,
)
NOT_A_PET = Counter(
    "cv_predictions_not_pet_total",
    "Predictions whose photo looked like neither a cat nor a dog.",
    ["model_version"],
)
REJECTED = Counter("cv_images_rejected_total", "Uploads refused, by reason.", ["reason"])
# The reason of each refusal the request guard makes before the upload reaches a route.
_GUARD_REASONS = {413: "BodyTooLarge", 408: "BodyTooSlow", 431: "HeadersTooLarge"}


def count_body_refusal(status: int) -> None:
    """Count an upload the request guard refused."""
    REJECTED.labels(reason=_GUARD_REASONS.get(status, f"Refused{status}")).inc()


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
    "The models this process serves and their role (1 while serving, 0 once replaced).",
    ["name", "version", "sha256", "role"],
    multiprocess_mode="liveall",
)
MODEL_SWAPS = Counter(
    "cv_model_swaps_total",
    "Changes of the served line-up picked up from the registry, by outcome.",
    ["outcome"],
)
MODEL_LOAD_TIME = Histogram(
    "cv_model_load_seconds",
    "Time to load and warm a model version before it serves.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
MODEL_ERRORS = Counter(
    "cv_model_errors_total",
    "Model calls that failed (the request was answered by the active model instead).",
    ["model_version"],
)
SHADOW_RESULTS = Counter(
    "cv_shadow_predictions_total",
    "Photos a shadow model scored, by whether it agreed with the answer given.",
    ["model_version", "agreement"],
)
SHADOW_DROPPED = Counter(
    "cv_shadow_dropped_total",
    "Photos the shadow model did not score because its queue was full.",
    ["model_version"],
)
SHADOW_QUEUE = Gauge(
    "cv_shadow_queue_depth", "Photos waiting for the shadow model.", multiprocess_mode="livesum"
)
VERSION_ACCURACY = Gauge(
    "cv_model_feedback_accuracy",
    "Share of right answers among labelled feedback since the version took its role.",
    ["model_version", "role"],
    multiprocess_mode="liveall",
)
VERSION_LABELLED = Gauge(
    "cv_model_feedback_labelled",
    "Labelled answers behind cv_model_feedback_accuracy.",
    ["model_version", "role"],
    multiprocess_mode="liveall",
)
CANARY_P_VALUE = Gauge(
    "cv_canary_accuracy_p_value",
    "One-sided two-proportion test p-value that the canary is less accurate than the active.",
    ["model_version"],
    multiprocess_mode="liveall",
)
ROLLBACKS = Counter(
    "cv_model_rollbacks_total", "Canaries rolled back automatically, by reason.", ["reason"]
)


def _watch_gauge(name: str, documentation: str) -> Gauge:
    # Every replica (and worker) shows the newest stored check: the most recent value wins.
    return Gauge(name, documentation, ["model_version"], multiprocess_mode="livemostrecent")


# The model watch (model_watch.py): one window of recent answers per version, no labels needed.
DRIFT_SCORE = _watch_gauge(
    "cv_embedding_drift_score",
    "MMD² between the embeddings of the version's last window and of its training photos.",
)
DRIFT_THRESHOLD = _watch_gauge(
    "cv_embedding_drift_threshold",
    "The drift score a window must exceed for its permutation p-value to be under DRIFT_ALPHA.",
)
DRIFT_P_VALUE = _watch_gauge(
    "cv_embedding_drift_p_value",
    "Permutation p-value that the last window's embeddings come from the training photos'.",
)
DRIFT_WINDOW = _watch_gauge(
    "cv_embedding_drift_window_size", "Embeddings in the window behind the last drift test."
)
ESTIMATED_ACCURACY = _watch_gauge(
    "cv_estimated_accuracy_ratio",
    "Expected accuracy of the version's last window from calibrated confidence alone (CBPE).",
)
ESTIMATED_STDERR = _watch_gauge(
    "cv_estimated_accuracy_stderr", "Standard error of cv_estimated_accuracy_ratio."
)
LABELLED_ACCURACY = _watch_gauge(
    "cv_labelled_accuracy_ratio",
    "Accuracy on the version's latest predictions that users labelled through feedback.",
)
LABELLED_ESTIMATE = _watch_gauge(
    "cv_labelled_estimated_accuracy_ratio",
    "What calibrated confidence expected on those same labelled predictions.",
)
LABELLED_STDERR = _watch_gauge(
    "cv_labelled_estimated_accuracy_stderr",
    "Standard error of cv_labelled_estimated_accuracy_ratio.",
)
LABELLED_COUNT = _watch_gauge(
    "cv_labelled_predictions", "Labelled predictions behind the labelled-accuracy figures."
)
CALIBRATION_ERROR = _watch_gauge(
    "cv_calibration_error",
    "Expected calibration error (15 bins) of the version on its labelled predictions.",
)
WATCH_CHECKED = _watch_gauge(
    "cv_model_watch_last_check_timestamp_seconds", "When the newest stored check ran."
)
# (gauge, drift_checks column) pairs that `model_watch.publish` sets.
WATCH_GAUGES = (
    (DRIFT_SCORE, "drift_score"),
    (DRIFT_THRESHOLD, "drift_threshold"),
    (DRIFT_P_VALUE, "drift_p_value"),
    (DRIFT_WINDOW, "window_size"),
    (ESTIMATED_ACCURACY, "estimated_accuracy"),
    (ESTIMATED_STDERR, "estimated_stderr"),
    (LABELLED_ACCURACY, "feedback_accuracy"),
    (LABELLED_ESTIMATE, "labelled_estimate"),
    (LABELLED_STDERR, "labelled_stderr"),
    (LABELLED_COUNT, "labelled"),
    (CALIBRATION_ERROR, "calibration_error"),
)
