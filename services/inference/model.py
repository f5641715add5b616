"""The ONNX classifier and its model card.

Signature every served model follows: input `image` float32 [N, 3, S, S] (preprocessed by
`preprocessing.preprocess`), output `probabilities` float32 [N, len(labels)] summing to 1, and
optionally `pet_score` float32 [N]: the ImageNet probability mass on cat and dog classes, low
when the photo shows neither.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from services.inference.preprocessing import PreprocessSpec

INPUT_NAME = "image"
PROBABILITIES = "probabilities"
PET_SCORE = "pet_score"


class ModelError(Exception):
    """The model file or its card cannot be served."""


@dataclass(frozen=True)
class ModelCard:
    """What the service needs from the JSON card committed beside the model."""

    name: str
    version: str
    labels: tuple[str, ...]
    sha256: str
    preprocessing: PreprocessSpec
    pet_threshold: float
    raw: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        """Read and check a card."""
        try:
            raw = json.loads(path.read_text())
            return cls(
                name=str(raw["name"]),
                version=str(raw["version"]),
                labels=tuple(raw["labels"]),
                sha256=str(raw["sha256"]),
                preprocessing=PreprocessSpec.from_dict(raw["preprocessing"]),
                pet_threshold=float(raw.get("pet_threshold", 0.0)),
                raw=raw,
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ModelError(f"model card {path} is unreadable: {error}") from error


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def card_path_for(model_path: Path) -> Path:
    """The card lives beside the model with the same stem."""
    return model_path.with_suffix(".json")


@dataclass(frozen=True)
class Scores:
    """Model outputs for a batch."""

    probabilities: np.ndarray  # [N, labels]
    pet_score: np.ndarray | None  # [N]


class Classifier:
    """One ONNX Runtime session, built once, safe to call from several threads."""

    def __init__(self, model_path: Path, *, intra_op_threads: int = 1) -> None:
        self.model_path = model_path
        self.card = ModelCard.load(card_path_for(model_path))
        self.sha256 = file_sha256(model_path)
        if self.sha256 != self.card.sha256:
            raise ModelError(
                f"{model_path} has sha256 {self.sha256}, its card says {self.card.sha256}"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own untyped errors on bad files
            raise ModelError(f"onnxruntime cannot load {model_path}: {error}") from error
        outputs = {output.name for output in self.session.get_outputs()}
        if PROBABILITIES not in outputs:
            raise ModelError(f"{model_path} has no '{PROBABILITIES}' output")
        self._outputs = [PROBABILITIES] + ([PET_SCORE] if PET_SCORE in outputs else [])

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in output order."""
        return self.card.labels

    def run(self, batch: np.ndarray) -> Scores:
        """Score an NCHW float32 batch."""
        results = self.session.run(self._outputs, {INPUT_NAME: batch})
        pet_score = results[1] if len(results) > 1 else None
        return Scores(probabilities=results[0], pet_score=pet_score)

    def describe(self) -> dict[str, Any]:
        """What `GET /model` shows."""
        size = self.card.preprocessing.crop
        return {
            "name": self.card.name,
            "version": self.card.version,
            "labels": list(self.card.labels),
            "input_size": [3, size, size],
            "sha256": self.sha256,
            "preprocessing": self.card.preprocessing.to_dict(),
            "pet_threshold": self.card.pet_threshold,
            "validation": self.card.raw.get("validation"),
        }
