"""Feedback write path under load: `python -m bench.feedback --help`.

A real feedback process takes closed-loop `POST /feedback` (with consent: lock the prediction,
upsert the feedback, update `monitoring`, one transaction) at concurrency 16. Two ceilings are
measured in the same run: `GET /health` on the same process (HTTP stack, no database) and the
same transaction run straight on asyncpg from this process (database, no HTTP).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import psycopg

from bench.loadgen import percentile
from bench.support import bench_database_url, write_result
from harness.services import ServiceProcess
from services.common.db import Database
from services.feedback.repository import Feedback, FeedbackRepository

Call = Callable[[int], Awaitable[bool]]


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) a process has used; 0 without a process."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def closed_loop(
    call: Call, concurrency: int, seconds: float, warmup_s: float, server_pid: int | None = None
) -> dict:
    """Each worker calls again as soon as its previous call returns; latencies of the window.

    The server's CPU time per request is reported too: on a shared machine it moves far less
    with other load than wall-clock throughput does.
    """

    async def worker(offset: int, deadline: float, latencies: list[float], ok: list[int]) -> None:
        index = offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            succeeded = await call(index)
            latencies.append(time.perf_counter() - started)
            ok[0] += int(succeeded)
            index += concurrency

    warm_deadline = time.perf_counter() + warmup_s
    await asyncio.gather(*(worker(i, warm_deadline, [], [0]) for i in range(concurrency)))
    latencies: list[float] = []
    ok = [0]
    cpu_before = cpu_seconds(server_pid)
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(worker(i, deadline, latencies, ok) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu_used = cpu_seconds(server_pid) - cpu_before
    return {
        "server_cpu_ms_per_request": cpu_used * 1000 / max(1, len(latencies)),
        "concurrency": concurrency,
        "seconds": elapsed,
        "requests": len(latencies),
        "ok": ok[0],
        "rps": ok[0] / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else 0.0,
    }


def seed_predictions(database_url: str, count: int) -> list[uuid.UUID]:
    """Fresh prediction rows for the feedback to land on."""
    ids = [uuid.uuid4() for _ in range(count)]
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("TRUNCATE monitoring CASCADE")
        with connection.cursor().copy(
            "COPY monitoring (id, prediction_result, proba_cat, proba_dog, confidence, "
            "inference_time_ms, model_version) FROM STDIN"
        ) as copy:
            for prediction_id in ids:
                copy.write_row((prediction_id, "cat", 0.9, 0.1, 0.9, 5.0, "bench"))
    return ids


def feedback_json(prediction_id: uuid.UUID, index: int) -> dict[str, object]:
    """A consented verdict; a third of them relabel, so every column is written."""
    unsatisfied = index % 3 == 0
    return {
        "prediction_id": str(prediction_id),
        "satisfaction": "unsatisfied" if unsatisfied else "satisfied",
        "rgpd_consent": True,
        **({"true_label": "dog"} if unsatisfied else {}),
    }


async def measure_service(
    url: str, pid: int, ids: list[uuid.UUID], args: argparse.Namespace
) -> dict:
    """Feedback and the health ceiling against the running process."""
    limits = httpx.Limits(max_connections=args.concurrency)
    rng = random.Random(0)  # noqa: S311 - spreading load, not security
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def health(_: int) -> bool:
            return (await client.get("/health")).status_code == 200

        async def feedback(index: int) -> bool:
            body = feedback_json(rng.choice(ids), index)
            return (await client.post("/feedback", json=body)).status_code == 201

        ceiling = await closed_loop(health, args.concurrency, args.seconds, args.warmup, pid)
        print("http ceiling (GET /health):", json.dumps(ceiling))
        load = await closed_loop(feedback, args.concurrency, args.seconds, args.warmup, pid)
        print("POST /feedback:", json.dumps(load))
    return {"http_ceiling": ceiling, "feedback": load}


async def measure_database(
    database_url: str, ids: list[uuid.UUID], args: argparse.Namespace
) -> dict:
    """The same transaction straight on asyncpg: what PostgreSQL alone allows."""
    database = Database(database_url, max_size=10)
    await database.start()
    repository = FeedbackRepository(database, wait_for_prediction_s=0, acquire_timeout_s=5)
    rng = random.Random(1)  # noqa: S311 - spreading load, not security

    async def record(index: int) -> bool:
        body = feedback_json(rng.choice(ids), index)
        await repository.record_feedback(
            Feedback(
                prediction_id=uuid.UUID(str(body["prediction_id"])),
                satisfaction=str(body["satisfaction"]),
                rgpd_consent=True,
                true_label=body.get("true_label"),  # type: ignore[arg-type]
            )
        )
        return True

    try:
        result = await closed_loop(record, args.concurrency, args.seconds, args.warmup)
    finally:
        await database.close()
    print("database ceiling (same transaction, asyncpg, pool 10):", json.dumps(result))
    return result


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.feedback", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--predictions", type=int, default=20_000, help="rows to spread over")
    args = parser.parse_args(argv)

    database_url = bench_database_url()
    ids = seed_predictions(database_url, args.predictions)
    env = {
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        "FEEDBACK_ADMIN_TOKEN": secrets.token_hex(16),
    }
    load_before = os.getloadavg()[0]
    with ServiceProcess("feedback", env, Path(tempfile.mkdtemp())) as service:
        assert service.process is not None
        results = asyncio.run(measure_service(service.url, service.process.pid, ids, args))
    results["database_ceiling"] = asyncio.run(measure_database(database_url, ids, args))
    feedback = results["feedback"]
    results["machine"] = {"cpus": os.cpu_count(), "load_avg_1m_before": load_before}
    results["ratios"] = {
        "feedback_to_http_ceiling": feedback["rps"] / results["http_ceiling"]["rps"],
        "feedback_to_database_ceiling": feedback["rps"] / results["database_ceiling"]["rps"],
        "feedback_cpu_to_health_cpu": feedback["server_cpu_ms_per_request"]
        / results["http_ceiling"]["server_cpu_ms_per_request"],
    }
    print("ratios:", json.dumps(results["ratios"]))
    path = write_result("feedback", results)
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
