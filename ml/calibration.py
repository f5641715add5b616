"""Honest probabilities: temperature scaling, expected calibration error, reliability diagram."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from catdog.calibration import Reliability

TEMPERATURE_BOUNDS = (0.05, 20.0)


def log_loss(log_odds: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of binary labels under `sigmoid(log_odds)`."""
    signed = np.where(labels == 1, -log_odds, log_odds)
    return float(np.logaddexp(0.0, signed).mean())


def fit_temperature(log_odds: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the log-loss of `sigmoid(log_odds / T)` (Guo et al., 2017).

    Fitted on held-out log-odds: on the photos a head was trained on it would only learn how
    overconfident the head is on what it has already seen.
    """
    result = minimize_scalar(
        lambda temperature: log_loss(log_odds / temperature, labels),
        bounds=TEMPERATURE_BOUNDS,
        method="bounded",
        options={"xatol": 1e-5},
    )
    return float(result.x)


def sigmoid(values: np.ndarray) -> np.ndarray:
    """Logistic function, stable for large magnitudes."""
    return np.exp(-np.logaddexp(0.0, -values))


def plot_reliability(curves: dict[str, Reliability], path: Path, title: str) -> None:
    """Reliability diagram: accuracy against confidence per bin, one line per curve, PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(6, 6.5), height_ratios=(3, 1), sharex=True, layout="constrained"
    )
    top.plot([0.5, 1.0], [0.5, 1.0], linestyle="--", color="grey", label="perfect calibration")
    top.axhline(0.5, color="lightgrey", linewidth=0.5)
    edges = next(iter(curves.values())).bin_edges
    width = edges[1] - edges[0]
    for index, (name, curve) in enumerate(curves.items()):
        filled = curve.count > 0
        (line,) = top.plot(
            curve.confidence[filled],
            curve.accuracy[filled],
            linewidth=1,
            label=f"{name} (ECE {curve.ece:.4f})",
        )
        # Marker area grows with the bin's photos: a one-photo bin is a dot, not a verdict.
        top.scatter(
            curve.confidence[filled],
            curve.accuracy[filled],
            s=8 + 14 * np.log10(curve.count[filled]) ** 2,
            color=line.get_color(),
        )
        centres = (curve.bin_edges[:-1] + curve.bin_edges[1:]) / 2
        offset = (index - (len(curves) - 1) / 2) * width / (len(curves) + 1)
        bottom.bar(
            centres[filled] + offset, curve.count[filled], width / (len(curves) + 1), label=name
        )
    top.set_xlim(0.5, 1.0)
    top.set_ylim(-0.02, 1.04)
    top.set_ylabel("accuracy in the bin")
    top.set_title(title)
    top.legend(loc="upper left")
    bottom.set_yscale("log")
    bottom.set_xlabel("confidence (probability of the predicted class), 15 bins")
    bottom.set_ylabel("photos")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
