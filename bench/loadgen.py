"""Closed-loop HTTP load from its own process: `python -m bench.loadgen --help`.

Each of `--concurrency` clients sends its next request as soon as the previous answer arrives;
latencies and status codes are printed as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import httpx


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _client_loop(
    client: httpx.AsyncClient,
    url: str,
    photos: list[bytes],
    deadline: float,
    latencies: list[float],
    statuses: dict[str, int],
    offset: int,
    max_requests: int | None = None,
) -> None:
    index = offset
    while time.perf_counter() < deadline and (
        max_requests is None or len(latencies) < max_requests
    ):
        photo = photos[index % len(photos)]
        index += 1
        started = time.perf_counter()
        try:
            response = await client.post(url, files={"file": ("p.jpg", photo, "image/jpeg")})
            key = str(response.status_code)
        except httpx.HTTPError as error:
            key = type(error).__name__
        latencies.append(time.perf_counter() - started)
        statuses[key] = statuses.get(key, 0) + 1


async def run_load(
    url: str,
    photos: list[bytes],
    concurrency: int,
    seconds: float,
    warmup_s: float,
    max_requests: int | None = None,
) -> dict[str, object]:
    """Warm up, then measure for `seconds` (or until `max_requests` answers)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        if warmup_s > 0:
            warm_deadline = time.perf_counter() + warmup_s
            await asyncio.gather(
                *(
                    _client_loop(client, url, photos, warm_deadline, [], {}, i)
                    for i in range(concurrency)
                )
            )
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(
                _client_loop(client, url, photos, deadline, latencies, statuses, i, max_requests)
                for i in range(concurrency)
            )
        )
        elapsed = time.perf_counter() - started
    ok = statuses.get("200", 0)
    return {
        "concurrency": concurrency,
        "seconds": elapsed,
        "requests": len(latencies),
        "statuses": statuses,
        "rps": ok / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": (statistics.fmean(latencies) * 1000) if latencies else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadgen", description="Closed-loop load on POST /predict."
    )
    parser.add_argument("--url", required=True, help="full URL of the predict route")
    parser.add_argument("--photos", required=True, type=Path, help="folder of JPEGs to send")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--requests", type=int, help="stop after this many answers")
    args = parser.parse_args(argv)
    photos = [path.read_bytes() for path in sorted(args.photos.glob("*.jpg"))]
    if not photos:
        parser.error(f"no .jpg in {args.photos}")
    result = asyncio.run(
        run_load(args.url, photos, args.concurrency, args.seconds, args.warmup, args.requests)
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
