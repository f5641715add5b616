"""Alert storm through the notifier: `python -m bench.notifier --help`.

A real notifier process (real PostgreSQL outbox) receives a storm of Alertmanager webhooks and
drains it to the fake Discord, which allows 5 requests per 2 s per webhook like Discord. The
ceiling is measured in the same run: the least time Discord's limit allows for the number of
messages the storm became, `(ceil(messages / limit) - 1) * window`. Ratio 1.0 means the
notifier drained the storm exactly as fast as the limit permits.
"""

from __future__ import annotations

import argparse
import math
import secrets
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from bench.support import bench_database_url, write_result
from harness.alert_payloads import alert, fingerprints_posted, webhook
from harness.fake_discord import FakeDiscord
from harness.services import ServiceProcess
from services.common.migrate import apply_migrations, with_database

# Random per run: a token written here would be published, and refused outside DEV_MODE.
TOKEN = f"bench-{secrets.token_hex(16)}"


def _storm(url: str, alerts: int, per_group: int) -> tuple[list[str], float]:
    """Post the storm as webhooks of `per_group` alerts; returns fingerprints and post time."""
    expected: list[str] = []
    started = time.perf_counter()
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        for group in range(math.ceil(alerts / per_group)):
            count = min(per_group, alerts - group * per_group)
            batch = [
                alert(
                    f"Storm{group}",
                    f"s{group}-{n}",
                    severity="warning",
                    description="Latency above the objective for 10 minutes. " * 4,
                    labels={"instance": f"inference-{n}:8000"},
                )
                for n in range(count)
            ]
            body = webhook(batch, group_key=f'{{}}:{{alertname="Storm{group}"}}')
            response = client.post(f"{url}/alertmanager", json=body)
            response.raise_for_status()
            expected += [item["fingerprint"] for item in batch]
    return expected, time.perf_counter() - started


def run(alerts: int, per_group: int, limit: int, window_s: float) -> dict[str, Any]:
    """One storm, end to end, in a database of its own."""
    admin_url = bench_database_url()
    name = f"cv_bench_notifier_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database_url = with_database(admin_url, name)
    try:
        apply_migrations(database_url)
        with FakeDiscord(limit=limit, window_s=window_s) as discord:
            env = {
                "DATABASE_URL": database_url,
                "DISCORD_WEBHOOK_URL": discord.webhook_url(),
                "NOTIFIER_TOKEN": TOKEN,
                "NOTIFIER_POLL_S": "0.2",
                "LOG_LEVEL": "WARNING",
            }
            with ServiceProcess("notifier", env, Path(tempfile.mkdtemp())) as notifier:
                started = time.perf_counter()
                expected, post_s = _storm(notifier.url, alerts, per_group)
                discord.wait_until(
                    lambda fake: len(fingerprints_posted(fake.messages())) >= len(expected),
                    timeout_s=3600,
                )
                drain_s = time.perf_counter() - started
            messages = discord.messages()
            statuses = [request.status for request in discord.requests()]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    posted = fingerprints_posted(messages)
    floor_s = (math.ceil(len(messages) / limit) - 1) * window_s
    return {
        "alerts": alerts,
        "alerts_per_webhook": per_group,
        "rate_limit": f"{limit} per {window_s} s",
        "messages": len(messages),
        "post_seconds": round(post_s, 3),
        "drain_seconds": round(drain_s, 3),
        "minimum_seconds_at_rate_limit": round(floor_s, 3),
        "ratio_to_rate_limit_minimum": round(floor_s / drain_s, 3) if drain_s else None,
        "discord_429s": statuses.count(429),
        "alerts_lost": len(set(expected) - set(posted)),
        "alerts_posted_twice": len(posted) - len(set(posted)),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: run the storm and print/save the numbers."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.notifier",
        description="Time to drain an alert storm through the notifier under Discord's limit.",
    )
    parser.add_argument("--alerts", type=int, default=500, help="alerts in the storm")
    parser.add_argument("--per-group", type=int, default=10, help="alerts per Alertmanager webhook")
    parser.add_argument("--limit", type=int, default=5, help="requests per window per webhook")
    parser.add_argument("--window-s", type=float, default=2.0, help="rate-limit window")
    args = parser.parse_args(argv)
    result = run(args.alerts, args.per_group, args.limit, args.window_s)
    for key, value in result.items():
        print(f"{key:>32}: {value}")
    print(f"saved to {write_result('notifier', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
