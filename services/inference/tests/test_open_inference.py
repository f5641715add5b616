"""The Open Inference Protocol, spoken to by the official Triton client over real HTTP.

The service runs as a real process with the tiny colour model (red = cat, blue = dog), so the
answers are known; every photo inferred must also be stored and counted like `/predict`'s.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import psycopg
import pytest
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from harness.services import ServiceProcess
from services.inference.lineup import canary_draw
from tests.support.images import jpeg
from tests.support.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow

RED, BLUE = (250, 10, 10), (10, 10, 250)
MODEL = "tiny-cat-dog"
TOKEN = "open-inference-test-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
# Small photos, so that a photo over MAX_UPLOAD_BYTES (its lowest, 1 KiB) is easy to make.
SIZE = (64, 64)


def photo(color: tuple[int, int, int] = RED) -> bytes:
    return jpeg(color, SIZE)


@pytest.fixture
def service(database_url: str, tiny_model_path: Path, tmp_path: Path) -> Iterator[ServiceProcess]:
    env = {
        "DATABASE_URL": database_url,
        "MODEL_PATH": str(tiny_model_path),
        "PREDICT_MAX_PHOTOS": "4",
        "MAX_UPLOAD_BYTES": "1024",
        "INFERENCE_ADMIN_TOKEN": TOKEN,
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


def test_configuration_repository_and_what_is_not_offered_through_the_triton_client(
    client: triton.InferenceServerClient,
) -> None:
    assert {"model_configuration", "model_repository"} <= set(
        client.get_server_metadata()["extensions"]
    )
    config = client.get_model_config(MODEL)
    assert config["name"] == MODEL
    assert config["max_batch_size"] == 0
    assert config["input"] == [{"name": "photo", "data_type": "TYPE_STRING", "dims": [-1]}]
    assert {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [-1, 2]} in config["output"]
    assert client.get_model_config(MODEL, "tiny-1")["version_policy"] == {
        "specific": {"versions": ["tiny-1"]}
    }
    assert client.get_model_repository_index() == [
        {"name": MODEL, "version": "tiny-1", "state": "READY"}
    ]
    # What is not offered is refused in the protocol's shape: the client reads the reason.
    for call in (
        lambda: client.get_inference_statistics(),
        lambda: client.get_inference_statistics(MODEL),
        lambda: client.get_model_config("another-model"),
    ):
        with pytest.raises(InferenceServerException) as refused:
            call()
        assert refused.value.status() == "404"
        assert "decoding the response" not in refused.value.message()
    with pytest.raises(InferenceServerException, match="statistics are Prometheus metrics"):
        client.get_inference_statistics(MODEL)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_a_batch_is_inferred_stored_and_counted(
    client: triton.InferenceServerClient, service: ServiceProcess, database_url: str, binary: bool
) -> None:
    before = _predictions_counted(service)
    photos = [photo(RED), photo(BLUE), photo(RED)]
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
    result = client.infer(MODEL, [photos_input([photo(BLUE)], binary=True)], model_version="tiny-1")
    assert result.get_response()["model_version"] == "tiny-1"
    # No outputs named: the client asks for all of them in binary form.
    assert result.as_numpy("probabilities")[0].argmax() == 1
    with pytest.raises(InferenceServerException) as refused:
        client.infer(MODEL, [photos_input([photo(BLUE)], binary=True)], model_version="9.9")
    assert refused.value.status() == "404"
    assert "by name only as its active version 'tiny-1'" in refused.value.message()


def test_bad_requests_are_clear_4xx_in_the_protocols_error_shape(service: ServiceProcess) -> None:
    url = f"{service.url}/v2/models/{MODEL}/infer"
    encoded = base64.b64encode(photo()).decode()
    body = json.dumps(
        {"inputs": [{"name": "photo", "shape": [1], "datatype": "BYTES", "data": [encoded]}]}
    )

    def infer(request: object, header_length: bytes | None = None) -> httpx.Response:
        content = request if isinstance(request, bytes) else json.dumps(request).encode()
        headers = (
            {} if header_length is None else {"Inference-Header-Content-Length": header_length}
        )
        return httpx.post(url, content=content, headers=headers, timeout=10)

    def tensor(**overrides: object) -> dict[str, object]:
        fields = {"name": "photo", "shape": [1], "datatype": "BYTES", "data": [encoded]}
        return {"inputs": [{**fields, **overrides}]}

    # Says 10 bytes of binary tensor data follow; none do.
    binary_header = json.dumps(tensor(data=None, parameters={"binary_data_size": 10})).encode()
    before = _rejections(service)
    malformed = {
        "not json": infer(b"{nope"),
        "json nested too deeply": infer(b"[" * 10_000),
        "wrong datatype": infer(tensor(datatype="FP32")),
        "wrong input": infer(tensor(name="image")),
        "shape and data disagree": infer(tensor(shape=[2])),
        "not base64": infer(tensor(data=["%%%"])),
        "unknown output": infer({**tensor(), "outputs": [{"name": "logits"}]}),
        "no inputs": infer({"inputs": []}),
        "header length not a number": infer(body.encode(), b"\xb2"),
        "header length past the body": infer(body.encode(), b"9" * 5000),
        "binary data missing": infer(binary_header, str(len(binary_header)).encode()),
        "binary data past the shape": infer(
            binary_header + b"\0" * 10, str(len(binary_header)).encode()
        ),
        "an output asked for twice": infer(
            {**tensor(), "outputs": [{"name": "label"}, {"name": "pet_score"}, {"name": "label"}]}
        ),
        "an id too long to echo": infer({**tensor(), "id": "x" * 257}),
        "a number of 5000 digits": infer(b'{"inputs": ' + b"1" * 5000 + b"}"),
        "more JSON values than a request needs": infer(
            {**tensor(), "parameters": {"k": [0] * 2000}}
        ),
    }
    refused = {
        "too many photos": (400, "TooManyPhotos", infer(tensor(shape=[5], data=[encoded] * 5))),
        "photo over MAX_UPLOAD_BYTES": (
            413,
            "UploadTooLarge",
            infer(tensor(data=[base64.b64encode(jpeg(RED, (320, 240))).decode()])),
        ),
        "not an image": (
            400,
            "InvalidImage",
            infer(tensor(data=[base64.b64encode(b"hello").decode()])),
        ),
        "unknown model": (
            404,
            "UnknownModel",
            httpx.post(f"{service.url}/v2/models/another/infer", content=body, timeout=10),
        ),
    }
    for case, response in malformed.items():
        assert response.status_code == 400, (case, response.text)
        assert response.json()["error"], case
    for case, (status, _, response) in refused.items():
        assert response.status_code == status, (case, response.text)
        assert response.json()["error"], case
    assert "tiny-cat-dog" in refused["unknown model"][2].json()["error"]
    # Probing for a model is no refused upload.
    assert httpx.get(f"{service.url}/v2/models/another", timeout=10).status_code == 404
    assert httpx.get(f"{service.url}/v2/models/{MODEL}/versions/9/ready").status_code == 404
    counted = {
        reason: value - before.get(reason, 0.0) for reason, value in _rejections(service).items()
    }
    assert counted == {
        "InvalidInferRequest": len(malformed),
        **{reason: 1 for _, reason, _ in refused.values()},
    }


def test_each_output_is_answered_once_and_a_repeated_one_is_refused(
    client: triton.InferenceServerClient,
) -> None:
    photos = [photos_input([photo(RED), photo(BLUE)], binary=True)]
    every_output = [
        triton.InferRequestedOutput(name, binary_data=binary)
        for name, binary in [("probabilities", True), ("pet_score", False), ("label", True)]
    ] + [triton.InferRequestedOutput("prediction_id")]
    result = client.infer(MODEL, photos, outputs=every_output)
    assert [output["name"] for output in result.get_response()["outputs"]] == [
        "probabilities", "pet_score", "label", "prediction_id",
    ]  # fmt: skip
    assert strings(result.as_numpy("label")) == ["cat", "dog"]
    # Each entry would repeat the output in the answer: thousands made it grow by the square.
    repeated = [triton.InferRequestedOutput("prediction_id", binary_data=True)] * 500
    with pytest.raises(InferenceServerException) as refused:
        client.infer(MODEL, photos, outputs=repeated)
    assert refused.value.status() == "400"
    assert "repeated: ['prediction_id']" in refused.value.message()


def test_with_a_canary_each_photo_says_which_version_answered_it(
    client: triton.InferenceServerClient, service: ServiceProcess, tmp_path: Path, database_url: str
) -> None:
    candidate = build_tiny_model(tmp_path / "candidate", version="tiny-2", inverted=True)
    admin = {"Authorization": f"Bearer {TOKEN}"}
    files = {
        "model": ("model.onnx", candidate.read_bytes()),
        "card": ("model.json", candidate.with_suffix(".json").read_bytes()),
    }
    registered = httpx.post(f"{service.url}/admin/models", files=files, headers=admin, timeout=30)
    assert registered.status_code == 201, registered.text
    canary = httpx.post(
        f"{service.url}/admin/models/tiny-2/canary", json={"share": 0.5}, headers=admin
    )
    assert canary.status_code == 200, canary.text
    # A candidate is no public version: neither listed nor named.
    assert client.get_model_metadata(MODEL)["versions"] == ["tiny-1"]
    assert client.get_model_repository_index() == [
        {"name": MODEL, "version": "tiny-1", "state": "READY"}
    ]
    assert not client.is_model_ready(MODEL, "tiny-2")

    answers: dict[str, str] = {}
    # The canary draw is random: a batch of 4 is split between the versions 7 times in 8.
    for _ in range(20):
        result = client.infer(MODEL, [photos_input([photo(RED)] * 4, binary=True)])
        ids = strings(result.as_numpy("prediction_id"))
        answered_by = result.get_response()["parameters"]["answered_by"].split(",")
        for prediction_id, version, label in zip(
            ids, answered_by, strings(result.as_numpy("label")), strict=True
        ):
            drawn = canary_draw(uuid.UUID(prediction_id)) < 0.5
            assert version == ("tiny-2" if drawn else "tiny-1")
            assert label == ("dog" if drawn else "cat")  # the canary is inverted
            answers[prediction_id] = version
        single = set(answered_by)
        expected = answered_by[0] if len(single) == 1 else "tiny-1"
        assert result.get_response()["model_version"] == expected
        if len(single) == 2:
            break
    else:
        pytest.fail("no batch of 20 was answered by both versions")

    pinned = client.infer(
        MODEL, [photos_input([photo(RED)] * 4, binary=False)], model_version="tiny-1"
    )
    assert pinned.get_response()["model_version"] == "tiny-1"
    assert strings(pinned.as_numpy("label")) == ["cat"] * 4
    for prediction_id in strings(pinned.as_numpy("prediction_id")):
        answers[prediction_id] = "tiny-1"
    assert _stored_versions(database_url, list(answers)) == answers


def test_a_canary_or_shadow_named_in_the_path_is_refused_counted_and_writes_nothing(
    service: ServiceProcess, tmp_path: Path, database_url: str
) -> None:
    # By name, a caller could send the canary slow batches or its chosen photos (and so retire
    # it) and read the shadow, whose answers would then be stored as served ones.
    for version, role, share in (("tiny-2", "canary", {"share": 0.5}), ("tiny-3", "shadow", None)):
        _register(service, build_tiny_model(tmp_path / version, version=version, inverted=True))
        made = httpx.post(
            f"{service.url}/admin/models/{version}/{role}", json=share, headers=ADMIN, timeout=10
        )
        assert made.status_code == 200, made.text
    with psycopg.connect(database_url) as connection:
        (stored_before,) = connection.execute("SELECT count(*) FROM monitoring").fetchone()
    before = _rejections(service)
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "photo",
                    "shape": [4],
                    "datatype": "BYTES",
                    "data": [base64.b64encode(photo(RED)).decode()] * 4,
                }
            ]
        }
    )
    base = f"{service.url}/v2/models/{MODEL}/versions"
    refused = [
        httpx.post(f"{base}/{version}/infer", content=body, timeout=10)
        for version in ("tiny-2", "tiny-3", "9.9")
    ]
    for response in refused:
        assert response.status_code == 404, response.text
        # The same words for a canary, a shadow and a version that does not exist.
        assert response.json() == {
            "error": f"model {MODEL!r} answers by name only as its active version 'tiny-1'"
        }
    assert _rejections(service).get("UnknownModel", 0) - before.get("UnknownModel", 0) == 3
    for version in ("tiny-2", "tiny-3"):
        assert httpx.get(f"{base}/{version}/ready", timeout=10).status_code == 404
    # The active version still answers by name, and only its answers are stored.
    served = httpx.post(f"{base}/tiny-1/infer", content=body, timeout=10)
    assert served.status_code == 200, served.text
    ids = served.json()["outputs"][3]["data"]
    assert _stored_versions(database_url, ids) == dict.fromkeys(ids, "tiny-1")
    with psycopg.connect(database_url) as connection:
        (stored_after,) = connection.execute("SELECT count(*) FROM monitoring").fetchone()
    assert stored_after - stored_before == len(ids)


def _register(service: ServiceProcess, model: Path) -> None:
    files = {
        "model": ("model.onnx", model.read_bytes()),
        "card": ("model.json", model.with_suffix(".json").read_bytes()),
    }
    registered = httpx.post(f"{service.url}/admin/models", files=files, headers=ADMIN, timeout=30)
    assert registered.status_code == 201, registered.text


def _stored_versions(database_url: str, ids: list[str]) -> dict[str, str]:
    """Prediction id -> model_version of the rows stored, once all of them are."""
    with psycopg.connect(database_url) as connection:
        deadline = time.monotonic() + 10
        while True:
            rows = connection.execute(
                "SELECT id::text, model_version FROM monitoring WHERE id = ANY(%s::uuid[])",
                (ids,),
            ).fetchall()
            if len(rows) == len(ids) or time.monotonic() > deadline:
                return dict(rows)
            time.sleep(0.1)


def _rejections(service: ServiceProcess) -> dict[str, float]:
    families = text_string_to_metric_families(httpx.get(f"{service.url}/metrics", timeout=10).text)
    return {
        sample.labels["reason"]: sample.value
        for family in families
        for sample in family.samples
        if sample.name == "cv_images_rejected_total"
    }


def _predictions_counted(service: ServiceProcess) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("cv_predictions_total{")
    )
