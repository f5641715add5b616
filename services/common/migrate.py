"""Versioned schema migrations (numbered `.sql` files applied by yoyo), and the CLI that runs them.

Migration files are numbered by owner so that services never collide:
0001-0099 inference, 0100-0199 feedback, 0200-0299 notifier, 0300-0399 dashboard.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from yoyo import get_backend, read_migrations

from services.common.cli import run_cli

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def yoyo_url(database_url: str) -> str:
    """The same DSN with the scheme that makes yoyo use psycopg 3."""
    parts = urlsplit(database_url)
    return urlunsplit(("postgresql+psycopg", *parts[1:]))


def database_name(database_url: str) -> str:
    """The database a DSN points at."""
    return urlsplit(database_url).path.lstrip("/") or "postgres"


def with_database(database_url: str, name: str) -> str:
    """The same DSN pointing at another database on the same server."""
    parts = urlsplit(database_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def create_database_if_missing(database_url: str) -> bool:
    """Create the DSN's database through the server's `postgres` database; True if created."""
    name = database_name(database_url)
    with psycopg.connect(with_database(database_url, "postgres"), autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if exists.fetchone():
            return False
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    logger.info("created database", extra={"database": name})
    return True


def apply_migrations(database_url: str) -> list[str]:
    """Apply every pending migration under a lock; returns the ids applied."""
    backend = get_backend(yoyo_url(database_url))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    try:
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    finally:
        # A lingering session would block using this database as a template.
        backend.connection.close()
    return [migration.id for migration in pending]


def main(argv: list[str] | None = None) -> int:
    """CLI: create the database if asked, then bring its schema up to date."""
    from services.common.logs import configure_logging
    from services.common.settings import ServiceSettings

    parser = argparse.ArgumentParser(
        prog="python -m services.common.migrate",
        description="Apply the schema migrations to the shared PostgreSQL database.",
    )
    parser.add_argument(
        "--database-url", help="DSN to migrate (default: DATABASE_URL from the environment)"
    )
    parser.add_argument(
        "--create-database",
        action="store_true",
        help="create the database first when it does not exist",
    )
    args = parser.parse_args(argv)
    settings = ServiceSettings()
    configure_logging(settings.log_level, settings.log_format)
    url = args.database_url or settings.database_url
    if args.create_database:
        create_database_if_missing(url)
    applied = apply_migrations(url)
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'schema already current'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
