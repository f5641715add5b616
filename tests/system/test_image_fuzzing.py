"""Mutated real JPEG/PNG/GIF/WebP files: only the contract's 4xx, no crash, bounded memory."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.services import REPO_ROOT, ServiceProcess
from tests.support.decoder_fuzz import seed_files

pytestmark = pytest.mark.slow

# The decoder process holds Python, numpy, Pillow and onnxruntime's import: ~150 MiB. The bound
# leaves room for a 40-megapixel image decoded once, and nothing like a bomb's gigabytes.
PEAK_RSS_BOUND_MIB = 700


def dataset() -> Path | None:
    configured = os.environ.get("CV_DATASET_DIR")
    return Path(configured) if configured and Path(configured).is_dir() else None


def test_decoder_survives_mutated_images_within_a_memory_bound() -> None:
    command = [sys.executable, "-m", "tests.support.decoder_fuzz", "--examples", "2000"]
    if dataset():
        command += ["--dataset", str(dataset())]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["examples"] >= 2000
    assert set(report["outcomes"]) <= {
        "decoded",
        "InvalidImage",
        "UnsupportedImage",
        "ImageTooLarge",
    }
    assert report["outcomes"].get("InvalidImage", 0) > 0  # the mutations did break files
    assert report["peak_rss_mib"] < PEAK_RSS_BOUND_MIB, report


def test_service_answers_mutated_uploads_with_contract_statuses_only(
    tmp_path: Path, database_url: str, model_path: Path
) -> None:
    rng = random.Random(7)
    seeds = seed_files(dataset())
    env = {"DATABASE_URL": database_url, "MODEL_PATH": str(model_path)}
    statuses: dict[int, int] = {}
    with ServiceProcess("inference", env, tmp_path) as service, httpx.Client(timeout=30) as client:
        for _ in range(150):
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randint(1, 6)):
                position = rng.randrange(len(data))
                if rng.random() < 0.3:
                    del data[position:]
                    if not data:
                        break
                else:
                    data[position] ^= rng.randint(1, 255)
            response = client.post(f"{service.url}/predict", files={"file": ("f", bytes(data))})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code in {200, 400, 413, 415}, response.text
            if response.status_code != 200:
                assert response.json()["detail"]
        assert client.get(f"{service.url}/health").status_code == 200
    assert service.process is not None
    assert service.process.returncode in (0, -15), "the service must stop cleanly, not crash"
