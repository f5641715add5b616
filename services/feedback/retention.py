"""Storage limitation (RGPD art. 5.1.e): predictions older than RETENTION_DAYS are purged.

The purge deletes `monitoring` rows; their photo and feedback follow by ON DELETE CASCADE.
It runs on a schedule inside the service, from the admin endpoint, and by hand:
`python -m services.feedback.retention --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from services.common.cli import run_cli
from services.common.db import Database, DatabaseUnavailable
from services.feedback import metrics
from services.feedback.repository import purge_older_than, purge_tombstones

logger = logging.getLogger(__name__)

# One purge at a time across workers and replicas; the others skip their turn.
_ADVISORY_LOCK_KEY = 7_301_001
_ACQUIRE_TIMEOUT_S = 5.0
# Erasure tombstones outlive any prediction inference could still be holding or re-sending.
TOMBSTONE_DAYS = 30


@dataclass(frozen=True)
class PurgeResult:
    """What one purge did."""

    cutoff: datetime
    purged: int
    skipped: bool = False


def cutoff_for(days: int, now: datetime | None = None) -> datetime:
    """The instant before which predictions are too old to keep."""
    return (now or datetime.now(UTC)) - timedelta(days=days)


async def purge(
    connection: asyncpg.Connection,
    *,
    days: int,
    batch_size: int,
    tombstone_days: int = TOMBSTONE_DAYS,
) -> PurgeResult:
    """Purge under an advisory lock; counts what it deleted in the metrics."""
    cutoff = cutoff_for(days)
    if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", _ADVISORY_LOCK_KEY):
        logger.info("retention purge already running elsewhere; skipped")
        metrics.RETENTION_RUNS.labels(outcome="skipped").inc()
        return PurgeResult(cutoff=cutoff, purged=0, skipped=True)
    try:
        purged = await purge_older_than(connection, cutoff, batch_size=batch_size)
        await purge_tombstones(connection, cutoff_for(tombstone_days))
        await reclaim_photo_space(connection)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)
    metrics.RETENTION_PURGED.inc(purged)
    metrics.RETENTION_RUNS.labels(outcome="success").inc()
    metrics.RETENTION_LAST_SUCCESS.set(time.time())
    logger.info("retention purge done", extra={"purged": purged, "cutoff": cutoff.isoformat()})
    return PurgeResult(cutoff=cutoff, purged=purged)


async def reclaim_photo_space(connection: asyncpg.Connection) -> None:
    """VACUUM the photos (their TOAST table with them) after each purge.

    A deleted or erased photo stays in the table's files as a dead row until VACUUM reclaims
    it, which autovacuum may put off for a long while on a table that is mostly inserted
    into; run on the purge's schedule, this bounds that to RETENTION_INTERVAL_S. The bytes
    may then linger in freed pages until overwritten, and in WAL and backups until they are
    recycled (docs/security.md).
    """
    try:
        await connection.execute("VACUUM (ANALYZE) prediction_photos")
    except asyncpg.InsufficientPrivilegeError:
        logger.warning("photo space not reclaimed: VACUUM needs the table's owner")


async def count_expired(connection: asyncpg.Connection, *, days: int) -> int:
    """How many predictions a purge would delete now."""
    count = await connection.fetchval(
        "SELECT count(*) FROM monitoring WHERE created_at < $1", cutoff_for(days)
    )
    return int(count)


async def purge_with_pool(database: Database, *, days: int, batch_size: int) -> PurgeResult:
    """One purge on a pooled connection; a failed one is counted and raised."""
    try:
        async with database.connection(acquire_timeout_s=_ACQUIRE_TIMEOUT_S) as connection:
            return await purge(connection, days=days, batch_size=batch_size)
    except DatabaseUnavailable:
        metrics.RETENTION_RUNS.labels(outcome="failure").inc()
        raise


async def run_forever(database: Database, *, days: int, batch_size: int, interval_s: float) -> None:
    """The in-service schedule: purge now, then every `interval_s`, surviving database outages."""
    while True:
        try:
            await purge_with_pool(database, days=days, batch_size=batch_size)
        except DatabaseUnavailable:
            logger.warning("retention purge postponed: database unavailable")
        await asyncio.sleep(interval_s)


async def _main_async(database_url: str, *, days: int, batch_size: int, dry_run: bool) -> str:
    connection = await asyncpg.connect(database_url)
    try:
        if dry_run:
            count = await count_expired(connection, days=days)
            return f"{count} prediction(s) older than {days} days would be purged"
        result = await purge(connection, days=days, batch_size=batch_size)
    finally:
        await connection.close()
    if result.skipped:
        return "another purge is running; nothing done"
    return f"purged {result.purged} prediction(s) created before {result.cutoff.isoformat()}"


def main(argv: list[str] | None = None) -> int:
    """CLI: purge expired predictions (and their photos and feedback) now."""
    from services.common.logs import configure_logging
    from services.feedback.settings import RetentionSettings

    parser = argparse.ArgumentParser(
        prog="python -m services.feedback.retention",
        description="Delete predictions older than the retention period, with their photos and "
        "feedback (the service also does this on a schedule).",
    )
    parser.add_argument("--database-url", help="DSN (default: DATABASE_URL)")
    parser.add_argument("--days", type=int, help="retention in days (default: RETENTION_DAYS)")
    parser.add_argument("--dry-run", action="store_true", help="only count what would go")
    args = parser.parse_args(argv)
    settings = RetentionSettings()
    configure_logging(settings.log_level)
    days = args.days if args.days is not None else settings.retention_days
    if days < 1:
        parser.error("--days must be at least 1")
    message = asyncio.run(
        _main_async(
            args.database_url or settings.database_url,
            days=days,
            batch_size=settings.retention_batch_size,
            dry_run=args.dry_run,
        )
    )
    print(message)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
