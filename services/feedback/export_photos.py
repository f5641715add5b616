"""Export consented, labelled photos as `OUT_DIR/cat/`, `OUT_DIR/dog/` for the model pipeline.

A photo is exported only when its owner consented to keeping it (it exists in
`prediction_photos` only then) and a label is known: the true label from the feedback, or the
prediction when the user said it was right. Files are named by prediction id, and a re-run
removes files whose prediction was erased or purged, so erasure reaches exported copies too.

    python -m services.feedback.export_photos OUT_DIR                     # ml.evaluate
    python -m services.feedback.export_photos OUT_DIR --val-fraction 0.2  # ml.train --data
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from services.common.cli import run_cli

logger = logging.getLogger(__name__)

LABELS = ("cat", "dog")
SUFFIXES = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "GIF": ".gif",
    "WEBP": ".webp",
    "BMP": ".bmp",
}

_LABELLED_PHOTOS = """
SELECT p.prediction_id,
       COALESCE(f.true_label,
                CASE WHEN f.satisfaction = 'satisfied' THEN m.prediction_result END) AS label
FROM prediction_photos p
JOIN monitoring m ON m.id = p.prediction_id
JOIN feedback f ON f.prediction_id = p.prediction_id
WHERE f.true_label IS NOT NULL OR f.satisfaction = 'satisfied'
ORDER BY p.prediction_id
"""


@dataclass(frozen=True)
class ExportSummary:
    """What one export run did."""

    written: int
    unchanged: int
    removed: int
    skipped: int


def suffix_for(image: bytes) -> str | None:
    """The file suffix of the image's real format (never trust the uploaded content type)."""
    try:
        with Image.open(io.BytesIO(image)) as opened:
            return SUFFIXES.get(opened.format or "")
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def label_dirs(out_dir: Path, val_fraction: float | None) -> list[Path]:
    """Every class folder of the layout: OUT/{cat,dog}, or OUT/{train,val}/{cat,dog}."""
    roots = [out_dir] if val_fraction is None else [out_dir / "train", out_dir / "val"]
    return [root / label for root in roots for label in LABELS]


def target_dir(
    out_dir: Path, prediction_id: uuid.UUID, label: str, val_fraction: float | None
) -> Path:
    """Where a photo goes; the split follows the (random) id, so a photo never changes side."""
    if val_fraction is None:
        return out_dir / label
    subset = "val" if (prediction_id.int % 10_000) < val_fraction * 10_000 else "train"
    return out_dir / subset / label


def _exported_files(folders: list[Path]) -> list[Path]:
    return [path for folder in folders for path in folder.glob("*") if path.is_file()]


def export_photos(
    database_url: str,
    out_dir: Path,
    *,
    val_fraction: float | None = None,
    progress: bool = True,
) -> ExportSummary:
    """Write every labelled consented photo; remove exported files no longer allowed."""
    folders = label_dirs(out_dir, val_fraction)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    existing = {(path.parent, path.stem): path for path in _exported_files(folders)}
    keep: set[Path] = set()
    written = unchanged = skipped = 0
    with psycopg.connect(database_url) as connection:
        labelled: list[tuple[uuid.UUID, str]] = connection.execute(_LABELLED_PHOTOS).fetchall()
        bar = tqdm(labelled, desc="photos", unit="photo", disable=not progress)
        for prediction_id, label in bar:
            folder = target_dir(out_dir, prediction_id, label, val_fraction)
            current = existing.get((folder, str(prediction_id)))
            if current is not None:
                keep.add(current)
                unchanged += 1
                continue
            # Photos are read one at a time: a training set may not fit in memory.
            row = connection.execute(
                "SELECT image FROM prediction_photos WHERE prediction_id = %s", (prediction_id,)
            ).fetchone()
            suffix = suffix_for(row[0]) if row else None
            if row is None or suffix is None:
                skipped += 1
                continue
            target = folder / f"{prediction_id}{suffix}"
            temporary = target.with_name(f".{target.name}.tmp")
            temporary.write_bytes(row[0])
            os.replace(temporary, target)
            keep.add(target)
            written += 1
    removed = 0
    for path in _exported_files(folders):
        if path not in keep:
            path.unlink()
            removed += 1
    return ExportSummary(written=written, unchanged=unchanged, removed=removed, skipped=skipped)


def main(argv: list[str] | None = None) -> int:
    """CLI: export the training folder."""
    from services.common.logs import configure_logging
    from services.common.settings import ServiceSettings

    parser = argparse.ArgumentParser(
        prog="python -m services.feedback.export_photos",
        description="Write consented, labelled photos to OUT_DIR/cat and OUT_DIR/dog (the layout "
        "the training and evaluation commands read); files of erased predictions are removed.",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write (created if missing)")
    parser.add_argument("--database-url", help="DSN (default: DATABASE_URL)")
    parser.add_argument(
        "--val-fraction",
        type=float,
        help="split into OUT_DIR/train and OUT_DIR/val (the layout `python -m ml.train --data` "
        "reads), this share in val; without it OUT_DIR/cat and OUT_DIR/dog (`ml.evaluate`)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.val_fraction is not None and not 0 < args.val_fraction < 1:
        parser.error("--val-fraction must be between 0 and 1")
    settings = ServiceSettings()
    configure_logging(settings.log_level)
    summary = export_photos(
        args.database_url or settings.database_url,
        args.out_dir,
        val_fraction=args.val_fraction,
        progress=not args.quiet,
    )
    folders = label_dirs(args.out_dir, args.val_fraction)
    counts = {
        label: sum(len(_exported_files([f])) for f in folders if f.name == label)
        for label in LABELS
    }
    print(
        f"{args.out_dir}: {counts['cat']} cat, {counts['dog']} dog "
        f"({summary.written} written, {summary.unchanged} unchanged, "
        f"{summary.removed} removed, {summary.skipped} unreadable)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
