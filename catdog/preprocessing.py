"""The one preprocessing path shared by training, evaluation and serving.

Everything between "a decoded Pillow image" and "the tensor the model sees" lives here, driven
by the `preprocessing` section of the model card, so the three can never drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageOps

_RESAMPLING = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class PreprocessSpec:
    """Resize the shorter side, centre-crop a square, scale to [0, 1], normalise per channel."""

    resize_shorter: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.interpolation not in _RESAMPLING:
            raise ValueError(f"unknown interpolation {self.interpolation!r}")
        if self.crop > self.resize_shorter:
            raise ValueError("crop must not exceed resize_shorter")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessSpec:
        """Build from a model card's `preprocessing` section."""
        return cls(
            resize_shorter=int(data["resize_shorter"]),
            crop=int(data["crop"]),
            mean=_triple(data["mean"]),
            std=_triple(data["std"]),
            interpolation=str(data.get("interpolation", "bilinear")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The card's `preprocessing` section."""
        return {
            "resize_shorter": self.resize_shorter,
            "crop": self.crop,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "channel_order": "RGB",
            "layout": "NCHW",
            "scale": "pixel / 255",
        }


def _triple(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) != 3:
        raise ValueError("mean and std need one value per RGB channel")
    return (float(values[0]), float(values[1]), float(values[2]))


def upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; an image without one is returned as is, not copied.

    An EXIF block that cannot be parsed (HEIF and AVIF carry it raw from their container, and
    a damaged one is still a viewable picture) counts as no orientation.
    """
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except (SyntaxError, ValueError, OSError):
        return image
    if orientation == 1:
        return image
    return ImageOps.exif_transpose(image)


def shrink(image: Image.Image, spec: PreprocessSpec) -> Image.Image:
    """Box-reduce a huge decoded image by an integer factor before any full-size conversion.

    `resize(reducing_gap=3)` makes the same reduction later, but only after `to_rgb` has
    copied the full-size pixels: a 40-megapixel RGBA, palette or 16-bit file costs several
    hundred MiB that way. Photos up to 3x the resize target are untouched.
    """
    factor = min(image.size) // (spec.resize_shorter * 3)
    if factor < 2:
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    return image.reduce(factor)


def to_rgb(image: Image.Image) -> Image.Image:
    """Upright 8-bit RGB: EXIF rotation applied, alpha flattened on white, odd modes converted."""
    image = upright(image)
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        # 16/32-bit greyscale: scale to 8 bits instead of clipping everything to white.
        array = np.asarray(image, dtype=np.float32)
        peak = float(array.max()) if array.size else 0.0
        if peak > 255:
            array *= 255.0 / peak
        image = Image.fromarray(array.clip(0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "PA"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def request_draft(image: Image.Image, spec: PreprocessSpec) -> None:
    """Ask JPEG decoding for the smallest DCT scale still at least as large as the resize.

    Decoding a 12-megapixel photo at 1/8 scale is an order of magnitude faster, and the
    result is resized down anyway. Only effective before the pixels are loaded.
    """
    if image.format in {"JPEG", "MPO"}:
        image.draft("RGB", (spec.resize_shorter, spec.resize_shorter))


def resize_and_crop(image: Image.Image, spec: PreprocessSpec) -> Image.Image:
    """Shorter side to `resize_shorter`, then the centred `crop` x `crop` square."""
    width, height = image.size
    scale = spec.resize_shorter / min(width, height)
    new_size = (max(spec.crop, round(width * scale)), max(spec.crop, round(height * scale)))
    left = (new_size[0] - spec.crop) // 2
    top = (new_size[1] - spec.crop) // 2
    # Resample only the source region under the crop: resizing the whole image first turns a
    # 40000x1 upload into a 2.6-gigapixel intermediate. Same geometry as resize-then-crop
    # (Pillow may round a few values the other way).
    scale_x = width / new_size[0]
    scale_y = height / new_size[1]
    box = (
        left * scale_x,
        top * scale_y,
        (left + spec.crop) * scale_x,
        (top + spec.crop) * scale_y,
    )
    return image.resize(
        (spec.crop, spec.crop), _RESAMPLING[spec.interpolation], box=box, reducing_gap=3.0
    )


def preprocess(image: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """One decoded image to the model's float32 CHW tensor."""
    square = resize_and_crop(to_rgb(shrink(image, spec)), spec)
    pixels = np.asarray(square, dtype=np.float32) * (1.0 / 255.0)
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    normalised = (pixels - mean) / std
    return np.ascontiguousarray(normalised.transpose(2, 0, 1))
