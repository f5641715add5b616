"""Hot-swap benchmark: change the active model under closed-loop load, count failures, and
compare the latency around each swap with the p99 of the same run before any swap.

`python -m bench.hot_swap --help`. One inference process serves the committed model; a
second version (the same weights under another version, so that a real second session is
loaded) is registered, promoted, and the first promoted back, while clients keep sending the
validation photos. Every figure is a ratio to the same run's own baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from pathlib import Path

import httpx

from bench.loadgen import Answer, client_loop, percentile, status_counts
from bench.support import bench_photos, inference_env, write_result
from harness.services import ServiceProcess
from services.inference.settings import Settings

TOKEN = "hot-swap-bench-token"  # noqa: S105
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


async def swap_at(
    client: httpx.AsyncClient, url: str, schedule: list[tuple[float, str]], origin: float
) -> list[dict[str, float | str]]:
    """Promote each version at its time; returns when each call was made and how long it took."""
    swaps: list[dict[str, float | str]] = []
    for at, version in schedule:
        await asyncio.sleep(max(0.0, origin + at - time.perf_counter()))
        started = time.perf_counter()
        response = await client.post(f"{url}/admin/models/{version}/promote", headers=ADMIN)
        response.raise_for_status()
        swaps.append({"version": version, "at": started, "call_s": time.perf_counter() - started})
    return swaps


async def run(
    url: str,
    photos: list[bytes],
    concurrency: int,
    seconds: float,
    schedule: list[tuple[float, str]],
) -> tuple[list[Answer], list[dict[str, float | str]]]:
    """Load and swaps together."""
    limits = httpx.Limits(max_connections=concurrency + 1)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        origin = time.perf_counter()
        deadline = origin + seconds
        swapping = asyncio.create_task(swap_at(client, url, schedule, origin))
        answers: list[Answer] = []
        await asyncio.gather(
            *(
                client_loop(client, f"{url}/predict", photos, deadline, answers, i)
                for i in range(concurrency)
            )
        )
        swaps = await swapping
    return answers, swaps


def summarise(
    answers: list[Answer], swaps: list[dict[str, float | str]], window_s: float
) -> dict[str, object]:
    """Failures, the baseline p99, and each swap's worst latency as a ratio to it."""
    first_swap = min(float(swap["at"]) for swap in swaps)
    baseline = [a.seconds for a in answers if a.sent_at + a.seconds < first_swap]
    baseline_p99 = percentile(baseline, 0.99)
    around = []
    for swap in swaps:
        at = float(swap["at"])
        near = [a for a in answers if at - 1.0 <= a.sent_at <= at + window_s]
        switched = next(
            (
                a.sent_at + a.seconds - at
                for a in sorted(near, key=lambda a: a.sent_at)
                if a.sent_at >= at and a.model_version == swap["version"]
            ),
            None,
        )
        worst = max((a.seconds for a in near), default=0.0)
        around.append(
            {
                "version": swap["version"],
                "admin_call_s": swap["call_s"],
                "first_answer_from_new_version_s": switched,
                "requests_in_window": len(near),
                "max_latency_ms": worst * 1000,
                "p99_latency_ms": percentile([a.seconds for a in near], 0.99) * 1000,
                "max_over_baseline_p99": worst / baseline_p99 if baseline_p99 else None,
            }
        )
    statuses = status_counts(answers)
    return {
        "requests": len(answers),
        "failed": sum(count for status, count in statuses.items() if status != "200"),
        "statuses": statuses,
        "baseline_requests": len(baseline),
        "baseline_p50_ms": percentile(baseline, 0.5) * 1000,
        "baseline_p99_ms": baseline_p99 * 1000,
        "window_s": window_s,
        "swaps": around,
    }


def second_version(model: Path, folder: Path, version: str) -> Path:
    """The same weights under another version: a real second session to load."""
    target = folder / "swap.onnx"
    shutil.copyfile(model, target)
    card = json.loads(model.with_suffix(".json").read_text())
    target.with_suffix(".json").write_text(json.dumps({**card, "version": version}))
    return target


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.hot_swap", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=4, help="closed-loop clients (4)")
    parser.add_argument("--seconds", type=float, default=36.0, help="whole run (36)")
    parser.add_argument("--window", type=float, default=5.0, help="seconds after a swap (5)")
    args = parser.parse_args(argv)

    settings = Settings()
    photo_dir = bench_photos()
    photos = [path.read_bytes() for path in sorted(photo_dir.glob("*.jpg"))]
    active = json.loads(settings.model_path.with_suffix(".json").read_text())["version"]
    other = f"{active}-swap"
    env, work = inference_env(INFERENCE_ADMIN_TOKEN=TOKEN, MODEL_REGISTRY_POLL_S="0.5")
    with ServiceProcess("inference", env, work) as service:
        candidate = second_version(settings.model_path, work, other)
        with candidate.open("rb") as model, candidate.with_suffix(".json").open("rb") as card:
            httpx.post(
                f"{service.url}/admin/models",
                files={"model": model, "card": card},
                headers=ADMIN,
                timeout=120,
            ).raise_for_status()
        third = args.seconds / 3
        schedule = [(third, other), (2 * third, active)]
        print(
            f"{len(photos)} photos, {args.concurrency} clients for {args.seconds:.0f} s; "
            f"promote {other} at {third:.0f} s and {active} back at {2 * third:.0f} s"
        )
        answers, swaps = asyncio.run(
            run(service.url, photos, args.concurrency, args.seconds, schedule)
        )
    results = summarise(answers, swaps, args.window)
    print(json.dumps(results, indent=2))
    path = write_result("hot_swap", results)
    print(f"written {path}")
    return 0 if results["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
