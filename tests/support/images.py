"""Images made in memory for tests: ordinary, odd-but-valid, and hostile."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

import catdog.images  # noqa: F401  (registers the HEIF codec with Pillow, as the service does)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """Encode an image in memory."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def solid(color: tuple[int, int, int], size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A flat RGB image."""
    return Image.new("RGB", size, color)


def jpeg(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (320, 240)) -> bytes:
    """A small JPEG."""
    return encode(solid(color, size), "JPEG", quality=90)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims a huge canvas: refused before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def odd_images() -> dict[str, tuple[bytes, str]]:
    """Valid images in unusual shapes and modes, with their MIME types."""
    base = Image.new("RGB", (300, 200))
    for x in range(300):
        for y in range(0, 200, 4):
            base.putpixel((x, y), (x % 256, y, 128))
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    palette_transparent = base.convert("P", palette=Image.Palette.ADAPTIVE)
    palette_transparent.info["transparency"] = 0
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: the decoder must turn it upright
    frames = [solid((255, 0, 0), (64, 64)), solid((0, 0, 255), (64, 64))]
    animated = io.BytesIO()
    frames[0].save(animated, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    sixteen_bit = Image.new("I;16", (120, 90))
    for x in range(120):
        sixteen_bit.putpixel((x, 45), x * 500)
    return {
        "grayscale": (encode(base.convert("L"), "JPEG"), "image/jpeg"),
        "rgba_png": (encode(rgba, "PNG"), "image/png"),
        "palette_png": (encode(base.convert("P"), "PNG"), "image/png"),
        "palette_transparent_png": (encode(palette_transparent, "PNG"), "image/png"),
        "cmyk_jpeg": (encode(base.convert("CMYK"), "JPEG"), "image/jpeg"),
        "sixteen_bit_png": (encode(sixteen_bit, "PNG"), "image/png"),
        "exif_rotated_jpeg": (encode(base, "JPEG", exif=exif.tobytes()), "image/jpeg"),
        "animated_gif": (animated.getvalue(), "image/gif"),
        "progressive_jpeg": (encode(base, "JPEG", progressive=True), "image/jpeg"),
        "tiny_1x1": (encode(solid((10, 200, 10), (1, 1)), "PNG"), "image/png"),
        "very_wide": (encode(solid((90, 90, 200), (6000, 12)), "PNG"), "image/png"),
        "large_jpeg": (encode(solid((120, 80, 40), (4000, 3000)), "JPEG"), "image/jpeg"),
        "webp": (encode(base, "WEBP"), "image/webp"),
        "bmp": (encode(base, "BMP"), "image/bmp"),
        "rgba_webp": (encode(rgba, "WEBP"), "image/webp"),
        # What phones take: iPhones' HEIC, Android's AVIF, each sideways as a camera leaves it.
        "heic": (encode(base, "HEIF"), "image/heic"),
        "exif_rotated_heic": (encode(base, "HEIF", exif=exif.tobytes()), "image/heic"),
        "avif": (encode(base, "AVIF"), "image/avif"),
        "exif_rotated_avif": (encode(base, "AVIF", exif=exif.tobytes()), "image/avif"),
        "animated_avif": (
            encode(frames[0], "AVIF", save_all=True, append_images=frames[1:]),
            "image/avif",
        ),
    }
