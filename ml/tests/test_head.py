"""The logistic-regression head: exact, deterministic, and exported faithfully."""

from __future__ import annotations

import numpy as np
import pytest

from ml.head import choose_l2, cross_validate, fit, folds


def blobs(seed: int = 0, rows: int = 60, features: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], rows // 2)
    centres = np.where(labels[:, None] == 1, 1.0, -1.0) * np.linspace(0.2, 1.0, features)
    return centres + rng.standard_normal((rows, features)), labels


def test_fit_separates_blobs_and_is_deterministic() -> None:
    features, labels = blobs()
    first = fit(features, labels, l2=1e-2)
    second = fit(features, labels, l2=1e-2)

    assert np.array_equal(first.weight, second.weight)
    assert first.bias == second.bias
    assert (first.predict(features) == labels).mean() > 0.95


def test_fit_reaches_the_optimum() -> None:
    features, labels = blobs()
    head = fit(features, labels, l2=1e-2)
    centred = features - head.mean
    probability = 1 / (1 + np.exp(-head.decision(features)))
    gradient = centred.T @ (probability - labels) / len(labels) + 1e-2 * head.weight
    assert np.abs(gradient).max() < 1e-8


def test_two_logit_layer_softmax_equals_the_sigmoid() -> None:
    features, labels = blobs()
    head = fit(features, labels, l2=1e-2)
    weight, bias = head.two_class_linear()
    logits = features @ weight.T.astype(np.float64) + bias
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    sigmoid = 1 / (1 + np.exp(-head.decision(features)))
    np.testing.assert_allclose(softmax[:, 1], sigmoid, atol=1e-5)


def test_folds_are_a_stratified_partition() -> None:
    labels = np.repeat([0, 1], [30, 20])
    parts = folds(labels, 5, seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(50))
    assert all((labels[part] == 1).sum() == 4 for part in parts)
    assert [part.tolist() for part in parts] == [part.tolist() for part in folds(labels, 5, 0)]


def test_choose_l2_takes_the_lowest_held_out_log_loss() -> None:
    features, labels = blobs(rows=80)
    grid = (1e-4, 1e-2, 10.0)
    best, results = choose_l2([features], labels, grid, fold_count=4)
    losses = {result.l2: result.log_loss for result in results}
    assert best.l2 == min(losses, key=losses.__getitem__)
    again = cross_validate([features], labels, best.l2, 4, 0)
    assert again.log_loss == pytest.approx(losses[best.l2])
    np.testing.assert_array_equal(again.held_out, best.held_out)


def test_cross_validation_fits_every_view_and_scores_the_first() -> None:
    features, labels = blobs(rows=60)
    mirrored = features[:, ::-1].copy()
    result = cross_validate([features, mirrored], labels, 1e-2, 3, 0)
    for rows in folds(labels, 3, 0):
        train = np.setdiff1d(np.arange(len(labels)), rows)
        head = fit(
            np.concatenate([features[train], mirrored[train]]), np.tile(labels[train], 2), 1e-2
        )
        np.testing.assert_allclose(result.held_out[rows], head.decision(features[rows]))
