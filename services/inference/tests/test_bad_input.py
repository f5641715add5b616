"""Bad input gets the contract's 4xx with a clear detail, never a 5xx."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from tests.support.images import encode, jpeg, png_bomb, solid


def post_file(client: TestClient, data: bytes, mime: str = "image/jpeg"):
    return client.post("/predict", files={"file": ("upload", data, mime)})


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 400),
        (b"hello, I am a text file", 400),
        (jpeg()[:300], 400),  # truncated
        (jpeg()[:20] + b"\x00" * 2000, 400),  # header then garbage
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 100, 400),
        (encode(solid((1, 2, 3)), "TIFF"), 415),
        (encode(solid((1, 2, 3)), "ICO"), 415),
        (b"%PDF-1.4 not an image", 415),
        (png_bomb(), 413),
    ],
    ids=["empty", "text", "truncated", "garbage", "broken_heic", "tiff", "ico", "pdf", "bomb"],
)
def test_bad_files_get_a_clear_4xx(client: TestClient, data: bytes, status: int) -> None:
    response = post_file(client, data)
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]


def test_missing_file_field_is_422(client: TestClient) -> None:
    response = client.post("/predict", data={"rgpd_consent": "true"}, files={"other": ("x", b"y")})
    assert response.status_code == 422
    assert "file" in response.json()["detail"]


def test_not_multipart_is_422(client: TestClient) -> None:
    response = client.post("/predict", json={"file": "abc"})
    assert response.status_code == 422


def test_broken_multipart_is_422(client: TestClient) -> None:
    response = client.post(
        "/predict",
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert response.status_code in {400, 422}
    assert response.status_code < 500


def test_invalid_consent_value_is_422(client: TestClient) -> None:
    response = client.post(
        "/predict", files={"file": ("a.jpg", jpeg(), "image/jpeg")}, data={"rgpd_consent": "maybe"}
    )
    assert response.status_code == 422
    assert "rgpd_consent" in response.json()["detail"]


def declared_oversized(client: TestClient) -> httpx.Response:
    """A body whose declared length is twice the limit (only 10 bytes follow)."""
    limit = client.app.state.settings.max_upload_bytes  # type: ignore[attr-defined]
    return client.post(
        "/predict",
        content=b"x" * 10,
        headers={
            "content-type": "multipart/form-data; boundary=b",
            "content-length": str(limit * 2),
        },
    )


def post_declared_oversized(client: TestClient) -> int:
    """The status of `declared_oversized`."""
    return declared_oversized(client).status_code


# Every refusal names the limit as the docs do (MAX_UPLOAD_BYTES, 10 MiB by default), never the
# form's framing added to it.
def test_declared_oversized_body_is_refused_before_reading(client: TestClient) -> None:
    response = declared_oversized(client)
    assert response.status_code == 413
    assert response.json()["detail"] == "request body exceeds 10 MiB"


def test_streamed_oversized_body_is_cut_off(client: TestClient) -> None:
    limit = client.app.state.settings.max_upload_bytes  # type: ignore[attr-defined]
    sent = 0

    def chunks():
        nonlocal sent
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        while sent < limit * 3:
            sent += 1 << 20
            yield b"\xff" * (1 << 20)

    response = client.post(
        "/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 413
    assert response.json()["detail"] == "request body exceeds 10 MiB"


def test_file_just_over_the_limit_is_413(client: TestClient) -> None:
    limit = client.app.state.settings.max_upload_bytes  # type: ignore[attr-defined]
    response = post_file(client, jpeg() + b"\x00" * (limit - len(jpeg()) + 1))
    assert response.status_code == 413
    assert response.json()["detail"] == "a file exceeds 10 MiB"


def _count(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def test_uploads_the_body_guard_refuses_are_counted(client: TestClient) -> None:
    answered = {"handler": "/predict", "method": "POST", "status": "4xx"}
    before = _count("http_requests_total", **answered)
    refused_before = _count("cv_images_rejected_total", reason="BodyTooLarge")
    assert post_declared_oversized(client) == 413
    headers = client.post("/predict", headers={"x-padding": "p" * 20_000})
    assert headers.status_code == 431
    assert _count("http_requests_total", **answered) - before == 2
    assert _count("cv_images_rejected_total", reason="BodyTooLarge") - refused_before == 1
    assert _count("cv_images_rejected_total", reason="HeadersTooLarge") >= 1


def test_more_photos_than_the_batch_limit_is_a_clear_422(client: TestClient) -> None:
    limit = client.app.state.settings.predict_max_photos  # type: ignore[attr-defined]
    files = [("file", (f"{i}.jpg", jpeg(), "image/jpeg")) for i in range(limit + 1)]
    response = client.post("/predict", files=files)
    assert response.status_code == 422
    assert "malformed multipart form" in response.json()["detail"]
    ok = client.post("/predict", files=files[:limit])
    assert ok.status_code == 200
    assert len(ok.json()["predictions"]) == limit


def test_one_bad_photo_in_a_batch_refuses_the_request(client: TestClient) -> None:
    files = [
        ("file", ("good.jpg", jpeg(), "image/jpeg")),
        ("file", ("bad.jpg", b"not an image", "image/jpeg")),
    ]
    response = client.post("/predict", files=files)
    assert response.status_code == 400
