"""An erasure that reaches feedback before inference has written the prediction still erases it.

Inference keeps predictions in memory while it cannot reach PostgreSQL; feedback may reach it
all the same (a partial outage, an exhausted pool). Here inference logs in as a role of its own
that is locked out, then let back in: real PostgreSQL, real processes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from harness.stack import Stack, running_stack, wait_for
from tests.support.images import jpeg

pytestmark = pytest.mark.slow


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{role}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class LockableRole:
    """A login role with the rights inference needs, that can be locked out and let back in."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.name = f"cv_inference_{uuid.uuid4().hex[:10]}"
        self.identifier = sql.Identifier(self.name)

    def _run(self, *statements: sql.Composable) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)

    def create(self) -> None:
        self._run(
            sql.SQL("CREATE ROLE {} LOGIN").format(self.identifier),
            sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA public TO {}").format(self.identifier),
            sql.SQL("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {}").format(self.identifier),
        )

    def lock_out(self) -> None:
        self._run(sql.SQL("ALTER ROLE {} NOLOGIN").format(self.identifier))
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (self.name,),
            )

    def let_in(self) -> None:
        self._run(sql.SQL("ALTER ROLE {} LOGIN").format(self.identifier))

    def drop(self) -> None:
        self.lock_out()
        self._run(
            sql.SQL("DROP OWNED BY {}").format(self.identifier),
            sql.SQL("DROP ROLE {}").format(self.identifier),
        )


@pytest.fixture
def role(database_url: str) -> Iterator[LockableRole]:
    locked = LockableRole(database_url)
    locked.create()
    yield locked
    locked.drop()


@pytest.fixture
def stack(
    database_url: str, role: LockableRole, model_path: Path, tmp_path: Path
) -> Iterator[Stack]:
    with running_stack(
        database_url,
        model_path,
        tmp_path,
        services=("inference", "feedback"),
        per_service_env={
            "inference": {
                "DATABASE_URL": as_role(database_url, role.name),
                "PENDING_MAX_AGE_S": "6",
            }
        },
    ) as running:
        yield running


def pending(stack: Stack) -> float:
    text = httpx.get(f"{stack.url('inference')}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "cv_prediction_writes_pending":
                return sample.value
    raise AssertionError("no cv_prediction_writes_pending")


def rows_for(database_url: str, prediction_id: str) -> dict[str, int]:
    with psycopg.connect(database_url) as connection:
        return {
            table: connection.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
                    sql.Identifier(table), sql.Identifier(column)
                ),
                (prediction_id,),
            ).fetchone()[0]  # type: ignore[index]
            for table, column in [("monitoring", "id"), ("prediction_photos", "prediction_id")]
        }


def predict_while_locked_out(stack: Stack, role: LockableRole) -> str:
    role.lock_out()
    answer = httpx.post(
        f"{stack.url('inference')}/predict",
        files={"file": ("a.jpg", jpeg())},
        data={"rgpd_consent": "true", "photo_consent": "true"},
        timeout=15,
    )
    assert answer.status_code == 200, answer.text
    prediction_id: str = answer.json()["prediction_id"]
    assert pending(stack) >= 1
    return prediction_id


def test_an_erasure_before_the_prediction_is_written_erases_it_when_it_arrives(
    stack: Stack, role: LockableRole
) -> None:
    prediction_id = predict_while_locked_out(stack, role)
    erasure = httpx.delete(f"{stack.url('feedback')}/predictions/{prediction_id}", timeout=15)
    assert erasure.status_code == 202, erasure.text
    assert "as soon as" in erasure.json()["detail"]

    role.let_in()
    wait_for(lambda: pending(stack) == 0, 30, "inference to write what it held")
    assert rows_for(stack.database_url, prediction_id) == {"monitoring": 0, "prediction_photos": 0}
    access = httpx.get(f"{stack.url('feedback')}/predictions/{prediction_id}", timeout=15)
    assert access.status_code == 404


def test_inference_holds_an_unwritten_prediction_no_longer_than_its_age_bound(
    stack: Stack, role: LockableRole
) -> None:
    prediction_id = predict_while_locked_out(stack, role)
    # PENDING_MAX_AGE_S is 6: past it the row is dropped (counted), never written late.
    wait_for(lambda: pending(stack) == 0, 20, "the row held too long to be dropped")
    role.let_in()
    healthy = httpx.post(
        f"{stack.url('inference')}/predict", files={"file": ("a.jpg", jpeg())}, timeout=15
    ).json()["prediction_id"]
    wait_for(lambda: rows_for(stack.database_url, healthy)["monitoring"] == 1, 30, "writes again")
    assert rows_for(stack.database_url, prediction_id)["monitoring"] == 0
