"""Mutation fuzzing of the image decoder, run in its own process to measure its memory.

`python -m tests.support.decoder_fuzz --examples 400` prints one JSON line: how many inputs were
tried, how each ended, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from catdog.images import ImageLimits, ImageRejected, load_image
from catdog.preprocessing import PreprocessSpec, preprocess
from tests.support.images import encode, odd_images

SPEC = PreprocessSpec()
LIMITS = ImageLimits()


def seed_files(dataset_dir: Path | None) -> list[bytes]:
    """Real photos when available (re-encoded in every accepted format), else made ones."""
    if dataset_dir is not None:
        photo = Image.open(next(iter(sorted(dataset_dir.glob("val/cat/*.jpg")))))
        photo.load()
    else:
        photo = Image.new("RGB", (160, 120), (120, 60, 30))
    seeds = [encode(photo, fmt) for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "HEIF", "AVIF")]
    seeds.append(encode(photo, "JPEG", progressive=True))
    seeds += [data for data, _ in odd_images().values() if len(data) < 200_000]
    return seeds


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with bytes flipped, cut, duplicated or spliced: the decoder's worst days."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "duplicate", "zero"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "duplicate":
            data[position:position] = data[position : position + draw(st.integers(1, 512))]
        else:
            data[position : position + 16] = b"\x00" * 16
    return bytes(data)


def peak_rss_kib() -> int:
    """This process's own peak RSS (VmHWM).

    Not `getrusage().ru_maxrss`: Linux carries that over from the parent across fork and exec,
    so a child of a large pytest process would report its parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM")


def run(examples: int, dataset_dir: Path | None) -> dict[str, object]:
    """Feed mutated files to decode + preprocess; anything but success or ImageRejected escapes."""
    outcomes: Counter[str] = Counter()
    seeds = seed_files(dataset_dir)

    worst: dict[str, object] = {"rss_jump_mib": 0.0}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutated(seeds))
    def decode(data: bytes) -> None:
        before = peak_rss_kib()
        try:
            image = load_image(data, SPEC, LIMITS)
            described = f"{image.format} {image.mode} {image.size[0]}x{image.size[1]}"
            preprocess(image, SPEC)
        except ImageRejected as rejected:
            outcomes[type(rejected).__name__] += 1
            described = type(rejected).__name__
        else:
            outcomes["decoded"] += 1
        jump_mib = (peak_rss_kib() - before) / 1024
        if jump_mib > float(worst["rss_jump_mib"]):  # type: ignore[arg-type]
            worst.update(rss_jump_mib=jump_mib, image=described, bytes=len(data))

    decode()
    peak_kib = peak_rss_kib()
    return {
        "examples": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "peak_rss_mib": peak_kib / 1024,
        "worst": worst,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.decoder_fuzz", description=__doc__
    )
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--dataset", type=Path, help="the cats-dogs folder, for real seeds")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.examples, args.dataset)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
