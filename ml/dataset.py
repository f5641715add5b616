"""Labelled image folders, decoded exactly the way the inference service decodes uploads."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catdog.images import IMAGE_SUFFIXES, ImageLimits, load_image
from catdog.preprocessing import PreprocessSpec, preprocess

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledImage:
    """One image file and the index of its class."""

    path: Path
    label: int


def list_labelled(folder: Path, labels: Sequence[str]) -> list[LabelledImage]:
    """Every image in `folder/<label>/`, sorted so runs see the same order."""
    items: list[LabelledImage] = []
    for index, label in enumerate(labels):
        class_dir = folder / label
        if not class_dir.is_dir():
            raise FileNotFoundError(f"{class_dir} is missing: expected one folder per label")
        files = sorted(
            path
            for path in class_dir.iterdir()
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise FileNotFoundError(f"{class_dir} has no images")
        items.extend(LabelledImage(path, index) for path in files)
    logger.info("%s: %d images in %d classes", folder, len(items), len(labels))
    return items


def load_tensor(path: Path, spec: PreprocessSpec, limits: ImageLimits | None = None) -> np.ndarray:
    """Read, decode and preprocess one file with the service's own code."""
    image = load_image(path.read_bytes(), spec, limits or ImageLimits())
    return preprocess(image, spec)


def fingerprint(items: Sequence[LabelledImage]) -> str:
    """SHA-256 over names, labels and bytes: changes when any training input changes."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.path.parent.name}/{item.path.name}:{item.label}\n".encode())
        digest.update(hashlib.sha256(item.path.read_bytes()).digest())
    return digest.hexdigest()
