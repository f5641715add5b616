"""The upload page in a real browser against the real service."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from harness.services import ServiceProcess
from tests.support.images import jpeg

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_upload_shows_the_answer_and_both_probabilities(
    page, database_url: str, model_path: Path, tmp_path: Path, db: psycopg.Connection
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg((220, 20, 20)))
    env = {"DATABASE_URL": database_url, "MODEL_PATH": str(model_path)}
    with ServiceProcess("inference", env, tmp_path) as service:
        page.goto(service.url + "/")
        assert not page.is_checked("#rgpd-consent")
        page.set_input_files("#file-input", str(photo))
        page.check("#rgpd-consent")
        page.click("#submit")
        page.wait_for_selector("#result:not([hidden])", timeout=15_000)
        verdict = page.text_content("#verdict")
        assert verdict and ("cat" in verdict or "dog" in verdict)
        cat, dog = page.text_content("#proba-cat"), page.text_content("#proba-dog")
        assert cat and dog and cat.endswith("%") and dog.endswith("%")
        prediction_id = page.text_content("#prediction-id")
        page.screenshot(path=str(tmp_path / "upload.png"))

    row = db.execute(
        "SELECT rgpd_consent FROM monitoring WHERE id = %s", (prediction_id,)
    ).fetchone()
    assert row == (True,)
