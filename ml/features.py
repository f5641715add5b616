"""Backbone features for a labelled folder, computed once and cached on disk."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ml.backbone import ARCHITECTURE, PooledFeatures
from ml.dataset import LabelledImage, fingerprint, load_tensor
from services.inference import images, preprocessing
from services.inference.preprocessing import PreprocessSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureSet:
    """Pooled features, ImageNet logits and labels, row-aligned with `paths`."""

    features: np.ndarray  # [N, 1280] float32
    imagenet_logits: np.ndarray  # [N, 1000] float32
    labels: np.ndarray  # [N] int64
    paths: tuple[str, ...]


def _code_fingerprint() -> str:
    # A change to decoding or preprocessing code must invalidate cached features.
    digest = hashlib.sha256()
    for module in (images, preprocessing):
        digest.update(Path(inspect.getfile(module)).read_bytes())
    return digest.hexdigest()


def _cache_key(items: Sequence[LabelledImage], spec: PreprocessSpec, flip: bool) -> str:
    description = json.dumps(
        {
            "architecture": ARCHITECTURE,
            "code": _code_fingerprint(),
            "data": fingerprint(items),
            "spec": spec.to_dict(),
            "flip": flip,
            "torch": torch.__version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(description.encode()).hexdigest()[:24]


@torch.no_grad()
def _compute(
    items: Sequence[LabelledImage],
    spec: PreprocessSpec,
    features: PooledFeatures,
    imagenet_fc: torch.nn.Module,
    flip: bool,
    batch_size: int,
) -> FeatureSet:
    pooled: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    for start in tqdm(range(0, len(items), batch_size), desc="features", unit="batch"):
        chunk = items[start : start + batch_size]
        batch = torch.from_numpy(np.stack([load_tensor(item.path, spec) for item in chunk]))
        if flip:
            # Mirror after the centre crop: the same pixels the unflipped view sees.
            batch = torch.flip(batch, dims=[3])
        vectors = features(batch)
        pooled.append(vectors.numpy())
        logits.append(imagenet_fc(vectors).numpy())
    return FeatureSet(
        features=np.concatenate(pooled).astype(np.float32),
        imagenet_logits=np.concatenate(logits).astype(np.float32),
        labels=np.array([item.label for item in items], dtype=np.int64),
        paths=tuple(str(item.path) for item in items),
    )


def extract(
    items: Sequence[LabelledImage],
    spec: PreprocessSpec,
    features: PooledFeatures,
    imagenet_fc: torch.nn.Module,
    *,
    flip: bool = False,
    batch_size: int = 16,
    cache_dir: Path | None = None,
) -> FeatureSet:
    """Features of every item, read from `cache_dir` when the same inputs were seen before."""
    cache_file = None
    if cache_dir is not None:
        cache_file = cache_dir / f"features-{_cache_key(items, spec, flip)}.npz"
        if cache_file.exists():
            logger.info("features from cache %s", cache_file)
            with np.load(cache_file) as cached:
                return FeatureSet(
                    features=cached["features"],
                    imagenet_logits=cached["imagenet_logits"],
                    labels=cached["labels"],
                    paths=tuple(str(path) for path in cached["paths"]),
                )
    result = _compute(items, spec, features, imagenet_fc, flip, batch_size)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache_file,
            features=result.features,
            imagenet_logits=result.imagenet_logits,
            labels=result.labels,
            paths=np.array(result.paths),
        )
    return result
