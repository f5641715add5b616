"""Export consented, labelled photos as `OUT_DIR/cat/`, `OUT_DIR/dog/` for training.

A photo is exported only when its owner consented to keeping it (it exists in
`prediction_photos` only then) and a label is known: the true label from the feedback, or the
prediction when the user said it was right. Files are named by prediction id, and a re-run
removes files whose prediction was erased or purged, so erasure reaches exported copies too.

    python -m services.feedback.export_photos OUT_DIR
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


def _exported_files(out_dir: Path) -> list[Path]:
    return [path for label in LABELS for path in (out_dir / label).glob("*") if path.is_file()]


def export_photos(database_url: str, out_dir: Path, *, progress: bool = True) -> ExportSummary:
    """Write every labelled consented photo; remove exported files no longer allowed."""
    for label in LABELS:
        (out_dir / label).mkdir(parents=True, exist_ok=True)
    existing = {(path.parent.name, path.stem): path for path in _exported_files(out_dir)}
    keep: set[Path] = set()
    written = unchanged = skipped = 0
    with psycopg.connect(database_url) as connection:
        labelled: list[tuple[uuid.UUID, str]] = connection.execute(_LABELLED_PHOTOS).fetchall()
        bar = tqdm(labelled, desc="photos", unit="photo", disable=not progress)
        for prediction_id, label in bar:
            current = existing.get((label, str(prediction_id)))
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
            target = out_dir / label / f"{prediction_id}{suffix}"
            temporary = target.with_name(f".{target.name}.tmp")
            temporary.write_bytes(row[0])
            os.replace(temporary, target)
            keep.add(target)
            written += 1
    removed = 0
    for path in _exported_files(out_dir):
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
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    settings = ServiceSettings()
    configure_logging(settings.log_level)
    summary = export_photos(
        args.database_url or settings.database_url, args.out_dir, progress=not args.quiet
    )
    counts = {label: len(list((args.out_dir / label).glob("*"))) for label in LABELS}
    print(
        f"{args.out_dir}: {counts['cat']} cat, {counts['dog']} dog "
        f"({summary.written} written, {summary.unchanged} unchanged, "
        f"{summary.removed} removed, {summary.skipped} unreadable)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
