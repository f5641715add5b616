"""A small ONNX classifier with the served signature, built without torch, for tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from catdog.model import file_sha256
from catdog.preprocessing import PreprocessSpec

SPEC = PreprocessSpec(resize_shorter=64, crop=56)


def build_tiny_model(
    folder: Path, *, version: str = "tiny-1", inverted: bool = False, per_photo_work: int = 0
) -> Path:
    """Mean colour -> linear -> softmax: cat when red dominates blue (the other way round when
    `inverted`: a model that is always wrong, to be caught). Writes model and card.

    `per_photo_work` adds that many 64 × 64 matrix products per row of pixels to every photo's
    scoring, without changing any answer: a model whose time grows with the batch, as a real
    network's does.
    """
    weights = np.array([[2.0, -2.0], [0.0, 0.0], [-2.0, 2.0]], dtype=np.float32)
    if inverted:
        weights = -weights
    bias = np.zeros(2, dtype=np.float32)
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
        helper.make_node(
            "Gemm", ["features", "W", "B"], ["scores" if per_photo_work else "logits"]
        ),
        *_busy_work(per_photo_work),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ReduceMax", ["probabilities"], ["pet_score_2d"], axes=[1], keepdims=1),
        helper.make_node("Flatten", ["pet_score_2d"], ["pet_score_flat"], axis=0),
        helper.make_node("Squeeze", ["pet_score_flat", "zero"], ["pet_score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cat_dog",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 56, 56])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("pet_score", TensorProto.FLOAT, ["batch"]),
        ],
        initializer=[
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(bias, "B"),
            numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
            *(_busy_constants() if per_photo_work else []),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / "tiny_cat_dog.onnx"
    onnx.save(model, model_path)
    card = {
        "name": "tiny-cat-dog",
        "version": version,
        "labels": ["cat", "dog"],
        "sha256": file_sha256(model_path),
        "preprocessing": SPEC.to_dict(),
        "pet_threshold": 0.0,
    }
    model_path.with_suffix(".json").write_text(json.dumps(card, indent=2))
    return model_path


def _busy_constants() -> list[onnx.TensorProto]:
    # An orthogonal matrix keeps the busy work's values bounded, however long the chain.
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(64, 64)))[0]
    return [
        numpy_helper.from_array(rotation.astype(np.float32), "rotation"),
        numpy_helper.from_array(np.array([0, 147, 64], dtype=np.int64), "rows_shape"),
        numpy_helper.from_array(np.zeros(1, dtype=np.float32), "nothing"),
    ]


def _busy_work(products: int) -> list[onnx.NodeProto]:
    """Nodes turning `scores` into `logits` unchanged, after `products` matrix products on each
    photo's pixels (3 × 56 × 56 = 147 rows of 64), multiplied by zero at the end."""
    if not products:
        return []
    nodes = [helper.make_node("Reshape", ["image", "rows_shape"], ["work_0"])]
    for step in range(products):
        nodes.append(helper.make_node("MatMul", [f"work_{step}", "rotation"], [f"work_{step + 1}"]))
    return [
        *nodes,
        helper.make_node("ReduceMean", [f"work_{products}"], ["row_means"], axes=[2], keepdims=0),
        helper.make_node("ReduceMean", ["row_means"], ["work_mean"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["work_mean", "nothing"], ["no_change"]),
        helper.make_node("Add", ["scores", "no_change"], ["logits"]),
    ]
