"""Classification metrics over label indices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Rows are true labels, columns predicted labels."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Share of rows predicted right."""
    return float(np.mean(truth == predicted)) if len(truth) else 0.0


def per_class(matrix: np.ndarray, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall and support of each label, from a confusion matrix."""
    report: dict[str, dict[str, float]] = {}
    for index, label in enumerate(labels):
        hits = matrix[index, index]
        predicted = matrix[:, index].sum()
        actual = matrix[index, :].sum()
        report[label] = {
            "precision": float(hits / predicted) if predicted else 0.0,
            "recall": float(hits / actual) if actual else 0.0,
            "support": int(actual),
        }
    return report


def summary(truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, confusion matrix and per-class figures, ready for a model card."""
    matrix = confusion_matrix(truth, predicted, len(labels))
    return {
        "images": len(truth),
        "accuracy": round(accuracy(truth, predicted), 6),
        "confusion_matrix": {
            "labels": list(labels),
            "rows": "true label",
            "columns": "predicted label",
            "matrix": matrix.tolist(),
        },
        "per_class": per_class(matrix, labels),
    }
