"""The Open Inference Protocol, spoken to by the official Triton client over real HTTP.

The service runs as a real process with the tiny colour model (red = cat, blue = dog), so the
answers are known; every photo inferred must also be stored and counted like `/predict`'s.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import psycopg
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from harness.services import ServiceProcess
from tests.support.images import jpeg

pytestmark = pytest.mark.slow

RED, BLUE = (250, 10, 10), (10, 10, 250)
MODEL = "tiny-cat-dog"


@pytest.fixture
def service(database_url: str, tiny_model_path: Path, tmp_path: Path) -> Iterator[ServiceProcess]:
    env = {
        "DATABASE_URL": database_url,
        "MODEL_PATH": str(tiny_model_path),
        "PREDICT_MAX_PHOTOS": "4",
    }
    with ServiceProcess("inference", env, tmp_path) as process:
        yield process


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(urlsplit(service.url).netloc)
    yield client
    client.close()


def photos_input(photos: list[bytes], *, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("photo", [len(photos)], "BYTES")
    # JSON cannot carry raw bytes: in the JSON form each photo travels base64-encoded.
    values = photos if binary else [base64.b64encode(photo) for photo in photos]
    tensor.set_data_from_numpy(np.array(values, dtype=np.object_), binary_data=binary)
    return tensor


def strings(values: np.ndarray) -> list[str]:
    """BYTES elements as text: bytes from the binary form, str from the JSON form."""
    return [value.decode() if isinstance(value, bytes) else value for value in values]


def test_health_and_metadata_through_the_triton_client(
    client: triton.InferenceServerClient,
) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(MODEL)
    assert client.is_model_ready(MODEL, "tiny-1")
    assert not client.is_model_ready(MODEL, "no-such-version")
    assert not client.is_model_ready("another-model")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata(MODEL)
    assert metadata["versions"] == ["tiny-1"]
    assert metadata["inputs"] == [{"name": "photo", "datatype": "BYTES", "shape": [-1]}]
    outputs = {output["name"]: output for output in metadata["outputs"]}
    assert outputs["probabilities"] == {
        "name": "probabilities",
        "datatype": "FP32",
        "shape": [-1, 2],
    }
    assert outputs["pet_score"]["datatype"] == "FP32"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_a_batch_is_inferred_stored_and_counted(
    client: triton.InferenceServerClient, service: ServiceProcess, database_url: str, binary: bool
) -> None:
    before = _predictions_counted(service)
    photos = [jpeg(RED), jpeg(BLUE), jpeg(RED)]
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary)
        for name in ("probabilities", "pet_score", "label", "prediction_id")
    ]
    result = client.infer(
        MODEL, [photos_input(photos, binary=binary)], outputs=outputs, request_id="req-7"
    )
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (3, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert [row.argmax() for row in probabilities] == [0, 1, 0]  # cat, dog, cat
    assert result.as_numpy("pet_score").shape == (3,)
    assert strings(result.as_numpy("label")) == ["cat", "dog", "cat"]
    response = result.get_response()
    assert response["model_name"] == MODEL
    assert response["model_version"] == "tiny-1"
    assert response["id"] == "req-7"
    ids = strings(result.as_numpy("prediction_id"))
    with psycopg.connect(database_url) as connection:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = connection.execute(
                "SELECT id::text, prediction_result, model_version FROM monitoring"
                " WHERE id = ANY(%s::uuid[])",
                (ids,),
            ).fetchall()
            if len(rows) == 3:
                break
            time.sleep(0.1)
    assert {row[0]: (row[1], row[2]) for row in rows} == {
        ids[0]: ("cat", "tiny-1"),
        ids[1]: ("dog", "tiny-1"),
        ids[2]: ("cat", "tiny-1"),
    }
    assert _predictions_counted(service) - before == 3


def test_a_version_in_the_path_answers_and_an_unknown_one_is_404(
    client: triton.InferenceServerClient,
) -> None:
    result = client.infer(MODEL, [photos_input([jpeg(BLUE)], binary=True)], model_version="tiny-1")
    assert result.get_response()["model_version"] == "tiny-1"
    # No outputs named: the client asks for all of them in binary form.
    assert result.as_numpy("probabilities")[0].argmax() == 1
    with pytest.raises(InferenceServerException) as refused:
        client.infer(MODEL, [photos_input([jpeg(BLUE)], binary=True)], model_version="9.9")
    assert refused.value.status() == "404"
    assert "no version '9.9'" in refused.value.message()


def test_bad_requests_are_clear_4xx_in_the_protocols_error_shape(service: ServiceProcess) -> None:
    url = f"{service.url}/v2/models/{MODEL}/infer"
    photo = base64.b64encode(jpeg()).decode()

    def infer(body: object) -> httpx.Response:
        return httpx.post(url, content=json.dumps(body), timeout=10)

    def tensor(**overrides: object) -> dict[str, object]:
        return {
            "inputs": [
                {"name": "photo", "shape": [1], "datatype": "BYTES", "data": [photo], **overrides}
            ]
        }

    cases = {
        "not json": httpx.post(url, content=b"{nope", timeout=10),
        "wrong datatype": infer(tensor(datatype="FP32")),
        "wrong input": infer(tensor(name="image")),
        "shape and data disagree": infer(tensor(shape=[2])),
        "too many photos": infer(tensor(shape=[5], data=[photo] * 5)),
        "not base64": infer(tensor(data=["%%%"])),
        "not an image": infer(tensor(data=[base64.b64encode(b"hello").decode()])),
        "unknown output": infer({**tensor(), "outputs": [{"name": "logits"}]}),
        "no inputs": infer({"inputs": []}),
    }
    for case, response in cases.items():
        assert response.status_code == 400, (case, response.text)
        assert response.json()["error"], case
    unknown = httpx.post(
        f"{service.url}/v2/models/another/infer", content=json.dumps(tensor()), timeout=10
    )
    assert unknown.status_code == 404 and "tiny-cat-dog" in unknown.json()["error"]
    metrics = httpx.get(f"{service.url}/metrics", timeout=10).text
    assert 'cv_images_rejected_total{reason="InvalidInferRequest"}' in metrics
    assert 'cv_images_rejected_total{reason="InvalidImage"}' in metrics


def _predictions_counted(service: ServiceProcess) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("cv_predictions_total{")
    )
