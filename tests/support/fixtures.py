"""Fixtures every test folder shares (loaded from the root conftest)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from harness.fake_discord import FakeDiscord
from services.common.migrate import apply_migrations, with_database
from tests.support.postgres import docker_available
from tests.support.tiny_model import build_tiny_model

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED_MODEL = REPO_ROOT / "models" / "cat_dog_classifier.onnx"


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server: TEST_DATABASE_URL, else a container where Docker runs, else embedded."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if docker_available():
        from testcontainers.postgres import PostgresContainer  # type: ignore[import-not-found]

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pgserver"), cleanup_mode="stop")
    yield server.get_uri()


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


@pytest.fixture(scope="session")
def template_database(pg_admin_url: str) -> Iterator[str]:
    """A migrated database that every test's database is copied from."""
    name = f"cv_template_{os.getpid()}"
    with _admin(pg_admin_url) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    apply_migrations(with_database(pg_admin_url, name))
    yield name
    with _admin(pg_admin_url) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def database_url(pg_admin_url: str, template_database: str) -> Iterator[str]:
    """A clean, migrated database of its own for each test."""
    name = f"cv_test_{uuid.uuid4().hex[:12]}"
    with _admin(pg_admin_url) as connection:
        connection.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_database)
            )
        )
    yield with_database(pg_admin_url, name)
    with _admin(pg_admin_url) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """A plain connection to the test's database, for arranging and asserting."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ONNX model with the served signature (red images are cats, blue are dogs)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def model_path(tiny_model_path: Path) -> Path:
    """The committed model when there is one, else the tiny one."""
    return COMMITTED_MODEL if COMMITTED_MODEL.exists() else tiny_model_path


@pytest.fixture(scope="session")
def dataset_dir() -> Path:
    """The real photos (CV_DATASET_DIR); tests that need them skip, saying so, without it."""
    configured = os.environ.get("CV_DATASET_DIR")
    if not configured or not Path(configured).is_dir():
        pytest.skip("CV_DATASET_DIR is not set or missing: real-photo tests skipped")
    return Path(configured)


@pytest.fixture
def fake_discord() -> Iterator[FakeDiscord]:
    """A fake Discord in a thread of this process (5 requests per 2 s per webhook)."""
    with FakeDiscord() as fake:
        yield fake


@pytest.fixture(autouse=True)
def model_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's model registry keeps its files in its own folder (MODEL_STORE_DIR)."""
    store = tmp_path / "model-store"
    monkeypatch.setenv("MODEL_STORE_DIR", str(store))
    return store
