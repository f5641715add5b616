"""Writing the network to ONNX with the signature the inference service loads."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from catdog.model import EMBEDDING, INPUT_NAME, PET_RANK, PET_SCORE, PROBABILITIES
from ml.backbone import HEAD_FEATURES, CatDogNet, FeaturesAndLogits
from ml.features import FEATURES_OUTPUT, LOGITS_OUTPUT
from ml.head import LinearHead

logger = logging.getLogger(__name__)

OPSET = 17
HEAD_WEIGHT = "head.weight"
HEAD_BIAS = "head.bias"


def head_layer(head: LinearHead, temperature: float = 1.0) -> nn.Linear:
    """The fitted head as a two-logit torch layer, label order cat, dog.

    The calibration temperature is folded into the weights: logits / T cost nothing at run time.
    """
    weight, bias = head.two_class_linear()
    layer = nn.Linear(HEAD_FEATURES, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight / temperature))
        layer.bias.copy_(torch.from_numpy(bias / temperature))
    return layer


def _export(module: nn.Module, path: Path, size: int, outputs: list[str]) -> None:
    module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 3, size, size)
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter needs no extra packages (the dynamo one wants onnxscript) and
        # gives a stable, named graph; its deprecation notice and the note that the static
        # "same" padding's Slice cannot be folded (ONNX Runtime folds it at load) are expected.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        torch.onnx.export(
            module,
            (dummy,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in [INPUT_NAME, *outputs]},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    logger.info("wrote %s (%d bytes)", path, path.stat().st_size)


def export_classifier(net: CatDogNet, path: Path, size: int) -> None:
    """The cat/dog network: `image` in; probabilities, pet_score, pet_rank, embedding out."""
    _export(net, path, size, [PROBABILITIES, PET_SCORE, PET_RANK, EMBEDDING])


def export_features(net: FeaturesAndLogits, path: Path, size: int) -> None:
    """The frozen backbone the head is trained on: pooled features and ImageNet logits."""
    _export(net, path, size, [FEATURES_OUTPUT, LOGITS_OUTPUT])


def read_head(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The cat/dog layer's weight [2, 1280] and bias [2] as stored in an exported file."""
    initializers = {item.name: item for item in onnx.load(str(path)).graph.initializer}
    try:
        weight = onnx.numpy_helper.to_array(initializers[HEAD_WEIGHT])
        bias = onnx.numpy_helper.to_array(initializers[HEAD_BIAS])
    except KeyError as error:
        raise ValueError(f"{path} has no {error} initializer: not exported by ml.export") from None
    return weight, bias
