"""What a model is trained on: each source's photos, and how the card describes them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catdog.images import IMAGE_SUFFIXES
from ml.card import LABELS
from ml.dataset import LabelledImage, fingerprint, list_labelled


@dataclass(frozen=True)
class FeedbackPhoto:
    """One consented photo: the prediction it was sent with, its label and its bytes' hash."""

    prediction_id: str
    label: str
    sha256: str

    def as_dict(self) -> dict[str, str]:
        """Card form."""
        return {"prediction_id": self.prediction_id, "label": self.label, "sha256": self.sha256}


@dataclass(frozen=True)
class TrainingSource:
    """A named set of labelled photos trained on together."""

    name: str  # "base:<dataset folder>" or "feedback"
    folder: str
    items: tuple[LabelledImage, ...]
    # Features of people's photos are never cached: an erased photo must leave no derived
    # copy on disk.
    cacheable: bool = True
    photos: tuple[FeedbackPhoto, ...] | None = None

    def count(self, label: int) -> int:
        """Photos of one class."""
        return sum(1 for item in self.items if item.label == label)

    def describe(self) -> dict[str, Any]:
        """The card's entry: counts per class, a digest of every name, label and byte, and
        for feedback every photo's prediction id and hash."""
        entry: dict[str, Any] = {
            "source": self.name,
            "folder": self.folder,
            "cats": self.count(0),
            "dogs": self.count(1),
            "data_sha256": fingerprint(self.items),
        }
        if self.photos is not None:
            entry["photos"] = [photo.as_dict() for photo in self.photos]
        return entry


def base_source(root: Path) -> TrainingSource:
    """`root/train/{cat,dog}` of a dataset folder."""
    return TrainingSource(
        name=f"base:{root.name}",
        folder=f"{root.name}/train",
        items=tuple(list_labelled(root / "train", LABELS)),
    )


def feedback_source(
    folder: Path, *, exclude_sha256: frozenset[str] = frozenset()
) -> tuple[TrainingSource, list[FeedbackPhoto]]:
    """The photos `export_photos` wrote to `folder/{cat,dog}/<prediction id>.<ext>`.

    Unlike a dataset, either class may be empty. Photos whose bytes are in `exclude_sha256`
    (the gate set's) are left out and returned apart, so the gate is never trained on.
    """
    items: list[LabelledImage] = []
    photos: list[FeedbackPhoto] = []
    excluded: list[FeedbackPhoto] = []
    for index, label in enumerate(LABELS):
        class_dir = folder / label
        files = sorted(
            path
            for path in (class_dir.iterdir() if class_dir.is_dir() else ())
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
        )
        for path in files:
            photo = FeedbackPhoto(path.stem, label, hashlib.sha256(path.read_bytes()).hexdigest())
            if photo.sha256 in exclude_sha256:
                excluded.append(photo)
                continue
            items.append(LabelledImage(path, index))
            photos.append(photo)
    source = TrainingSource(
        name="feedback",
        folder="feedback",
        items=tuple(items),
        cacheable=False,
        photos=tuple(photos),
    )
    return source, excluded


def file_hashes(items: tuple[LabelledImage, ...] | list[LabelledImage]) -> set[str]:
    """sha256 of every file's bytes."""
    return {hashlib.sha256(item.path.read_bytes()).hexdigest() for item in items}
