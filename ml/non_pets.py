"""Real photos that show neither a cat nor a dog, from sources that install offline.

Each set is a name and a list of (name, Pillow image). The packaged ones ship inside wheels the
project already installs for development (scikit-image, matplotlib, scikit-learn); the ImageNet
samples are one photo per ImageNet-1k class that the user downloads and points at, since they
are on no package registry (`python -m ml.non_pets --imagenet-samples DIR` lists what it found).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ml import imagenet, synthetic

# The photos bundled in scikit-image's wheel (skimage/data/) that show neither animal, read as
# files so nothing is fetched. Left out: chelsea.png (a cat), horse.png (a drawn silhouette)
# and the drawings, charts and text renderings.
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "camera.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "moon.png",
    "coins.png",
    "retina.jpg",
    "microaneurysms.png",
    "ihc.png",
    "cell.png",
    "clock_motion.png",
    "page.png",
)
SKIMAGE_PEOPLE = ("astronaut", "camera")
# scikit-image's LFW subset: 100 face crops, then 100 crops of the same photos without a face.
LFW_FACES = 100

IMAGENET_SAMPLES_SOURCE = (
    "one photo per ImageNet-1k class, e.g. the public repository "
    "EliSchwartz/imagenet-sample-images (files named n01440764_tench.JPEG, in class order)"
)
# Wolves, foxes and wild dogs (269-280) and wild cats (286-293): neither a house cat nor a dog,
# but their nearest relatives. Reported apart from the plainly unrelated classes.
WILD_RELATIVES = frozenset([*range(269, 281), *range(286, 294)])


@dataclass(frozen=True)
class PhotoSet:
    """A named list of images and what they show."""

    name: str
    description: str
    images: tuple[tuple[str, Image.Image], ...]


def _skimage_photos() -> list[tuple[str, Image.Image]]:
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    photos = []
    for filename in SKIMAGE_PHOTOS:
        with Image.open(folder / filename) as image:
            image.load()
            photos.append((Path(filename).stem, image.copy()))
    return photos


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    scaled = pixels.astype(np.float64)
    if scaled.max() <= 1.0:
        scaled *= 255.0
    return scaled.clip(0, 255).astype(np.uint8)


def _lfw_faces() -> list[tuple[str, Image.Image]]:
    from skimage import data

    faces = data.lfw_subset()[:LFW_FACES]
    return [
        (f"lfw_face_{index:03d}", Image.fromarray(_to_uint8(face)))
        for index, face in enumerate(faces)
    ]


def _matplotlib_photos() -> list[tuple[str, Image.Image]]:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as image:
        return [("grace_hopper", image.convert("RGB"))]


def _sklearn_photos() -> list[tuple[str, Image.Image]]:
    import sklearn.datasets

    folder = Path(sklearn.datasets.__file__).parent / "images"
    photos = []
    for name in ("china", "flower"):
        with Image.open(folder / f"{name}.jpg") as image:
            photos.append((name, image.convert("RGB")))
    return photos


def packaged() -> list[PhotoSet]:
    """The non-pet photo sets that ship inside installed wheels."""
    return [
        PhotoSet(
            "skimage",
            "scikit-image's sample photos: people, objects, outdoor and indoor scenes, "
            "textures, microscopy and astronomy",
            tuple(_skimage_photos()),
        ),
        PhotoSet(
            "people",
            "photos of people: matplotlib's Grace Hopper and scikit-image's astronaut and "
            "cameraman",
            tuple(
                _matplotlib_photos()
                + [(name, image) for name, image in _skimage_photos() if name in SKIMAGE_PEOPLE]
            ),
        ),
        PhotoSet(
            "lfw_faces",
            "100 face crops of the Labeled Faces in the Wild subset in scikit-image (25 x 25 grey)",
            tuple(_lfw_faces()),
        ),
        PhotoSet(
            "sklearn", "scikit-learn's sample photos: a temple, a flower", tuple(_sklearn_photos())
        ),
    ]


def featureless() -> PhotoSet:
    """Solid colours, noise and gradients: no photo at all."""
    return PhotoSet(
        "featureless",
        "generated solid colours, noise, gradients and patterns (ml/synthetic.py)",
        tuple(synthetic.all_images().items()),
    )


_SAMPLE_NAME = re.compile(r"^(n\d{8})_(.+)$")


def imagenet_samples(folder: Path) -> dict[str, PhotoSet]:
    """One photo per class, split into non-pets, wild relatives and the cats and dogs.

    Files are named `<wnid>_<class name>.<ext>`; sorted by wnid they are in class order.
    """
    files = sorted(
        path
        for path in folder.iterdir()
        if path.is_file()
        and _SAMPLE_NAME.match(path.stem)
        and path.suffix.lower() in {".jpeg", ".jpg", ".png"}
    )
    if len(files) != imagenet.CLASSES:
        raise FileNotFoundError(
            f"{folder} holds {len(files)} class samples, expected {imagenet.CLASSES}: "
            f"{IMAGENET_SAMPLES_SOURCE}"
        )
    pets = set(imagenet.DOG_CLASSES) | set(imagenet.CAT_CLASSES)
    groups: dict[str, list[tuple[str, Image.Image]]] = {"other": [], "wild": [], "pets": []}
    for index, path in enumerate(files):
        with Image.open(path) as image:
            photo = (path.stem, image.convert("RGB"))
        if index in pets:
            groups["pets"].append(photo)
        elif index in WILD_RELATIVES:
            groups["wild"].append(photo)
        else:
            groups["other"].append(photo)
    return {
        "imagenet_other": PhotoSet(
            "imagenet_other",
            "ImageNet samples of the 857 classes that are neither",
            tuple(groups["other"]),
        ),
        "imagenet_wild": PhotoSet(
            "imagenet_wild",
            "ImageNet samples of wolves, foxes and wild cats",
            tuple(groups["wild"]),
        ),
        "imagenet_pets": PhotoSet(
            "imagenet_pets",
            "ImageNet samples of the dog breeds and house cats (must pass)",
            tuple(groups["pets"]),
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """List the sets found on this machine."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.non_pets",
        description="List the non-pet photo sets the neither-cat-nor-dog check is measured on.",
    )
    parser.add_argument(
        "--imagenet-samples", type=Path, help=f"folder with {IMAGENET_SAMPLES_SOURCE}"
    )
    args = parser.parse_args(argv)
    sets = [*packaged(), featureless()]
    if args.imagenet_samples:
        sets.extend(imagenet_samples(args.imagenet_samples).values())
    for photo_set in sets:
        print(f"{photo_set.name:16} {len(photo_set.images):4} images  {photo_set.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
