"""Turning untrusted upload bytes into a decoded image, or a domain error saying why not."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import pillow_heif
from PIL import Image, UnidentifiedImageError

from catdog.preprocessing import PreprocessSpec, request_draft

# HEIC/HEIF (what iPhones save) through pillow-heif, which applies the container's rotation
# itself and resets the EXIF orientation; AVIF is Pillow's own (EXIF orientation applied later,
# as for JPEG). Both open lazily: the size is read from the header, before any pixel.
pillow_heif.register_heif_opener()

ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "HEIF", "AVIF"})
# File names of those formats, as Pillow (and pillow-heif) register them: what a folder of
# photos is read for (training, evaluation).
IMAGE_SUFFIXES = frozenset(
    suffix for suffix, name in Image.registered_extensions().items() if name in ACCEPTED_FORMATS
)

# Formats people do upload that Pillow cannot or should not decode here: say "unsupported"
# rather than "corrupt". Each is (offset, magic bytes, name).
_KNOWN_FOREIGN_SIGNATURES = (
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"%PDF", "PDF"),
    (0, b"<svg", "SVG"),
    (0, b"<?xml", "SVG"),
)


class ImageRejected(Exception):
    """Base of every reason an upload cannot be classified."""


class InvalidImage(ImageRejected):
    """Not an image, or a corrupt or truncated one."""


class UnsupportedImage(ImageRejected):
    """An image in a format we do not accept."""


class ImageTooLarge(ImageRejected):
    """More pixels than allowed: refused before decoding."""


@dataclass(frozen=True)
class ImageLimits:
    """What an upload may be."""

    max_pixels: int = 40_000_000
    accepted_formats: frozenset[str] = ACCEPTED_FORMATS


def _foreign_format(data: bytes) -> str | None:
    head = data[:32].lstrip()
    for offset, magic, name in _KNOWN_FOREIGN_SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def load_image(data: bytes, spec: PreprocessSpec, limits: ImageLimits) -> Image.Image:
    """Identify, check and decode the first frame, at reduced JPEG scale where it helps."""
    image = open_image(data, limits)
    request_draft(image, spec)
    return decode(image)


def decoded_pixels(data: bytes, spec: PreprocessSpec, limits: ImageLimits) -> int:
    """How many pixels `load_image` would decode, from the header alone (JPEG at its reduced
    scale); 0 for an upload it would refuse, which costs no decoding."""
    try:
        image = open_image(data, limits)
    except ImageRejected:
        return 0
    request_draft(image, spec)
    width, height = image.size
    return width * height


def open_image(data: bytes, limits: ImageLimits) -> Image.Image:
    """Identify and check an upload without decoding its pixels yet."""
    if not data:
        raise InvalidImage("the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        foreign = _foreign_format(data)
        if foreign:
            raise UnsupportedImage(f"{foreign} images are not accepted") from None
        raise InvalidImage("the file is not an image Pillow can identify") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLarge(str(error)) from None
    except (OSError, ValueError, SyntaxError, RuntimeError) as error:
        # RuntimeError: how the HEIF and AVIF decoders (libheif, libavif) report a bad file.
        raise InvalidImage(f"the image header is corrupt: {error}") from None

    if image.format not in limits.accepted_formats:
        accepted = ", ".join(sorted(limits.accepted_formats))
        raise UnsupportedImage(f"{image.format} images are not accepted (accepted: {accepted})")
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImage("the image has no pixels")
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"{width}x{height} is {width * height} pixels, over the {limits.max_pixels} allowed"
        )
    return image


def decode(image: Image.Image) -> Image.Image:
    """Decode the pixels of an image `open_image` accepted (at the draft scale set, if any)."""
    try:
        image.load()
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, RuntimeError) as error:
        raise InvalidImage(f"the image data is corrupt or truncated: {error}") from None
    return image
