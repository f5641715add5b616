"""Which ImageNet-1k classes are house cats and dogs."""

from __future__ import annotations

import numpy as np

CLASSES = 1000
# 151 Chihuahua ... 268 Mexican hairless are the domestic dog breeds; 269+ are wolves, foxes
# and wild dogs. 281 tabby ... 285 Egyptian cat are the house cats; 286+ are cougar, lynx and
# the big cats.
DOG_CLASSES = range(151, 269)
CAT_CLASSES = range(281, 286)


def pet_mask() -> np.ndarray:
    """1 on ImageNet's cat and dog classes, 0 elsewhere."""
    mask = np.zeros(CLASSES, dtype=np.float32)
    mask[list(DOG_CLASSES)] = 1.0
    mask[list(CAT_CLASSES)] = 1.0
    return mask


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def class_sums(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ImageNet probability mass on the cat classes and on the dog classes, per row."""
    probabilities = softmax(logits)
    cat = probabilities[:, list(CAT_CLASSES)].sum(axis=1)
    dog = probabilities[:, list(DOG_CLASSES)].sum(axis=1)
    return cat, dog


def pet_score_and_rank(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cat+dog mass, and how many other classes outscore the best cat or dog class, per row.

    The same computation as the served graph's `pet_score` and `pet_rank` outputs.
    """
    mask = pet_mask().astype(bool)
    best_pet = probabilities[:, mask].max(axis=1, keepdims=True)
    rank = (probabilities[:, ~mask] > best_pet).sum(axis=1)
    return probabilities[:, mask].sum(axis=1), rank.astype(np.int64)
