"""The model benchmark: its reference graph and its printed table."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from ml.bench_model import extract_reference, imagenet_logits_name
from ml.bench_model import main as bench_main


def test_reference_is_the_model_without_its_heads(model_file: Path, tmp_path: Path) -> None:
    reference = onnx.load(str(extract_reference(model_file, tmp_path / "reference.onnx")))
    model = onnx.load(str(model_file))

    assert [item.name for item in reference.graph.input] == ["image"]
    assert [item.name for item in reference.graph.output] == [imagenet_logits_name(model)]
    op_types = [node.op_type for node in reference.graph.node]
    assert op_types.count("Softmax") == 0
    assert op_types.count("Conv") == [node.op_type for node in model.graph.node].count("Conv")


def test_bench_prints_throughput_and_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["--runs", "2", "--batch-sizes", "1", "2"]) == 0
    printed = capsys.readouterr().out
    assert "img/s" in printed
    assert "ratio" in printed
    rows = [line.split() for line in printed.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert len(rows) == 2
    assert all(float(value) > 0 for row in rows for value in row[1:])
