"""Cheap uploads cannot buy expensive work: one client's decoding is bounded, others unharmed.

A GIF of a few kilobytes can declare 36 megapixels; decoding it costs the CPU of a hundred
ordinary photos, and only the decode says so.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from harness.services import ServiceProcess
from tests.support.images import jpeg

pytestmark = pytest.mark.slow

BUDGET_MEGAPIXELS = 80


@pytest.fixture
def inference(tmp_path: Path, database_url: str, model_path: Path) -> Iterator[ServiceProcess]:
    env = {
        "DATABASE_URL": database_url,
        "MODEL_PATH": str(model_path),
        "DECODE_MEGAPIXELS_PER_CLIENT_PER_MINUTE": str(BUDGET_MEGAPIXELS),
    }
    with ServiceProcess("inference", env, tmp_path) as service:
        yield service


def huge_gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (6000, 6000), 1).save(out, format="GIF")
    data = out.getvalue()
    assert len(data) < 100_000
    return data


def client_from(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60)


def test_one_client_cannot_buy_unbounded_decoding_and_others_are_served(
    inference: ServiceProcess,
) -> None:
    gif = huge_gif()  # 36 megapixels
    with client_from("127.0.0.21") as greedy, client_from("127.0.0.22") as other:
        statuses = [
            greedy.post(f"{inference.url}/predict", files={"file": ("a.gif", gif)}).status_code
            for _ in range(4)
        ]
        refused = greedy.post(f"{inference.url}/predict", files={"file": ("a.gif", gif)})
        served = other.post(f"{inference.url}/predict", files={"file": ("a.jpg", jpeg())})
    # 2 × 36 megapixels fit in the budget of 80, a third does not.
    assert statuses == [200, 200, 429, 429], statuses
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert served.status_code == 200


def test_jpeg_photos_cost_what_their_reduced_decoding_costs(inference: ServiceProcess) -> None:
    # 4000 × 3000 (12 megapixels) decodes at 1/8 scale: far more than 80 / 12 fit.
    photo = jpeg(size=(4000, 3000))
    with client_from("127.0.0.23") as client:
        statuses = {
            client.post(f"{inference.url}/predict", files={"file": ("a.jpg", photo)}).status_code
            for _ in range(12)
        }
    assert statuses == {200}
