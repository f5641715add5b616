"""Images that are certainly neither cat nor dog, for checking the `pet_score` threshold."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

WIDTH, HEIGHT = 400, 300


def _rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def noise_rgb() -> Image.Image:
    """Uniform colour noise, pixel by pixel."""
    return Image.fromarray(_rng().integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))


def noise_grey() -> Image.Image:
    """Uniform grey noise."""
    return Image.fromarray(_rng().integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8), mode="L")


def noise_blobs() -> Image.Image:
    """Low-frequency colour noise: an 8x10 random image upscaled smoothly."""
    small = Image.fromarray(_rng().integers(0, 256, (8, 10, 3), dtype=np.uint8))
    return small.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)


def gradient_grey() -> Image.Image:
    """Black to white, left to right."""
    ramp = np.linspace(0, 255, WIDTH, dtype=np.float32)
    return Image.fromarray(np.broadcast_to(ramp, (HEIGHT, WIDTH)).astype(np.uint8), mode="L")


def gradient_colour() -> Image.Image:
    """Red rising left to right, blue falling top to bottom."""
    pixels = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    pixels[..., 0] = np.linspace(0, 255, WIDTH)[None, :]
    pixels[..., 2] = np.linspace(255, 0, HEIGHT)[:, None]
    return Image.fromarray(pixels)


def checkerboard() -> Image.Image:
    """Black and white 25-pixel squares."""
    squares = np.indices((HEIGHT, WIDTH)).sum(axis=0) // 25 % 2
    return Image.fromarray((squares * 255).astype(np.uint8), mode="L")


def stripes() -> Image.Image:
    """Vertical sine stripes."""
    wave = np.sin(np.arange(WIDTH) / 4.0) * 127 + 128
    return Image.fromarray(np.broadcast_to(wave, (HEIGHT, WIDTH)).astype(np.uint8), mode="L")


def ellipses() -> Image.Image:
    """Random coloured ellipses on green."""
    rng = _rng()
    image = Image.new("RGB", (WIDTH, HEIGHT), (30, 120, 30))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        left, top = int(rng.integers(0, WIDTH - 100)), int(rng.integers(0, HEIGHT - 100))
        right, bottom = left + int(rng.integers(20, 100)), top + int(rng.integers(20, 100))
        fill = tuple(int(value) for value in rng.integers(0, 256, 3))
        draw.ellipse((left, top, right, bottom), fill=fill)
    return image


def solid(colour: tuple[int, int, int]) -> Callable[[], Image.Image]:
    """One flat colour."""

    def make() -> Image.Image:
        return Image.new("RGB", (WIDTH, HEIGHT), colour)

    return make


NON_PETS: dict[str, Callable[[], Image.Image]] = {
    "noise_rgb": noise_rgb,
    "noise_grey": noise_grey,
    "noise_blobs": noise_blobs,
    "gradient_grey": gradient_grey,
    "gradient_colour": gradient_colour,
    "checkerboard": checkerboard,
    "stripes": stripes,
    "ellipses": ellipses,
    "solid_black": solid((0, 0, 0)),
    "solid_white": solid((255, 255, 255)),
    "solid_grey": solid((128, 128, 128)),
    "solid_red": solid((220, 30, 30)),
    "solid_brown": solid((120, 80, 40)),
}


def all_images() -> dict[str, Image.Image]:
    """Every synthetic non-pet image by name."""
    return {name: make() for name, make in NON_PETS.items()}
