"""Inference latency, stages, rejections and the write path to PostgreSQL."""

from __future__ import annotations

from typing import Any

from monitoring.grafana.panels import (
    graph,
    promql,
)
from services.common.objectives import INFERENCE_P95_CEILING_S

TITLE = "Inference"


def panels() -> list[Any]:
    """The row's panels, in order."""
    return [
        graph(
            "Inference time quantiles",
            "Decode + preprocess + model. CVInferenceLatencyHigh fires over "
            f"{INFERENCE_P95_CEILING_S * 1000:.0f} ms at p95.",
            promql("job:cv_inference_time_seconds:p50_rate5m", "p50"),
            promql("job:cv_inference_time_seconds:p95_rate5m", "p95"),
            promql("job:cv_inference_time_seconds:p99_rate5m", "p99"),
            unit="s",
        ),
        graph(
            "Time per stage (p95)",
            "Where the time goes: decode, preprocess, model.",
            promql(
                "histogram_quantile(0.95, sum by (stage, le) "
                "(rate(cv_inference_stage_seconds_bucket[5m])))",
                "{{stage}}",
            ),
            unit="s",
        ),
        graph(
            "Uploads refused by reason",
            "Per second: not an image, unsupported format, too large...",
            promql("sum by (reason) (rate(cv_images_rejected_total[5m]))", "{{reason}}"),
            unit="reqps",
            width=8,
        ),
        graph(
            "Predictions waiting for PostgreSQL",
            "Rows kept in memory while the database is unreachable.",
            promql("sum by (instance) (cv_prediction_writes_pending)", "{{instance}}"),
            unit="short",
            width=8,
        ),
        graph(
            "Dropped while PostgreSQL was away (1 h)",
            "Rows or photos dropped past the in-memory bound, by kind.",
            promql("sum by (kind) (increase(cv_prediction_writes_dropped_total[1h]))", "{{kind}}"),
            unit="short",
            width=8,
        ),
        graph(
            "Database connected",
            "1 when the process reaches PostgreSQL. CVDatabaseDisconnected fires after 1 minute "
            "at 0.",
            promql("cv_database_connected", "{{job}} {{instance}}"),
            unit="bool",
            width=24,
        ),
    ]
