"""Open Inference Protocol bodies never hold the worker's event loop.

A worker answers every request, `/health` included, from one event loop: a body parsed, or an
answer built, on it stops them all (the liveness probe then restarts the pod). Each test sends
what an anonymous client may send to `/v2/.../infer` to a real service process while another
thread times `GET /health`, and checks every answer, refusals included, is counted.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from harness.services import ServiceProcess
from harness.stack import wait_for
from tests.support.images import jpeg
from tests.system.test_hostile_http import answered

pytestmark = pytest.mark.slow

MODEL = "tiny-cat-dog"
INFER = "/v2/models/{name}/infer"
# What the liveness probe tolerates is seconds; a loop held for this long is already a stall
# every user sees.
HEALTH_WITHIN_S = 0.25


@pytest.fixture(scope="module")
def inference(
    tmp_path_factory: pytest.TempPathFactory, module_database: str, tiny_model_path: Path
) -> Iterator[ServiceProcess]:
    env = {"DATABASE_URL": module_database, "MODEL_PATH": str(tiny_model_path)}
    with ServiceProcess("inference", env, tmp_path_factory.mktemp("oip")) as service:
        yield service


def slowest_health_while(service: ServiceProcess, action: Callable[[], object]) -> float:
    """The longest `GET /health` took (infinite if it failed), probed every 20 ms while `action`
    runs."""
    done = threading.Event()
    slowest = [0.0]

    def probe() -> None:
        with httpx.Client(timeout=30) as client:
            while not done.is_set():
                started = time.perf_counter()
                try:
                    healthy = client.get(f"{service.url}/health").status_code == 200
                except httpx.TransportError:
                    healthy = False
                took = time.perf_counter() - started
                slowest[0] = max(slowest[0], took if healthy else float("inf"))
                time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        time.sleep(0.1)  # the prober's connection is open and warm
        action()
    finally:
        done.set()
        prober.join()
    return slowest[0]


def infer(service: ServiceProcess, body: bytes, headers: dict[str, str] | None = None) -> int:
    response = httpx.post(
        f"{service.url}/v2/models/{MODEL}/infer", content=body, headers=headers, timeout=600
    )
    if response.status_code != 200:
        assert response.json()["error"], response.text
    return response.status_code


def rejections(service: ServiceProcess) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    prefix = 'cv_images_rejected_total{reason="InvalidInferRequest"} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def tiny_photos_body(count: int, **fields: object) -> dict[str, object]:
    encoded = base64.b64encode(jpeg((250, 10, 10), (8, 8))).decode()
    tensor = {"name": "photo", "shape": [count], "datatype": "BYTES", "data": [encoded] * count}
    return {"inputs": [tensor], **fields}


def test_thousands_of_repeated_outputs_are_refused_at_once(inference: ServiceProcess) -> None:
    body = tiny_photos_body(
        16, outputs=[{"name": "prediction_id"}] * 4_000, parameters={"binary_data_output": True}
    )
    requests_before, refused_before = answered(inference, INFER), rejections(inference)
    statuses: list[int] = []
    took: list[float] = []

    def send() -> None:
        started = time.perf_counter()
        statuses.append(infer(inference, json.dumps(body).encode()))
        took.append(time.perf_counter() - started)

    slowest = slowest_health_while(inference, send)
    assert statuses == [400]
    assert took[0] < 1.0
    assert slowest < HEALTH_WITHIN_S
    wait_for(lambda: answered(inference, INFER)["4xx"] == requests_before["4xx"] + 1, 10, "4xx")
    assert rejections(inference) - refused_before == 1


def json_bombs() -> dict[str, bytes]:
    """About 10 MB each, every one refused (N12's bodies)."""
    tensor = {"name": "photo", "shape": [1], "datatype": "BYTES"}
    return {
        "input tensors": json.dumps({"inputs": [tensor] * 170_000}).encode(),
        "numbers in data": json.dumps({"inputs": [{**tensor, "data": [1] * 3_000_000}]}).encode(),
        "keys in parameters": json.dumps(
            {"inputs": [tensor], "parameters": {f"k{i}": 1 for i in range(700_000)}}
        ).encode(),
    }


def test_bodies_costly_to_parse_are_refused_without_holding_the_loop(
    inference: ServiceProcess,
) -> None:
    bodies = json_bombs()
    # 2.5 million empty BYTES elements in the binary part, where the shape says 1.
    tensor = {"name": "photo", "shape": [1], "datatype": "BYTES"}
    sizes = {"binary_data_size": 4 * 2_500_000}
    header = json.dumps({"inputs": [{**tensor, "parameters": sizes}]}).encode()
    binary_headers = {"Inference-Header-Content-Length": str(len(header))}
    requests_before, refused_before = answered(inference, INFER), rejections(inference)
    statuses: dict[str, int] = {}

    def send() -> None:
        for case, body in bodies.items():
            statuses[case] = infer(inference, body)
        statuses["BYTES elements"] = infer(
            inference, header + b"\0\0\0\0" * 2_500_000, binary_headers
        )

    slowest = slowest_health_while(inference, send)
    assert set(statuses.values()) == {400}
    assert slowest < HEALTH_WITHIN_S
    expected = requests_before["4xx"] + len(statuses)
    wait_for(lambda: answered(inference, INFER)["4xx"] == expected, 10, "4xx")
    assert rejections(inference) - refused_before == len(statuses)


def test_large_valid_requests_are_answered_and_health_keeps_answering(
    inference: ServiceProcess,
) -> None:
    """What the bounds above must not refuse: the largest requests a client needs. The JSON
    parser holds the interpreter lock even in a thread, so a 10 MB body still holds the loop
    for the tens of milliseconds one parse takes, not more."""
    # 16 photos of 450 KB: a 9.6 MB JSON body, most of what /v2 accepts.
    encoded = base64.b64encode(jpeg((250, 10, 10), (8, 8)) + b"\0" * 450_000).decode()
    tensor = {"name": "photo", "shape": [16], "datatype": "BYTES", "data": [encoded] * 16}
    body = json.dumps({"inputs": [tensor]}).encode()
    requests_before = answered(inference, INFER)
    statuses: list[int] = []

    def send() -> None:
        statuses.extend(infer(inference, body) for _ in range(8))

    slowest = slowest_health_while(inference, send)
    assert statuses == [200] * 8
    assert slowest < HEALTH_WITHIN_S
    expected = requests_before["2xx"] + 8
    wait_for(lambda: answered(inference, INFER)["2xx"] == expected, 10, "2xx")
