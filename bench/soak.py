"""Soak benchmark: the whole stack under mixed load for minutes; latency, errors, memory, disk.

`python -m bench.soak --help`. First the ceiling is measured in the same run (closed-loop mixed
load, briefly); then an open-loop load at a fraction of it (default 80 %) runs for `--minutes`:
90 % predictions, 10 % feedback on recent predictions. Reported: p95 per minute (and as a
ratio to the first minute: flat means close to 1), errors, RSS of every service at the start,
middle and end (ratio end/start), and PostgreSQL bytes per million predictions.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from tqdm import tqdm

from bench.loadgen import percentile
from bench.support import bench_photos, rss_bytes, write_result
from harness.stack import Stack, running_stack
from services.common.migrate import apply_migrations, create_database_if_missing
from services.inference.settings import Settings

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/cv_soak"
TABLES = ("monitoring", "feedback", "prediction_photos")
FEEDBACK_SHARE = 0.10


@dataclass
class Sample:
    """One request as the client saw it."""

    at: float
    kind: str
    seconds: float
    outcome: str


@dataclass
class Mix:
    """Sends the 90/10 mix and remembers recent predictions to give feedback on."""

    inference_url: str
    feedback_url: str
    photos: list[bytes]
    # Seeded for a repeatable mix; nothing secret is drawn from it.
    rng: random.Random = field(default_factory=lambda: random.Random(7))  # noqa: S311
    recent: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=500))
    samples: list[Sample] = field(default_factory=list)
    predictions_answered: int = 0

    async def one(self, client: httpx.AsyncClient) -> None:
        """One request: feedback with probability FEEDBACK_SHARE (when possible), else predict."""
        started = time.perf_counter()
        kind = "feedback" if self.recent and self.rng.random() < FEEDBACK_SHARE else "predict"
        try:
            if kind == "predict":
                photo = self.photos[self.rng.randrange(len(self.photos))]
                response = await client.post(
                    f"{self.inference_url}/predict",
                    files={"file": ("p.jpg", photo, "image/jpeg")},
                    data={"rgpd_consent": "true"},
                )
                if response.status_code == 200:
                    self.recent.append(response.json()["prediction_id"])
                    self.predictions_answered += 1
            else:
                body = {
                    "prediction_id": self.rng.choice(self.recent),
                    "satisfaction": self.rng.choice(["satisfied", "unsatisfied"]),
                    "rgpd_consent": self.rng.random() < 0.5,
                }
                response = await client.post(f"{self.feedback_url}/feedback", json=body)
            outcome = str(response.status_code)
        except httpx.HTTPError as error:
            outcome = type(error).__name__
        self.samples.append(Sample(started, kind, time.perf_counter() - started, outcome))


def ok(sample: Sample) -> bool:
    """Whether the answer is the success the route promises."""
    return sample.outcome == ("200" if sample.kind == "predict" else "201")


async def closed_loop(mix: Mix, concurrency: int, seconds: float) -> float:
    """Back-to-back clients for `seconds`; successful requests per second."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        deadline = time.perf_counter() + seconds
        first = len(mix.samples)

        async def loop() -> None:
            while time.perf_counter() < deadline:
                await mix.one(client)

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return sum(ok(s) for s in mix.samples[first:]) / elapsed


async def open_loop(
    mix: Mix, rate: float, seconds: float, stack: Stack, max_in_flight: int = 256
) -> tuple[float, dict[str, list[dict[str, Any]]]]:
    """Requests started at a fixed rate whatever the answers; RSS taken at start/middle/end.

    Returns when it started (perf_counter) and the memory readings.
    """
    memory: dict[str, list[dict[str, Any]]] = {name: [] for name in stack.services}

    def measure(label: str) -> None:
        for name, service in stack.services.items():
            assert service.process is not None
            rss_mib = rss_bytes(service.process.pid) / 2**20
            memory[name].append({"at": label, "rss_mib": rss_mib})

    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        in_flight: set[asyncio.Task[None]] = set()
        started = time.perf_counter()
        next_at, sent, middle_taken = started, 0, False
        measure("start")
        with tqdm(total=int(seconds), desc=f"soak at {rate:.1f} req/s", unit="s") as bar:
            while (now := time.perf_counter()) < started + seconds:
                if not middle_taken and now >= started + seconds / 2:
                    measure("middle")
                    middle_taken = True
                if now < next_at:
                    await asyncio.sleep(min(next_at - now, 0.05))
                    if int(now - started) > bar.n:
                        bar.update(int(now - started) - bar.n)
                    continue
                if len(in_flight) < max_in_flight:
                    task = asyncio.create_task(mix.one(client))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                else:
                    mix.samples.append(Sample(now, "predict", 0.0, "client_saturated"))
                sent += 1
                next_at = started + sent / rate
        await asyncio.gather(*in_flight)
        measure("end")
    return started, memory


