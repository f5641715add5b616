"""Upload bytes to a scored prediction: decode, preprocess, model, each stage timed."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from services.inference import metrics
from services.inference.images import ImageLimits, load_image
from services.inference.model import Classifier, Scores
from services.inference.preprocessing import preprocess


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one image."""

    label: str
    probabilities: dict[str, float]
    confidence: float
    pet_score: float | None
    is_cat_or_dog: bool
    seconds: float


class Predictor:
    """Stateless apart from the classifier; called from worker threads."""

    def __init__(self, classifier: Classifier, limits: ImageLimits) -> None:
        self.classifier = classifier
        self.limits = limits
        self._spec = classifier.card.preprocessing

    def predict(self, data: bytes) -> Prediction:
        """Classify one upload; raises `ImageRejected` subclasses for bad input."""
        started = time.perf_counter()
        image = load_image(data, self._spec, self.limits)
        decoded = time.perf_counter()
        batch = preprocess(image, self._spec)[np.newaxis]
        preprocessed = time.perf_counter()
        scores = self.classifier.run(batch)
        finished = time.perf_counter()

        metrics.STAGE_TIME.labels(stage="decode").observe(decoded - started)
        metrics.STAGE_TIME.labels(stage="preprocess").observe(preprocessed - decoded)
        metrics.STAGE_TIME.labels(stage="model").observe(finished - preprocessed)
        return self._answer(scores, finished - started)

    def _answer(self, scores: Scores, seconds: float) -> Prediction:
        # Renormalise in float64 so the two probabilities sum to 1 within 1e-6 as promised.
        probabilities = np.clip(scores.probabilities[0].astype(np.float64), 0.0, 1.0)
        probabilities /= probabilities.sum()
        labels = self.classifier.labels
        best = int(np.argmax(probabilities))
        pet_score = None if scores.pet_score is None else float(scores.pet_score[0])
        is_cat_or_dog = bool(self.classifier.card.is_cat_or_dog(scores)[0])
        return Prediction(
            label=labels[best],
            probabilities={label: float(p) for label, p in zip(labels, probabilities, strict=True)},
            confidence=float(probabilities[best]),
            pet_score=pet_score,
            is_cat_or_dog=is_cat_or_dog,
            seconds=seconds,
        )
