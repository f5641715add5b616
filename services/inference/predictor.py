"""Upload bytes to scored predictions: decode, preprocess, model, each stage timed.

Several photos run as one ONNX batch: decoding and preprocessing are per photo, the model
call is one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from catdog.images import ImageLimits, load_image
from catdog.model import Classifier, Scores
from catdog.preprocessing import preprocess
from services.inference import metrics


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one image."""

    label: str
    probabilities: dict[str, float]
    confidence: float
    pet_score: float | None
    is_cat_or_dog: bool
    seconds: float
    model_version: str
    # The backbone's pooled features, for the drift check; None when the model has none.
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)


class Predictor:
    """Stateless apart from the classifier; called from worker threads."""

    def __init__(self, classifier: Classifier, limits: ImageLimits) -> None:
        self.classifier = classifier
        self.limits = limits
        self._spec = classifier.card.preprocessing

    @property
    def version(self) -> str:
        """The model version that answers."""
        return self.classifier.card.version

    def predict(self, data: bytes) -> Prediction:
        """Classify one upload; raises `ImageRejected` subclasses for bad input."""
        (prediction,) = self.predict_many([data])
        return prediction

    def predict_many(self, uploads: Sequence[bytes]) -> list[Prediction]:
        """Classify several uploads in one model call; the first bad one raises.

        Each answer's `seconds` is that photo's own decoding and its share of the model call
        (the batch's model time over its photos): a photo takes as long in a batch as alone,
        so the size of a batch, which callers choose, makes no version look slower.
        """
        tensors = []
        own_seconds = []
        for data in uploads:
            photo_started = time.perf_counter()
            image = load_image(data, self._spec, self.limits)
            decoded = time.perf_counter()
            tensors.append(preprocess(image, self._spec))
            preprocessed = time.perf_counter()
            metrics.STAGE_TIME.labels(stage="decode").observe(decoded - photo_started)
            metrics.STAGE_TIME.labels(stage="preprocess").observe(preprocessed - decoded)
            own_seconds.append(preprocessed - photo_started)
        model_started = time.perf_counter()
        scores = self.classifier.run(np.stack(tensors))
        model_seconds = time.perf_counter() - model_started
        metrics.STAGE_TIME.labels(stage="model").observe(model_seconds)
        metrics.BATCH_SIZE.observe(len(uploads))
        model_share = model_seconds / len(uploads)
        return [self._answer(scores, row, own + model_share) for row, own in enumerate(own_seconds)]

    def warm_up(self) -> None:
        """Run the model once so that the first real request does not pay for allocations."""
        size = self._spec.crop
        self.classifier.run(np.zeros((1, 3, size, size), dtype=np.float32))

    def _answer(self, scores: Scores, row: int, seconds: float) -> Prediction:
        # Renormalise in float64 so the two probabilities sum to 1 within 1e-6 as promised.
        probabilities = np.clip(scores.probabilities[row].astype(np.float64), 0.0, 1.0)
        probabilities /= probabilities.sum()
        labels = self.classifier.labels
        best = int(np.argmax(probabilities))
        pet_score = None if scores.pet_score is None else float(scores.pet_score[row])
        is_cat_or_dog = bool(self.classifier.card.is_cat_or_dog(scores)[row])
        return Prediction(
            label=labels[best],
            probabilities={label: float(p) for label, p in zip(labels, probabilities, strict=True)},
            confidence=float(probabilities[best]),
            pet_score=pet_score,
            is_cat_or_dog=is_cat_or_dog,
            seconds=seconds,
            model_version=self.version,
            embedding=None if scores.embedding is None else scores.embedding[row],
        )
