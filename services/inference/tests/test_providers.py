"""ONNX_PROVIDERS: the execution provider is configuration, and a missing GPU is not an outage."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from catdog.model import CPU_PROVIDER, Classifier, available_providers
from services.inference.settings import Settings


def test_short_and_full_names_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONNX_PROVIDERS", "tensorrt, cuda,CPUExecutionProvider")
    assert Settings().onnx_providers == (
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        CPU_PROVIDER,
    )


def test_default_is_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONNX_PROVIDERS", raising=False)
    assert Settings().onnx_providers == (CPU_PROVIDER,)


@pytest.mark.parametrize("value", ["gpu", "cuda,warp-drive", " , "])
def test_unknown_or_empty_provider_lists_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ONNX_PROVIDERS", value)
    with pytest.raises(ValidationError, match=r"ONNX_PROVIDERS|onnx_providers"):
        Settings()


def test_a_provider_this_node_lacks_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # This CPU build of ONNX Runtime has no CUDA: the model must still load, on CPU.
    with caplog.at_level(logging.WARNING):
        chosen = available_providers(["cuda"])
    assert chosen == [CPU_PROVIDER]
    assert "CUDAExecutionProvider is not available" in caplog.text


def test_the_session_and_the_model_route_report_the_providers_in_use(
    tiny_model_path: Path,
) -> None:
    classifier = Classifier(tiny_model_path, providers=["cuda", "cpu"])
    assert classifier.session.get_providers() == [CPU_PROVIDER]
    assert classifier.describe()["providers"] == [CPU_PROVIDER]
