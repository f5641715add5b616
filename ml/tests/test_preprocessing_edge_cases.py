"""Odd uploads through load_image + preprocess: what training, evaluation and serving share."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from catdog.images import ImageLimits, ImageTooLarge, load_image
from catdog.preprocessing import PreprocessSpec, preprocess, to_rgb
from ml.dataset import load_tensor
from ml.tests.conftest import encode, to_pixels

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)

Service = Callable[[bytes], np.ndarray]


def assert_model_input(tensor: np.ndarray, spec: PreprocessSpec) -> None:
    assert tensor.shape == (3, spec.crop, spec.crop)
    assert tensor.dtype == np.float32
    assert tensor.flags.c_contiguous
    assert np.isfinite(tensor).all()


def assert_colour(pixel: np.ndarray, colour: tuple[int, int, int], tolerance: float = 12) -> None:
    assert np.abs(pixel - np.asarray(colour)).max() <= tolerance, (pixel, colour)


def red_left_blue_right(width: int = 300, height: int = 200) -> Image.Image:
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (width // 2, 0, width, height))
    return image


@pytest.mark.parametrize(
    ("orientation", "size", "red_at", "blue_at"),
    [
        (1, (300, 200), "left", "right"),
        (3, (300, 200), "right", "left"),
        (6, (200, 300), "top", "bottom"),
        (8, (200, 300), "bottom", "top"),
    ],
)
def test_exif_orientation_is_applied(
    orientation: int,
    size: tuple[int, int],
    red_at: str,
    blue_at: str,
    spec: PreprocessSpec,
    through_service: Service,
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(red_left_blue_right(), "JPEG", quality=95, exif=exif.tobytes())

    assert to_rgb(load_image(data, spec, ImageLimits())).size == size
    pixels = to_pixels(through_service(data), spec)
    middle, edge = spec.crop // 2, spec.crop // 8
    where = {
        "left": pixels[middle, edge],
        "right": pixels[middle, -edge],
        "top": pixels[edge, middle],
        "bottom": pixels[-edge, middle],
    }
    assert_colour(where[red_at], RED, tolerance=40)
    assert_colour(where[blue_at], BLUE, tolerance=40)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_greyscale_becomes_three_equal_channels(
    fmt: str, spec: PreprocessSpec, through_service: Service
) -> None:
    ramp = np.tile(np.linspace(0, 255, 320).astype(np.uint8), (240, 1))
    tensor = through_service(encode(Image.fromarray(ramp, mode="L"), fmt))

    assert_model_input(tensor, spec)
    pixels = to_pixels(tensor, spec)
    assert np.allclose(pixels[..., 0], pixels[..., 1], atol=1e-3)
    assert np.allclose(pixels[..., 0], pixels[..., 2], atol=1e-3)
    assert pixels[:, 0, 0].mean() < pixels[:, -1, 0].mean()


def test_transparent_rgba_is_flattened_on_white(
    spec: PreprocessSpec, through_service: Service
) -> None:
    image = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (100, 100, 200, 200))
    pixels = to_pixels(through_service(encode(image, "PNG")), spec)

    assert_colour(pixels[5, 5], WHITE, tolerance=1)
    assert_colour(pixels[spec.crop // 2, spec.crop // 2], RED, tolerance=1)


def test_half_transparent_rgba_blends_with_white(
    spec: PreprocessSpec, through_service: Service
) -> None:
    image = Image.new("RGBA", (64, 64), (0, 0, 255, 128))
    pixels = to_pixels(through_service(encode(image, "PNG")), spec)
    assert_colour(pixels[10, 10], (127, 127, 255), tolerance=2)


def test_palette_image(spec: PreprocessSpec, through_service: Service) -> None:
    image = red_left_blue_right(300, 300).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert image.mode == "P"
    pixels = to_pixels(through_service(encode(image, "PNG")), spec)
    assert_colour(pixels[spec.crop // 2, 10], RED, tolerance=2)
    assert_colour(pixels[spec.crop // 2, -10], BLUE, tolerance=2)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_is_white(
    fmt: str, spec: PreprocessSpec, through_service: Service
) -> None:
    image = Image.new("P", (200, 200), 0)
    image.putpalette([0, 255, 0] + [255, 0, 0] + [0, 0, 0] * 254)
    image.paste(1, (50, 50, 150, 150))
    data = encode(image, fmt, transparency=0)
    assert load_image(data, spec, ImageLimits()).info.get("transparency") == 0

    pixels = to_pixels(through_service(data), spec)
    assert_colour(pixels[3, 3], WHITE, tolerance=1)  # green index 0 is transparent
    assert_colour(pixels[spec.crop // 2, spec.crop // 2], RED, tolerance=1)


def test_cmyk_jpeg_keeps_its_colours(spec: PreprocessSpec, through_service: Service) -> None:
    # Pillow writes Adobe-style CMYK JPEGs; red is full magenta and yellow.
    image = Image.new("CMYK", (200, 200), (0, 255, 255, 0))
    data = encode(image, "JPEG", quality=95)
    assert load_image(data, spec, ImageLimits()).mode == "CMYK"

    pixels = to_pixels(through_service(data), spec)
    assert_colour(pixels[spec.crop // 2, spec.crop // 2], RED, tolerance=6)


def test_sixteen_bit_greyscale_spans_the_range(
    spec: PreprocessSpec, through_service: Service
) -> None:
    ramp = np.tile(np.linspace(0, 65535, 300).astype(np.uint16), (300, 1))
    image = Image.fromarray(ramp)
    assert image.mode.startswith("I")
    data = encode(image, "PNG")
    assert load_image(data, spec, ImageLimits()).mode.startswith("I")

    pixels = to_pixels(through_service(data), spec)
    # Not clipped to white: a dark left side and a bright right side survive.
    assert pixels[:, 0, 0].mean() < 40
    assert pixels[:, -1, 0].mean() > 215


def test_one_pixel_image(spec: PreprocessSpec, through_service: Service) -> None:
    tensor = through_service(encode(Image.new("RGB", (1, 1), RED), "PNG"))
    assert_model_input(tensor, spec)
    pixels = to_pixels(tensor, spec)
    assert np.abs(pixels - np.asarray(RED)).max() < 1


def test_huge_jpeg_is_decoded_at_reduced_scale(
    spec: PreprocessSpec, through_service: Service
) -> None:
    image = red_left_blue_right(6000, 4000)
    data = encode(image, "JPEG", quality=80)

    decoded = load_image(data, spec, ImageLimits())
    # JPEG draft mode: an 1/8-scale decode is still larger than the resize target.
    assert decoded.size == (750, 500)
    assert min(decoded.size) >= spec.resize_shorter
    pixels = to_pixels(through_service(data), spec)
    assert_colour(pixels[spec.crop // 2, 10], RED, tolerance=20)
    assert_colour(pixels[spec.crop // 2, -10], BLUE, tolerance=20)


def test_too_many_pixels_is_refused_before_decoding(spec: PreprocessSpec) -> None:
    data = encode(Image.new("1", (8000, 6000)), "PNG")
    with pytest.raises(ImageTooLarge):
        load_image(data, spec, ImageLimits(max_pixels=40_000_000))


@pytest.mark.parametrize("size", [(20000, 2), (2, 20000), (4000, 60)])
def test_very_wide_or_tall_images_are_cheap(
    size: tuple[int, int], spec: PreprocessSpec, through_service: Service
) -> None:
    image = Image.new("RGB", size, RED)
    started = time.perf_counter()
    tensor = through_service(encode(image, "PNG"))
    elapsed = time.perf_counter() - started

    assert_model_input(tensor, spec)
    assert np.abs(to_pixels(tensor, spec) - np.asarray(RED)).max() < 1
    # Resizing the whole strip before cropping took seconds and gigabytes at 20000x2.
    assert elapsed < 3.0


def test_resize_and_crop_matches_resizing_everything_first() -> None:
    spec = PreprocessSpec(resize_shorter=256, crop=224, interpolation="bilinear")
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8))
    left = (341 - 224) // 2
    top = (256 - 224) // 2
    resized = image.resize((341, 256), Image.Resampling.BILINEAR)
    expected = np.asarray(resized.crop((left, top, left + 224, top + 224)), dtype=np.float32)

    actual = to_pixels(preprocess(image, spec), spec)
    # Resampling only the cropped region may round a few values the other way.
    assert np.abs(actual - expected).max() <= 1.01


def test_training_decodes_exactly_like_the_service(
    tmp_path, spec: PreprocessSpec, through_service: Service
) -> None:
    data = encode(red_left_blue_right(), "JPEG", quality=90)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    assert np.array_equal(load_tensor(path, spec), through_service(data))
