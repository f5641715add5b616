"""What the benchmarks share: photos to send, a database to write to, result files."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import psycopg
from PIL import Image

from services.common.migrate import apply_migrations, create_database_if_missing

RESULTS_DIR = Path(__file__).with_name("results")
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/cv_bench"


def bench_photos() -> Path:
    """The real val photos when CV_DATASET_DIR is set, else 40 synthetic 500x375 JPEGs."""
    dataset = os.environ.get("CV_DATASET_DIR")
    if dataset and Path(dataset, "val").is_dir():
        folder = Path(tempfile.mkdtemp(prefix="cv-bench-photos-"))
        for photo in sorted(Path(dataset, "val").glob("*/*.jpg")):
            (folder / f"{photo.parent.name}-{photo.name}").symlink_to(photo)
        return folder
    folder = Path(tempfile.mkdtemp(prefix="cv-bench-synthetic-"))
    rng = np.random.default_rng(0)
    for index in range(40):
        pixels = rng.integers(0, 255, size=(375, 500, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"synthetic-{index}.jpg", quality=85)
    return folder


def bench_database_url() -> str:
    """BENCH_DATABASE_URL, else a `cv_bench` database on the local server; migrated."""
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    create_database_if_missing(url)
    apply_migrations(url)
    return url


def inference_env(**extra: str) -> tuple[dict[str, str], Path]:
    """The environment of an inference service under benchmark, and its work folder.

    The bench database is emptied of predictions and of model versions, so the service makes
    MODEL_PATH its active version; registered files go to the work folder.
    """
    database_url = bench_database_url()
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("TRUNCATE monitoring CASCADE")
        connection.execute("TRUNCATE model_events, model_versions CASCADE")
    work = Path(tempfile.mkdtemp(prefix="cv-bench-inference-"))
    env = {
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        "MODEL_STORE_DIR": str(work / "store"),
        **extra,
    }
    return env, work


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (uvicorn workers)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(child) for child in children.read_text().split()]
    for one in pids:
        for line in Path(f"/proc/{one}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def write_result(topic: str, result: dict[str, object]) -> Path:
    """Save a benchmark's numbers as JSON."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{topic}.json"
    path.write_text(json.dumps(result, indent=2))
    return path
