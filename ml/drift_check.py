"""Does the embedding drift test see real shifts, and stay quiet otherwise?

Windows of held-out photos (never trained on) are tested against the model's drift reference,
exactly as the inference service tests live windows (`catdog.drift.mmd_test`):
- undrifted: random windows of validation photos, repeated; the share called drift is the
  false-alarm rate, which should sit near the significance level;
- shifted: the same photos made grayscale, heavily blurred, rotated a quarter turn or dark
  (night-like), and real photos that show no pet; for each, the share of windows called drift
  at each window size, and the smallest size that calls at least `power` of them.

`python -m ml.drift_check --data DIR [--extra-data DIR]` prints the table (`--json` for
machines).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from tqdm import tqdm

from catdog.drift import mmd_test
from catdog.model import Classifier
from ml import non_pets
from ml.card import DEFAULT_MODEL, LABELS
from ml.dataset import list_labelled
from ml.evaluate import score_images

Shift = Callable[[Image.Image], Image.Image]


def grayscale(image: Image.Image) -> Image.Image:
    """Colour removed, as a black-and-white camera or filter gives."""
    return ImageOps.grayscale(image).convert("RGB")


def blurred(image: Image.Image) -> Image.Image:
    """Heavily out of focus: a Gaussian blur of 2 % of the shorter side."""
    return image.filter(ImageFilter.GaussianBlur(radius=max(2.0, min(image.size) * 0.02)))


def rotated(image: Image.Image) -> Image.Image:
    """A quarter turn, as a phone photo whose orientation tag was lost."""
    return image.transpose(Image.Transpose.ROTATE_90)


def dark(image: Image.Image) -> Image.Image:
    """Night-like: a quarter of the light, with the colour washed out."""
    return ImageEnhance.Color(ImageEnhance.Brightness(image).enhance(0.25)).enhance(0.5)


SHIFTS: dict[str, Shift] = {
    "grayscale": grayscale,
    "blurred": blurred,
    "rotated": rotated,
    "dark": dark,
}
WINDOW_SIZES = (10, 20, 50, 100, 200)


@dataclass(frozen=True)
class Detection:
    """How often one kind of window was called drift, per window size."""

    shift: str
    photos: int
    called: dict[int, float]  # window size -> share of windows called drift
    needed: int | None  # smallest window size calling at least `power` of the windows


def embed_images(classifier: Classifier, images: Sequence[Image.Image]) -> np.ndarray:
    """The served model's embeddings of decoded images."""
    scores = score_images(classifier, images)
    if scores.embedding is None:
        raise ValueError("the model has no 'embedding' output")
    return scores.embedding


def load_photos(folders: Sequence[Path], count: int, seed: int) -> list[Image.Image]:
    """A seeded sample of the labelled photos in `folders`, decoded as RGB."""
    items = [item for folder in folders for item in list_labelled(folder, LABELS)]
    chosen = np.random.default_rng(seed).choice(len(items), min(count, len(items)), replace=False)
    return [Image.open(items[index].path).convert("RGB") for index in sorted(chosen)]


def non_pet_photos() -> list[Image.Image]:
    """Every packaged photo showing neither a cat nor a dog (faces, people, scenes)."""
    return [image.convert("RGB") for item in non_pets.packaged() for _, image in item.images]


def call_rate(
    reference: np.ndarray,
    pool: np.ndarray,
    window: int,
    repeats: int,
    *,
    alpha: float,
    permutations: int,
    seed: int,
) -> float:
    """Share of `repeats` random windows of `pool` the test calls drift at `alpha`."""
    rng = np.random.default_rng(seed)
    called = 0
    for repeat in range(repeats):
        rows = rng.choice(len(pool), size=min(window, len(pool)), replace=False)
        result = mmd_test(
            reference, pool[rows], alpha=alpha, permutations=permutations, seed=seed + repeat
        )
        called += result.drifted(alpha)
    return called / repeats


def detection(
    name: str,
    reference: np.ndarray,
    pool: np.ndarray,
    sizes: Sequence[int],
    *,
    repeats: int,
    alpha: float,
    permutations: int,
    power: float,
    seed: int,
) -> Detection:
    """Call rates of windows of `pool` at each size in `sizes` (up to the pool's size)."""
    called = {
        size: call_rate(
            reference, pool, size, repeats, alpha=alpha, permutations=permutations, seed=seed
        )
        for size in sizes
        if size <= len(pool)
    }
    needed = next((size for size, rate in called.items() if rate >= power), None)
    return Detection(name, len(pool), called, needed)


def run(
    classifier: Classifier,
    photos: Sequence[Image.Image],
    *,
    sizes: Sequence[int] = WINDOW_SIZES,
    repeats: int = 20,
    alpha: float = 0.01,
    permutations: int = 200,
    power: float = 0.95,
    seed: int = 0,
    shifts: dict[str, Shift] = SHIFTS,
    include_non_pets: bool = True,
) -> list[Detection]:
    """The undrifted row first, then one row per shift."""
    reference = classifier.reference
    if reference is None:
        raise ValueError("the model's card names no drift reference")
    pools = {"undrifted": embed_images(classifier, photos)}
    for name, shift in tqdm(shifts.items(), desc="shifts", file=sys.stderr):
        pools[name] = embed_images(classifier, [shift(image) for image in photos])
    if include_non_pets:
        pools["non-pet photos"] = embed_images(classifier, non_pet_photos())
    options = {"repeats": repeats, "alpha": alpha, "permutations": permutations, "seed": seed}
    return [
        detection(name, reference, pool, sizes, power=power, **options)  # type: ignore[arg-type]
        for name, pool in pools.items()
    ]


def table(rows: Sequence[Detection], alpha: float, power: float) -> str:
    """The rows for people."""
    sizes = sorted({size for row in rows for size in row.called})
    header = ["windows of", "photos", *(f"n={size}" for size in sizes), f"n for ≥{power:.0%}"]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for row in rows:
        rates = [f"{row.called[size]:.0%}" if size in row.called else "" for size in sizes]
        needed = "—" if row.shift == "undrifted" else str(row.needed or "more")
        lines.append(" | ".join([row.shift, str(row.photos), *rates, needed]))
    return "\n".join(lines) + f"\n(share of windows called drift at alpha = {alpha})"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.drift_check",
        description="False-alarm rate and power of the embedding drift test on held-out photos.",
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="the .onnx file")
    parser.add_argument("--data", type=Path, required=True, help="data set with val/<label>/")
    parser.add_argument("--extra-data", type=Path, help="a second data set with val/<label>/")
    parser.add_argument("--photos", type=int, default=400, help="validation photos to use")
    parser.add_argument("--repeats", type=int, default=20, help="windows per size and shift")
    parser.add_argument("--alpha", type=float, default=0.01, help="significance level")
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--power", type=float, default=0.95, help="share a window size must call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print."""
    args = parse_args(argv)
    roots = [args.data] + ([args.extra_data] if args.extra_data else [])
    classifier = Classifier(args.model)
    photos = load_photos([root / "val" for root in roots], args.photos, args.seed)
    rows = run(
        classifier,
        photos,
        repeats=args.repeats,
        alpha=args.alpha,
        permutations=args.permutations,
        power=args.power,
        seed=args.seed,
    )
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
    else:
        print(table(rows, args.alpha, args.power))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
