"""The ONNX classifier and its model card.

Signature every served model follows: input `image` float32 [N, 3, S, S] (preprocessed by
`preprocessing.preprocess`), output `probabilities` float32 [N, len(labels)] summing to 1, and
optionally `pet_score` float32 [N] (the ImageNet probability mass on cat and dog classes, low
when the photo shows neither), `pet_rank` int64 [N] (how many ImageNet classes outscore the
best cat or dog class) and `embedding` float32 [N, D] (the backbone's pooled features).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from catdog.preprocessing import PreprocessSpec

logger = logging.getLogger(__name__)

INPUT_NAME = "image"
PROBABILITIES = "probabilities"
PET_SCORE = "pet_score"
PET_RANK = "pet_rank"
EMBEDDING = "embedding"
OPTIONAL_OUTPUTS = (PET_SCORE, PET_RANK, EMBEDDING)

CPU_PROVIDER = "CPUExecutionProvider"
# Short names accepted in ONNX_PROVIDERS beside ONNX Runtime's own.
PROVIDER_ALIASES = {
    "cpu": CPU_PROVIDER,
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "rocm": "ROCMExecutionProvider",
}


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
    # A photo is "neither" only when its pet_score is under pet_threshold and no cat or dog
    # class is among the top `pet_rank_limit` ImageNet classes; None: pet_score alone decides.
    pet_rank_limit: int | None
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
                pet_rank_limit=(
                    int(raw["pet_rank_limit"]) if raw.get("pet_rank_limit") is not None else None
                ),
                raw=raw,
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ModelError(f"model card {path} is unreadable: {error}") from error

    @staticmethod
    def write(
        model_path: Path,
        fields: dict[str, Any],
        *,
        name: str,
        version: str,
        labels: Sequence[str],
    ) -> Path:
        """Write the card beside `model_path`, with the file's sha256; return the card's path.

        `fields` is everything else the card holds (preprocessing, outputs, figures…), as
        `load` and the rest of the project read it from `raw`.
        """
        card = {
            "name": name,
            "version": version,
            "sha256": file_sha256(model_path),
            "labels": list(labels),
            **fields,
        }
        path = card_path_for(model_path)
        path.write_text(json.dumps(card, indent=2) + "\n")
        logger.info("wrote %s", path)
        return path

    @staticmethod
    def add_fields(model_path: Path, **fields: Any) -> Path:
        """Add or replace top-level fields of an existing card (its sha256 stays the file's)."""
        path = card_path_for(model_path)
        card = {**json.loads(path.read_text()), **fields}
        path.write_text(json.dumps(card, indent=2) + "\n")
        return path

    def is_cat_or_dog(self, scores: Scores) -> np.ndarray:
        """The card's "shows a cat or a dog" rule, per row (always true without a pet_score)."""
        if scores.pet_score is None:
            return np.ones(len(scores.probabilities), dtype=bool)
        return ~not_cat_or_dog(
            scores.pet_score, scores.pet_rank, self.pet_threshold, self.pet_rank_limit
        )


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def not_cat_or_dog(
    pet_score: np.ndarray, pet_rank: np.ndarray | None, threshold: float, rank_limit: int | None
) -> np.ndarray:
    """The neither-cat-nor-dog rule per row: little cat+dog mass and, when the model ranks,
    no cat or dog class among the top `rank_limit` ImageNet classes."""
    flagged = pet_score < threshold
    if rank_limit is not None and pet_rank is not None:
        flagged &= pet_rank >= rank_limit
    return flagged


def provider_name(name: str) -> str:
    """ONNX Runtime's name for a provider given by its own or its short name."""
    full = PROVIDER_ALIASES.get(name.strip().lower(), name.strip())
    if full not in ort.get_all_providers():
        known = ", ".join(sorted(PROVIDER_ALIASES))
        raise ValueError(f"unknown ONNX Runtime execution provider {name!r} (short names: {known})")
    return full


def available_providers(requested: Sequence[str]) -> list[str]:
    """The requested providers this build of ONNX Runtime has, in order, CPU always last.

    A GPU provider asked for on a node without it is skipped with a warning rather than
    failing start-up: the same image serves on CPU and GPU nodes.
    """
    present = set(ort.get_available_providers())
    chosen = []
    for name in (provider_name(item) for item in requested):
        if name in present and name not in chosen:
            chosen.append(name)
        elif name not in present:
            logger.warning("execution provider %s is not available here; skipped", name)
    if CPU_PROVIDER not in chosen:
        chosen.append(CPU_PROVIDER)
    return chosen


def card_path_for(model_path: Path) -> Path:
    """The card lives beside the model with the same stem."""
    return model_path.with_suffix(".json")


def reference_path_for(model_path: Path) -> Path:
    """The drift reference (training photos' embeddings, `.npy`) lives beside the model."""
    return model_path.with_suffix(".reference.npy")


def load_reference(model_path: Path, card: ModelCard) -> np.ndarray | None:
    """The embeddings the card's `drift_reference` names, checked; None when it names none."""
    field = card.raw.get("drift_reference")
    if not field:
        return None
    # Messages name the file, never its folder: over HTTP that is a server's scratch folder.
    path = reference_path_for(model_path)
    if not path.is_file():
        raise ModelError(f"the card names a drift reference ({path.name}); none came with it")
    try:
        if file_sha256(path) != field["sha256"]:
            raise ModelError(f"drift reference {path.name} does not match its card's sha256")
        reference = np.load(path, allow_pickle=False)
    except OSError as error:
        raise ModelError(f"drift reference {path.name} is unreadable: {error.strerror}") from error
    except (ValueError, KeyError) as error:
        raise ModelError(f"drift reference {path.name} is unreadable: {error}") from error
    if reference.ndim != 2 or len(reference) < 2:
        raise ModelError(f"drift reference {path.name} must be a [rows, dims] array")
    return reference


@dataclass(frozen=True)
class Scores:
    """Model outputs for a batch."""

    probabilities: np.ndarray  # [N, labels]
    pet_score: np.ndarray | None  # [N]
    pet_rank: np.ndarray | None = None  # [N]
    embedding: np.ndarray | None = None  # [N, D]


class Classifier:
    """One ONNX Runtime session, built once, safe to call from several threads."""

    def __init__(
        self,
        model_path: Path,
        *,
        intra_op_threads: int = 1,
        providers: Sequence[str] = (CPU_PROVIDER,),
    ) -> None:
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
                str(model_path), options, providers=available_providers(providers)
            )
        except Exception as error:  # onnxruntime raises its own untyped errors on bad files
            raise ModelError(f"onnxruntime cannot load {model_path}: {error}") from error
        outputs = {output.name for output in self.session.get_outputs()}
        if PROBABILITIES not in outputs:
            raise ModelError(f"{model_path} has no '{PROBABILITIES}' output")
        self._outputs = [PROBABILITIES] + [name for name in OPTIONAL_OUTPUTS if name in outputs]
        # What live embeddings are tested against for drift; None: this model is not watched.
        self.reference = load_reference(model_path, self.card) if EMBEDDING in outputs else None

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in output order."""
        return self.card.labels

    def run(self, batch: np.ndarray) -> Scores:
        """Score an NCHW float32 batch."""
        values = self.session.run(self._outputs, {INPUT_NAME: batch})
        results = dict(zip(self._outputs, values, strict=True))
        return Scores(
            probabilities=results[PROBABILITIES],
            pet_score=results.get(PET_SCORE),
            pet_rank=results.get(PET_RANK),
            embedding=results.get(EMBEDDING),
        )

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
            "pet_rank_limit": self.card.pet_rank_limit,
            "providers": self.session.get_providers(),
            "validation": self.card.raw.get("validation"),
        }
