"""Fixtures of the system tests: the whole stack as real processes, shared per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from harness.stack import Stack, running_stack
from tests.support.postgres import fresh_database


@pytest.fixture(scope="module")
def module_database(pg_admin_url: str, template_database: str) -> Iterator[str]:
    """A migrated database shared by the tests of one module."""
    with fresh_database(pg_admin_url, template_database, "cv_system") as url:
        yield url


@pytest.fixture(scope="session")
def session_database(pg_admin_url: str, template_database: str) -> Iterator[str]:
    """The migrated database of the shared stack."""
    with fresh_database(pg_admin_url, template_database, "cv_system") as url:
        yield url


@pytest.fixture(scope="session")
def stack(
    session_database: str, model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Every service running as in production (tokens, passwords, Discord), no monitoring.

    Shared by the modules that do not break it (fuzzing, injection, security), to start it once.
    Feedback waits only briefly for a prediction it does not know, so that fuzzing and guessing
    unknown ids stay quick.
    """
    with running_stack(
        session_database,
        model_path,
        tmp_path_factory.mktemp("stack"),
        extra_env={"PREDICTION_WAIT_S": "0.3"},
    ) as running:
        yield running


@pytest.fixture
def db_conn(stack: Stack) -> Iterator[psycopg.Connection]:
    """A connection to the shared stack's database, for arranging and asserting."""
    with psycopg.connect(stack.database_url, autocommit=True) as connection:
        yield connection