def per_minute(samples: list[Sample], started: float) -> list[dict[str, Any]]:
    """p95 and errors for each whole minute of the soak."""
    minutes: dict[int, list[Sample]] = collections.defaultdict(list)
    for sample in samples:
        minutes[int((sample.at - started) // 60)].append(sample)
    rows = []
    for minute in sorted(minutes):
        group = minutes[minute]
        predictions = [s.seconds for s in group if s.kind == "predict" and ok(s)]
        feedback = [s.seconds for s in group if s.kind == "feedback" and ok(s)]
        rows.append(
            {
                "minute": minute + 1,
                "requests": len(group),
                "errors": sum(not ok(s) for s in group),
                "predict_p95_ms": percentile(predictions, 0.95) * 1000,
                "feedback_p95_ms": percentile(feedback, 0.95) * 1000,
            }
        )
    return rows


def fresh_database(url: str) -> str:
    """Create and migrate the soak database, emptied so its size is this run's alone."""
    create_database_if_missing(url)
    apply_migrations(url)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("TRUNCATE monitoring CASCADE")
    return url


def database_footprint(url: str, expected_rows: int, timeout_s: float = 120) -> dict[str, Any]:
    """Wait for the predictions to be written, then bytes of the tables per million rows."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as connection:
        while True:
            row = connection.execute("SELECT count(*) FROM monitoring").fetchone()
            rows = int(row[0]) if row else 0
            if rows >= expected_rows or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        connection.execute("VACUUM ANALYZE monitoring")
        sizes = {
            table: int(
                connection.execute(
                    "SELECT pg_total_relation_size(%s::regclass)", (table,)
                ).fetchone()[0]  # type: ignore[index]
            )
            for table in TABLES
        }
    total = sum(sizes.values())
    return {
        "prediction_rows": rows,
        "expected_rows": expected_rows,
        "table_bytes": sizes,
        "mib_per_million_predictions": (total / rows * 1e6 / 2**20) if rows else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the stack, measure the ceiling, soak, collect."""
    database_url = fresh_database(args.database_url)
    photos = [path.read_bytes() for path in sorted(bench_photos().glob("*.jpg"))][:200]
    work_dir = Path(tempfile.mkdtemp(prefix="cv-soak-"))
    model_path = Settings().model_path
    extra = {"LOG_LEVEL": "WARNING", "INFERENCE_THREADS": str(args.inference_threads)}
    with running_stack(database_url, model_path, work_dir, extra_env=extra) as stack:
        mix = Mix(stack.url("inference"), stack.url("feedback"), photos)
        asyncio.run(closed_loop(mix, args.concurrency, 3))  # warm-up, not counted
        mix.samples.clear()
        ceiling = asyncio.run(closed_loop(mix, args.concurrency, args.probe_seconds))
        probe_errors = sum(not ok(s) for s in mix.samples)
        mix.samples.clear()
        rate = ceiling * args.load
        started, memory = asyncio.run(open_loop(mix, rate, args.minutes * 60, stack))
        elapsed = time.perf_counter() - started
        samples = mix.samples
        # Every answered prediction of the run (warm-up and ceiling included) is in the table.
        footprint = database_footprint(database_url, mix.predictions_answered)
    minutes = per_minute(samples, started)
    first_p95 = minutes[0]["predict_p95_ms"] if minutes else 0.0
    for row in minutes:
        row["predict_p95_ratio_to_minute_1"] = (
            row["predict_p95_ms"] / first_p95 if first_p95 else None
        )
    outcomes = collections.Counter(f"{s.kind} {s.outcome}" for s in samples)
    return {
        "minutes": args.minutes,
        "ceiling_req_s": ceiling,
        "ceiling_probe_errors": probe_errors,
        "target_req_s": rate,
        "achieved_req_s": len(samples) / elapsed,
        "achieved_ratio_to_ceiling": (len(samples) / elapsed) / ceiling if ceiling else None,
        "outcomes": dict(outcomes),
        "errors": sum(not ok(s) for s in samples),
        "per_minute": minutes,
        "rss_mib": memory,
        "rss_end_to_start_ratio": {
            name: points[-1]["rss_mib"] / points[0]["rss_mib"] for name, points in memory.items()
        },
        "database": footprint,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak")
    parser.add_argument("--load", type=float, default=0.8, help="fraction of the ceiling")
    parser.add_argument("--probe-seconds", type=float, default=20.0, help="ceiling measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="clients for the ceiling")
    parser.add_argument("--inference-threads", type=int, default=2, help="INFERENCE_THREADS")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="soak database")
    args = parser.parse_args(argv)
    result = run(args)
    path = write_result("soak", result)
    print(f"ceiling {result['ceiling_req_s']:.1f} req/s (mixed), soak at {args.load:.0%} of it")
    achieved = result["achieved_ratio_to_ceiling"]
    print(f"achieved {achieved:.2f} x ceiling; errors {result['errors']}")
    for row in result["per_minute"]:
        ratio = row["predict_p95_ratio_to_minute_1"]
        print(
            f"  minute {row['minute']:>3}: predict p95 {row['predict_p95_ms']:7.1f} ms"
            f" ({ratio:.2f} x minute 1), feedback p95 {row['feedback_p95_ms']:6.1f} ms,"
            f" errors {row['errors']}"
        )
    for name, ratio in result["rss_end_to_start_ratio"].items():
        points = ", ".join(f"{p['at']} {p['rss_mib']:.0f}" for p in result["rss_mib"][name])
        print(f"  {name:<10} RSS MiB {points} (end/start {ratio:.2f})")
    database = result["database"]
    print(
        f"  PostgreSQL: {database['mib_per_million_predictions']:.0f} MiB per million predictions"
        f" ({database['prediction_rows']} rows of {database['expected_rows']} answered)"
    )
    print(json.dumps({"result": str(path)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
