"""Fixtures for the inference service's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.inference.app import create_app
from services.inference.settings import Settings


@pytest.fixture
def inference_settings(database_url: str, model_path: Path) -> Settings:
    """Settings pointing at the test's own database and the model under test."""
    return Settings(database_url=database_url, model_path=model_path, db_probe_interval_s=0.2)


@pytest.fixture
def client(inference_settings: Settings) -> Iterator[TestClient]:
    """The app with its lifespan running."""
    with TestClient(create_app(inference_settings)) as test_client:
        yield test_client
