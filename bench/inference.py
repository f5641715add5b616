"""Inference benchmark: the in-process ceiling, the service under closed-loop load, memory.

`python -m bench.inference --help`. Every service figure is reported as a ratio to the
ceiling measured in the same run, on the same photos, with the same model settings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from bench.loadgen import percentile
from bench.support import bench_photos, inference_env, rss_bytes, write_result
from catdog.images import ImageLimits
from catdog.model import Classifier
from harness.services import ServiceProcess
from services.inference.predictor import Predictor
from services.inference.settings import Settings


def measure_ceiling(photos: list[bytes], settings: Settings, rounds: int) -> dict[str, float]:
    """Decode + preprocess + model in a loop, one process: sequential and on every thread."""
    classifier = Classifier(
        settings.model_path,
        intra_op_threads=settings.onnx_intra_op_threads,
        providers=settings.onnx_providers,
    )
    predictor = Predictor(classifier, ImageLimits(max_pixels=settings.max_image_pixels))
    for photo in photos[:10]:
        predictor.predict(photo)
    work = photos * rounds
    timings = []
    started = time.perf_counter()
    for photo in tqdm(work, desc="ceiling, 1 thread", leave=False):
        one = time.perf_counter()
        predictor.predict(photo)
        timings.append(time.perf_counter() - one)
    sequential_s = time.perf_counter() - started
    with ThreadPoolExecutor(settings.inference_threads) as pool:
        started = time.perf_counter()
        list(pool.map(predictor.predict, work))
        parallel_s = time.perf_counter() - started
    return {
        "images": len(work),
        "sequential_img_s": len(work) / sequential_s,
        "per_image_p50_ms": percentile(timings, 0.5) * 1000,
        "threads": settings.inference_threads,
        "parallel_img_s": len(work) / parallel_s,
    }


def load(
    url: str, photos: Path, concurrency: int, seconds: float, requests: int | None = None
) -> dict:
    """Run the load generator in its own process."""
    command = [
        sys.executable, "-m", "bench.loadgen", "--url", f"{url}/predict", "--photos", str(photos),
        "--concurrency", str(concurrency), "--seconds", str(seconds),
    ]  # fmt: skip
    if requests:
        command += ["--requests", str(requests), "--warmup", "0"]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.inference", description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0, help="per concurrency level")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the photos (ceiling)")
    parser.add_argument("--memory-requests", type=int, default=10_000)
    args = parser.parse_args(argv)

    settings = Settings()
    photo_dir = bench_photos()
    photos = [path.read_bytes() for path in sorted(photo_dir.glob("*.jpg"))]
    print(f"{len(photos)} photos from {photo_dir}")
    ceiling = measure_ceiling(photos, settings, args.rounds)
    print(f"ceiling: {ceiling}")

    env, work = inference_env()
    results: dict[str, object] = {"ceiling": ceiling, "load": []}
    with ServiceProcess("inference", env, work) as service:
        assert service.process is not None
        levels = []
        for concurrency in (1, 4, 16):
            level = load(service.url, photo_dir, concurrency, args.seconds)
            level["ratio_to_ceiling"] = level["rps"] / ceiling["parallel_img_s"]
            level["p50_minus_ceiling_ms"] = level["p50_ms"] - ceiling["per_image_p50_ms"]
            levels.append(level)
            print(json.dumps(level))
        results["load"] = levels

        served = sum(level["requests"] for level in levels)
        top_up = max(0, 100 - served)
        if top_up:
            load(service.url, photo_dir, 4, 60, requests=top_up)
        rss_100 = rss_bytes(service.process.pid)
        load(service.url, photo_dir, 4, 3600, requests=args.memory_requests)
        rss_10k = rss_bytes(service.process.pid)
        results["memory"] = {
            "rss_after_100_mib": rss_100 / 2**20,
            "rss_after_more_mib": rss_10k / 2**20,
            "more_requests": args.memory_requests,
            "growth_ratio": rss_10k / rss_100,
        }
        print(json.dumps(results["memory"]))
    path = write_result("inference", results)
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
