"""Closed-loop HTTP load from its own process: `python -m bench.loadgen --help`.

Each of `--concurrency` clients sends its next request as soon as the previous answer arrives;
latencies and status codes are printed as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Answer:
    """One request of a load: when it was sent, how long it took, how it ended."""

    sent_at: float
    seconds: float
    status: str  # the HTTP status, or the name of the transport error
    model_version: str | None  # the version that answered, for a 200


async def client_loop(
    client: httpx.AsyncClient,
    url: str,
    photos: list[bytes],
    deadline: float,
    answers: list[Answer],
    offset: int,
    max_requests: int | None = None,
) -> None:
    """One closed-loop client: the next request as soon as the answer arrives, until the
    deadline or until `answers` (shared by every client) holds `max_requests`."""
    index = offset
    while time.perf_counter() < deadline and (max_requests is None or len(answers) < max_requests):
        photo = photos[index % len(photos)]
        index += 1
        started = time.perf_counter()
        try:
            response = await client.post(url, files={"file": ("p.jpg", photo, "image/jpeg")})
            status = str(response.status_code)
            version = response.json().get("model_version") if status == "200" else None
        except httpx.HTTPError as error:
            status, version = type(error).__name__, None
        answers.append(Answer(started, time.perf_counter() - started, status, version))


def status_counts(answers: list[Answer]) -> dict[str, int]:
    """How many answers ended with each status."""
    return dict(collections.Counter(answer.status for answer in answers))


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
                    client_loop(client, url, photos, warm_deadline, [], i)
                    for i in range(concurrency)
                )
            )
        answers: list[Answer] = []
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(
                client_loop(client, url, photos, deadline, answers, i, max_requests)
                for i in range(concurrency)
            )
        )
        elapsed = time.perf_counter() - started
    latencies = [answer.seconds for answer in answers]
    statuses = status_counts(answers)
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
