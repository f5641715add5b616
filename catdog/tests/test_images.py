"""The photos phones take: HEIC and AVIF accepted under the same limits as every format."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from catdog.images import (
    IMAGE_SUFFIXES,
    ImageLimits,
    ImageTooLarge,
    UnsupportedImage,
    load_image,
    open_image,
)
from catdog.preprocessing import PreprocessSpec, upright
from tests.support.images import encode, solid

SPEC = PreprocessSpec()
# Red on the left half, blue on the right: after a quarter turn the top is one colour.
HALVES = Image.new("RGB", (64, 32), (255, 0, 0))
HALVES.paste((0, 0, 255), (32, 0, 64, 32))
SIDEWAYS = Image.Exif()
SIDEWAYS[0x0112] = 6  # the camera was turned: display rotated 90° clockwise


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_formats_decode_to_their_pixels(fmt: str) -> None:
    image = load_image(encode(HALVES, fmt, quality=95), SPEC, ImageLimits())
    assert image.size == (64, 32)
    red, _, blue = image.convert("RGB").getpixel((8, 16))
    assert red > 200 and blue < 60


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_the_cameras_orientation_is_applied(fmt: str) -> None:
    image = upright(load_image(encode(HALVES, fmt, exif=SIDEWAYS.tobytes()), SPEC, ImageLimits()))
    assert image.size == (32, 64)
    # Turned clockwise, the left (red) half is now on top.
    top, bottom = image.convert("RGB").getpixel((16, 8)), image.convert("RGB").getpixel((16, 56))
    assert top[0] > 200 and bottom[2] > 200


def test_the_first_frame_of_an_avif_sequence_is_the_one_classified() -> None:
    frames = [solid((255, 0, 0), (40, 40)), solid((0, 0, 255), (40, 40))]
    data = encode(frames[0], "AVIF", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).n_frames == 2
    red, _, blue = load_image(data, SPEC, ImageLimits()).convert("RGB").getpixel((20, 20))
    assert red > 200 and blue < 60


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_too_many_pixels_are_refused_from_the_header(fmt: str) -> None:
    data = encode(solid((1, 2, 3), (300, 200)), fmt)
    with pytest.raises(ImageTooLarge, match="60000 pixels"):
        open_image(data, ImageLimits(max_pixels=50_000))


def test_a_phone_format_can_still_be_turned_off() -> None:
    limits = ImageLimits(accepted_formats=frozenset({"JPEG"}))
    with pytest.raises(UnsupportedImage, match="HEIF images are not accepted"):
        open_image(encode(HALVES, "HEIF"), limits)


def test_a_damaged_exif_block_counts_as_no_orientation() -> None:
    data = encode(HALVES, "HEIF", exif=SIDEWAYS.tobytes())
    at = data.index(b"MM\x00*")  # the EXIF block's TIFF header, as the container carries it
    image = load_image(data[:at] + b"ZZ" + data[at + 2 :], SPEC, ImageLimits())
    with pytest.raises(SyntaxError):
        image.getexif()  # what a bare Pillow call does with it
    # The container's own rotation was applied on decoding; the broken block adds none.
    assert upright(image) is image
    assert image.size == (32, 64)


def test_photo_folders_are_read_for_every_accepted_format_and_no_other() -> None:
    assert {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".heic", ".heif", ".avif"} <= (
        IMAGE_SUFFIXES
    )
    assert not {".tif", ".tiff", ".pdf", ".svg"} & IMAGE_SUFFIXES
