"""Real PostgreSQL servers for tests: the shared one, an embedded one, or a private instance."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from harness.ports import free_port
from services.common.migrate import with_database


def wait_for_postgres(url: str, timeout_s: float = 30.0) -> None:
    """Block until the server accepts connections."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def server_bin_dir() -> Path | None:
    """Where the installed PostgreSQL server binaries are, newest version first."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PrivatePostgres:
    """A throwaway server started from the installed binaries on a free port.

    PostgreSQL refuses to run as root, so as root it runs as the `postgres` system user.
    """

    def __init__(self, base_dir: Path | None = None) -> None:
        bin_dir = server_bin_dir()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL server binaries installed (pg_ctl not found)")
        self.bin_dir = bin_dir
        # pytest's temporary folders are private to root; the server's user must reach its own.
        base_dir = base_dir or Path(tempfile.mkdtemp(prefix="cv-private-pg-"))
        self.base_dir = base_dir
        self.data_dir = base_dir / "pgdata"
        self.socket_dir = base_dir / "socket"
        self.log_file = base_dir / "postgres.log"
        self.port = free_port()
        self._user = "postgres" if os.geteuid() == 0 else None
        for folder in (base_dir, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            if self._user:
                entry = pwd.getpwnam(self._user)
                os.chown(folder, entry.pw_uid, entry.pw_gid)

    @property
    def url(self) -> str:
        """DSN of its `postgres` database over TCP."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}")

    def init(self) -> None:
        """Create the cluster with trust authentication."""
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8")

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "start",
        )
        wait_for_postgres(self.url)

    def stop(self, mode: str = "fast") -> None:
        """Stop it; `immediate` is a crash from the clients' point of view."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def is_running(self) -> bool:
        """Whether the server process is up."""
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "status")
        except RuntimeError:
            return False
        return True

    def destroy(self) -> None:
        """Stop if running and delete its files."""
        if self.data_dir.exists() and self.is_running():
            self.stop(mode="immediate")
        shutil.rmtree(self.base_dir, ignore_errors=True)


def docker_available() -> bool:
    """Whether a Docker engine answers (the client alone is not enough)."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


# Columns that could hold a prediction id, as a uuid or spelled out in text or JSON.
_ID_BEARING_TYPES = ("uuid", "text", "character varying", "json", "jsonb")


def tables_holding(db: psycopg.Connection, prediction_id: uuid.UUID) -> list[str]:
    """Every `schema.table.column` of the database that still holds the id."""
    columns = db.execute(
        """
        SELECT c.table_schema, c.table_name, c.column_name, c.data_type
        FROM information_schema.columns c
        JOIN information_schema.tables t
          ON t.table_schema = c.table_schema AND t.table_name = c.table_name
        WHERE t.table_type = 'BASE TABLE'
          AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
          AND c.data_type = ANY(%s)
        """,
        (list(_ID_BEARING_TYPES),),
    ).fetchall()
    assert any(data_type == "uuid" for *_, data_type in columns), "no uuid column found at all"
    found = []
    for schema, table, column, data_type in columns:
        if data_type == "uuid":
            condition = sql.SQL("{} = %s").format(sql.Identifier(column))
            value: object = prediction_id
        else:
            condition = sql.SQL("{}::text LIKE %s").format(sql.Identifier(column))
            value = f"%{prediction_id}%"
        query = sql.SQL("SELECT 1 FROM {}.{} WHERE {} LIMIT 1").format(
            sql.Identifier(schema), sql.Identifier(table), condition
        )
        if db.execute(query, (value,)).fetchone():
            found.append(f"{schema}.{table}.{column}")
    return found


def rollup_mismatches(db: psycopg.Connection) -> list[str]:
    """How the dashboard's roll-ups differ from the raw tables they summarise (empty: none).

    Every rolled hour must equal what migration 0302's functions compute from the raw rows
    now, and every day the sum of its hours; nothing may be rolled past the watermark.
    """
    found = []
    rolled = db.execute("SELECT rolled_until FROM monitoring_rollup_state").fetchone()
    assert rolled is not None
    until = rolled[0]
    checks = {
        "monitoring_hourly": "SELECT * FROM monitoring_rollup_rows('-infinity', %(until)s)",
        "monitoring_hourly_bins": "SELECT * FROM monitoring_rollup_bins('-infinity', %(until)s)",
        "monitoring_daily": """
            SELECT monitoring_rollup_day(period_start), model_version, prediction_result, shadow,
                   sum(predictions), sum(low_confidence), sum(consented), sum(confidence_sum),
                   max(latency_max_ms), sum(feedback), sum(satisfied), sum(labelled),
                   sum(correct), sum(agreed)
            FROM monitoring_rollup_rows('-infinity', %(until)s) GROUP BY 1, 2, 3, 4""",
        "monitoring_daily_bins": """
            SELECT monitoring_rollup_day(period_start), histogram, model_version, shadow, bin,
                   sum(n)
            FROM monitoring_rollup_bins('-infinity', %(until)s) GROUP BY 1, 2, 3, 4, 5""",
    }
    for table, expected_sql in checks.items():
        stored = db.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table))).fetchall()
        expected = db.execute(expected_sql, {"until": until}).fetchall() if until else []
        # Sums of doubles differ in their last bits with the order they are added in.
        stored_set = {tuple(_rounded(v) for v in row) for row in stored}
        expected_set = {tuple(_rounded(v) for v in row) for row in expected}
        for row in sorted(stored_set - expected_set, key=str):
            found.append(f"{table} holds {row}, which the raw rows do not give")
        for row in sorted(expected_set - stored_set, key=str):
            found.append(f"{table} lacks {row}, which the raw rows give")
    return found


def _rounded(value: object) -> object:
    return round(value, 6) if isinstance(value, float) else value


@contextlib.contextmanager
def fresh_database(pg_admin_url: str, template: str, prefix: str = "cv_test") -> Iterator[str]:
    """A migrated database of its own, copied from the session's template, dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    try:
        yield with_database(pg_admin_url, name)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
