"""NannyML's CBPE and Evidently's embedding drift on the exchanged windows.

Runs in `.venv-anchors`, never in the project's environment:
`.venv-anchors/bin/python -m ml.anchors.theirs WINDOWS.npz OUT.json`. Imports nothing of the
project but `ml.anchors.exchange`, so the libraries see only the arrays our side saw.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Before the imports: both libraries report usage over the network unless told not to.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
os.environ["DO_NOT_TRACK"] = "1"

import evidently
import nannyml
import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.metrics.data_drift.embedding_drift_methods import (
    DriftMethod,
    mmd,
    model,
)
from evidently.metrics import EmbeddingsDrift
from sklearn.metrics import roc_auc_score

from ml.anchors.exchange import Exchange, Window, load

EMBEDDING = "embedding"

# Evidently's embedding drift methods as compared, each built for a reference of `rows` rows.
# "classifier" is what EmbeddingsDrift picks when given no method: the domain classifier,
# bootstrapped only for a reference under 1 000 rows (evidently.legacy.metrics.data_drift.
# embeddings_drift.EmbeddingsDriftMetric.calculate).
METHODS: dict[str, tuple[str, Callable[[int], DriftMethod]]] = {
    "mmd": ("MMD², drift above the fixed 0.015 (mmd())", lambda rows: mmd()),
    "classifier": (
        "domain classifier, Evidently's default (ROC AUC above 0.55 for this reference)",
        lambda rows: model(bootstrap=rows < 1000),
    ),
    "classifier_bootstrap": (
        "domain classifier, AUC above the 95th percentile of random scores' (bootstrap=True)",
        lambda rows: model(bootstrap=True),
    ),
    "mmd_bootstrap": (
        "MMD², above the 5th percentile of reference-only resamples (bootstrap=True)",
        lambda rows: mmd(bootstrap=True),
    ),
}


def frame(embedding: np.ndarray) -> pd.DataFrame:
    """Embeddings as Evidently takes them: one float column per dimension."""
    values = np.asarray(embedding, dtype=np.float64)
    return pd.DataFrame(values, columns=[f"e{index}" for index in range(values.shape[1])])


def drift(method: DriftMethod, reference: pd.DataFrame, window: np.ndarray) -> dict[str, Any]:
    """One Evidently decision; the domain classifier adds a column to what it is given."""
    score, drifted, _ = method(frame(window), reference.copy())
    return {"score": float(score), "drift": bool(drifted)}


def evidently_drift(exchange: Exchange) -> dict[str, Any]:
    """Every method on every window, and on the undrifted windows drawn again."""
    reference = frame(exchange.drift_reference)
    methods = {key: build(len(reference)) for key, (_, build) in METHODS.items()}
    windows = {
        window.name: {
            key: drift(method, reference, window.embedding) for key, method in methods.items()
        }
        for window in exchange.windows
    }
    repeats = {
        key: [
            drift(method, reference, exchange.undrifted_pool[rows])["drift"]
            for rows in exchange.repeat_rows
        ]
        for key, method in methods.items()
    }
    return {
        "methods": {key: description for key, (description, _) in METHODS.items()},
        "windows": windows,
        "repeats": repeats,
        "report": report_scores(reference, exchange.windows[0]),
    }


def report_scores(reference: pd.DataFrame, window: Window) -> dict[str, Any]:
    """The same window through Evidently's Report, which gives the score only (and draws a
    t-SNE for its plot, the reason the decisions above call the drift methods directly)."""
    columns = list(reference.columns)
    definition = DataDefinition(numerical_columns=[], embeddings={EMBEDDING: columns})
    report = Report(
        [
            EmbeddingsDrift(embeddings_name=EMBEDDING),
            EmbeddingsDrift(embeddings_name=EMBEDDING, drift_method=mmd()),
        ]
    )
    snapshot = report.run(
        Dataset.from_pandas(frame(window.embedding), data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    values = [float(metric["value"]) for metric in snapshot.dict()["metrics"]]
    return {"window": window.name, "classifier": values[0], "mmd": values[1]}


def predictions(window: Window) -> pd.DataFrame:
    """A window as NannyML takes it; label 1 (dog) is the positive class."""
    return pd.DataFrame(
        {
            "dog": window.probabilities[:, 1].astype(np.float64),
            "predicted": window.probabilities.argmax(axis=1),
            "truth": window.truth,
        }
    )


def cbpe(exchange: Exchange) -> dict[str, Any]:
    """CBPE fitted on the labelled reference, then one estimate per labelled window."""
    reference = predictions(exchange.labelled_reference)
    estimator = nannyml.CBPE(
        y_pred_proba="dog",
        y_pred="predicted",
        y_true="truth",
        problem_type="classification_binary",
        metrics=["accuracy"],
        chunk_number=1,  # each window is one chunk, whatever its size
    )
    estimator.fit(reference)
    windows = {}
    for window in exchange.windows:
        if not window.labelled:
            continue
        row = estimator.estimate(predictions(window)).filter(period="analysis").to_df().iloc[0]
        windows[window.name] = {
            "accuracy": float(row[("accuracy", "value")]),
            "realized": float(row[("accuracy", "realized")]),
        }
    return {
        # CBPE leaves the probabilities alone when isotonic regression would not lower their
        # calibration error on the reference, or when the reference's ROC AUC is over 0.999.
        "calibrated": bool(estimator.needs_calibration),
        "reference_photos": len(reference),
        "reference_roc_auc": float(roc_auc_score(reference["truth"], reference["dog"])),
        "windows": windows,
    }


def run(exchange: Exchange) -> dict[str, Any]:
    """Both libraries' answers, and which versions gave them."""
    with warnings.catch_warnings():
        # Small chunks and plot settings: warnings about what is deliberate here.
        warnings.simplefilter("ignore")
        answers = {"nannyml": cbpe(exchange), "evidently": evidently_drift(exchange)}
    versions = {
        "nannyml": nannyml.__version__,
        "evidently": evidently.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
    }
    return {"versions": versions, **answers}


def main(argv: Sequence[str] | None = None) -> int:
    """Read the windows, write the answers."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.anchors.theirs",
        description="NannyML CBPE and Evidently embedding drift on windows written by ml.anchors.",
    )
    parser.add_argument("windows", type=Path, help=".npz written by ml.anchors.exchange.save")
    parser.add_argument("out", type=Path, help="JSON answers")
    args = parser.parse_args(argv)
    args.out.write_text(json.dumps(run(load(args.windows)), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
