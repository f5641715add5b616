"""The upload page's feedback buttons, in a real browser, against real inference and feedback."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import psycopg
import pytest
from playwright.sync_api import expect

from harness.services import ServiceProcess
from services.feedback.tests.conftest import ADMIN_TOKEN
from tests.support.images import jpeg

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def photo_to_upload(tmp_path: Path) -> Path:
    """A real cat photo from CV_DATASET_DIR, else a small in-memory image."""
    dataset = os.environ.get("CV_DATASET_DIR")
    photos = sorted(Path(dataset).glob("val/cat/*.jpg")) if dataset else []
    if photos:
        return photos[0]
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg((220, 20, 20)))
    return photo


def feedback_sample(metrics_text: str, satisfaction: str) -> float:
    """`cv_user_feedback_total{satisfaction=...}` from a scrape, 0 when absent."""
    pattern = rf'^cv_user_feedback_total\{{satisfaction="{satisfaction}"\}} (\S+)$'
    match = re.search(pattern, metrics_text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_thumbs_down_with_the_true_label_reaches_the_database_and_the_metrics(
    page, database_url: str, model_path: Path, tmp_path: Path, db: psycopg.Connection
) -> None:
    inference = ServiceProcess("inference", {}, tmp_path)
    feedback = ServiceProcess("feedback", {}, tmp_path)
    # Each needs the other's address, known only once both have a port.
    inference.env.update(
        DATABASE_URL=database_url,
        MODEL_PATH=str(model_path),
        FEEDBACK_PUBLIC_URL=feedback.url,
    )
    feedback.env.update(
        DATABASE_URL=database_url,
        FEEDBACK_ADMIN_TOKEN=ADMIN_TOKEN,
        FEEDBACK_ALLOWED_ORIGINS=inference.url,
    )
    problems: list[str] = []
    # Failed loads are judged by URL below, the favicon the browser asks for included.
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and not message.text.startswith("Failed to load resource")
            and problems.append(message.text)
        ),
    )
    page.on(
        "response",
        lambda response: (
            response.status >= 400 and problems.append(f"{response.status} {response.url}")
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))

    with feedback, inference:
        page.goto(inference.url + "/")
        assert not page.is_checked("#rgpd-consent")
        page.set_input_files("#file-input", str(photo_to_upload(tmp_path)))
        page.click("#submit")
        page.wait_for_selector("#result:not([hidden])", timeout=15_000)
        prediction_id = page.text_content("#prediction-id")
        # From the stored answer: a photo of neither is headlined so, whatever the model picked.
        (predicted,) = db.execute(
            "SELECT prediction_result FROM monitoring WHERE id = %s", (prediction_id,)
        ).fetchone()
        actual = "dog" if predicted == "cat" else "cat"

        page.check("#rgpd-consent")
        page.click("#feedback-no")
        page.click(f"#true-{actual}")
        expect(page.locator("#feedback-status")).to_contain_text("Thank you", timeout=15_000)
        status = page.text_content("#feedback-status") or ""
        scraped = httpx.get(f"{feedback.url}/metrics", timeout=5).text
        page.screenshot(path=str(tmp_path / "feedback.png"))

        assert "kept" in status
        assert feedback_sample(scraped, "unsatisfied") == 1.0
        assert feedback_sample(scraped, "satisfied") == 0.0
        row = db.execute(
            "SELECT f.satisfaction, f.true_label, m.user_feedback, m.prediction_result "
            "FROM feedback f JOIN monitoring m ON m.id = f.prediction_id WHERE m.id = %s",
            (prediction_id,),
        ).fetchone()
        assert row == ("unsatisfied", actual, 0, predicted)
        assert db.execute("SELECT count(*) FROM prediction_photos").fetchone() == (0,)

        page.click("#erase")
        page.click("#erase-yes")  # erasing asks first
        expect(page.locator("#feedback-status")).to_contain_text("Erased", timeout=15_000)
        assert db.execute(
            "SELECT count(*) FROM monitoring WHERE id = %s", (prediction_id,)
        ).fetchone() == (0,)

        # Consent is per prediction: the next photo starts unticked.
        next_photo = tmp_path / "next.jpg"
        next_photo.write_bytes(jpeg((20, 20, 220)))
        page.set_input_files("#file-input", str(next_photo))
        assert not page.is_checked("#rgpd-consent")
        assert not page.is_checked("#photo-consent")
    assert problems == []
