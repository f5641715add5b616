"""The upload page in a real browser against the real service."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import expect

from harness.services import ServiceProcess
from services.common.i18n import load_catalogues
from services.inference.routes import STATIC_DIR
from tests.support.images import encode, jpeg, solid

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


# --- the page in French and English --------------------------------------------------------

CATALOGUES = load_catalogues(STATIC_DIR / "i18n")
ADMIN_TOKEN = "test-admin-token-upload-page"
# Recorded from the first script on, so a violation while the page is built counts too.
WATCH_CSP = """
window.__violations = [];
document.addEventListener(
  'securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective));
"""


@pytest.fixture
def page_services(
    database_url: str, model_path: Path, tmp_path: Path
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Inference serving the page and the feedback service it sends to, each knowing the other."""
    inference = ServiceProcess("inference", {}, tmp_path)
    feedback = ServiceProcess("feedback", {}, tmp_path)
    inference.env.update(
        DATABASE_URL=database_url, MODEL_PATH=str(model_path), FEEDBACK_PUBLIC_URL=feedback.url
    )
    feedback.env.update(
        DATABASE_URL=database_url,
        FEEDBACK_ADMIN_TOKEN=ADMIN_TOKEN,
        FEEDBACK_ALLOWED_ORIGINS=inference.url,
    )
    with feedback, inference:
        yield inference, feedback


def browser_page(browser: Any, locale: str) -> tuple[Any, list[str]]:
    """A page of a browser speaking `locale` (its Accept-Language), and what went wrong on it."""
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.add_init_script(WATCH_CSP)
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and not message.text.startswith("Failed to load resource")
            and problems.append(message.text)
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    return page, problems


def before_placeholder(text: str) -> str:
    return text.split("{", 1)[0]


@pytest.mark.parametrize(("locale", "language"), [("en-US", "en"), ("fr-FR", "fr")])
def test_upload_consent_feedback_and_erasure_in_the_browsers_language(
    browser: Any,
    page_services: tuple[ServiceProcess, ServiceProcess],
    db: psycopg.Connection,
    tmp_path: Path,
    locale: str,
    language: str,
) -> None:
    inference, _ = page_services
    words = CATALOGUES[language]
    page, problems = browser_page(browser, locale)
    refused: list[str] = []
    page.on(
        "response",
        lambda response: (
            response.status >= 400
            and refused.append(f"{response.status} {response.url.removeprefix(inference.url)}")
        ),
    )

    page.goto(inference.url + "/")
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(page.locator("h1")).to_have_text(words["page.title"])
    assert page.title() == words["page.title"]
    expect(page.locator("#drop-text")).to_have_text(words["upload.drop"])
    expect(page.locator(".consent legend")).to_have_text(words["consent.legend"])
    expect(page.locator("#submit")).to_have_text(words["upload.submit"])
    expect(page.locator("#monitoring-link")).to_have_attribute(
        "href", f"/monitoring?lang={language}"
    )

    # A refused upload shows the page's words for its status, not the API's English detail.
    page.set_input_files(
        "#file-input", files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"notes"}]
    )
    page.click("#submit")
    expect(page.locator("#error")).to_have_text(words["error.predict.400"])
    # A format the decoder refuses: the page names the ones it takes, as people know them.
    page.set_input_files(
        "#file-input",
        files=[
            {
                "name": "scan.tif",
                "mimeType": "image/tiff",
                "buffer": encode(solid((1, 2, 3)), "TIFF"),
            }
        ],
    )
    page.click("#submit")
    expect(page.locator("#error")).to_have_text(
        words["error.predict.415"].format(formats="JPEG, PNG, WebP, GIF, BMP, HEIC, HEIF, AVIF")
    )

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg((220, 20, 20)))
    page.set_input_files("#file-input", str(photo))
    expect(page.locator("#error")).to_be_hidden()
    page.check("#rgpd-consent")
    page.check("#photo-consent")
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=15_000)
    prediction_id = page.text_content("#prediction-id")
    verdict = page.text_content("#verdict") or ""
    # A plain colour may well be neither (with the committed model): the headline says which.
    predicted = "cat" if page.get_attribute("#true-cat", "hidden") is not None else "dog"
    heads = (words["result.neither"], before_placeholder(words[f"result.{predicted}"]))
    assert verdict.startswith(heads), verdict
    actual = "dog" if predicted == "cat" else "cat"
    expect(page.locator("#feedback-no")).to_have_attribute("aria-label", words["feedback.no_label"])

    page.click("#feedback-no")
    expect(page.locator("#feedback-status")).to_have_text(words["feedback.what_was_it"])
    page.click(f"#true-{actual}")
    expect(page.locator("#feedback-status")).to_have_text(words["feedback.kept"], timeout=15_000)
    row = db.execute(
        "SELECT f.true_label, m.rgpd_consent FROM feedback f"
        " JOIN monitoring m ON m.id = f.prediction_id WHERE m.id = %s",
        (prediction_id,),
    ).fetchone()
    assert row == (actual, True)

    # What is kept, as a person reads it: fields in the page's words, dates in its language,
    # the photo as a picture; the raw JSON only as a file to download.
    page.click("#access")
    kept = page.locator("#kept")
    expect(kept).to_be_visible(timeout=15_000)
    terms = page.locator("#kept dt").all_inner_texts()
    assert terms[:2] == [words["kept.made"], words["kept.answer"]], terms
    made = page.locator("#kept dd").first.inner_text()
    assert not re.search(r"\d{4}-\d{2}-\d{2}T", made), made
    month = page.evaluate(
        "(language) => new Intl.DateTimeFormat(language, {month: 'long'}).format(new Date())",
        language,
    )
    assert month in made, made
    assert words[f"feedback.{predicted}"] in kept.inner_text()
    assert "base64" not in kept.inner_text() and len(kept.inner_text()) < 1_000
    assert page.evaluate("document.getElementById('kept-photo').naturalWidth") > 0
    with page.expect_download() as download:
        page.click("#kept-download")
    raw = json.loads(Path(download.value.path()).read_text())
    assert raw["prediction_id"] == prediction_id
    assert raw["photo"]["image_base64"]
    page.screenshot(path=str(tmp_path / f"kept-{language}.png"), full_page=True)

    # Erasing asks first: cancelled, nothing is erased.
    page.click("#erase")
    expect(page.locator("#erase-confirm")).to_contain_text(words["rights.erase_confirm"])
    page.click("#erase-cancel")
    expect(page.locator("#erase-confirm")).to_be_hidden()
    assert db.execute(
        "SELECT count(*) FROM monitoring WHERE id = %s", (prediction_id,)
    ).fetchone() == (1,)
    page.click("#erase")
    page.click("#erase-yes")
    expect(page.locator("#feedback-status")).to_have_text(words["rights.erased"], timeout=15_000)
    expect(kept).to_be_hidden()
    assert db.execute(
        "SELECT count(*) FROM monitoring WHERE id = %s", (prediction_id,)
    ).fetchone() == (0,)

    assert problems == []
    assert page.evaluate("window.__violations") == []
    assert refused == ["400 /predict", "415 /predict"]
    page.context.close()


def test_the_switch_overrides_the_browser_and_is_remembered(
    browser: Any, page_services: tuple[ServiceProcess, ServiceProcess], tmp_path: Path
) -> None:
    inference, _ = page_services
    french, english = CATALOGUES["fr"], CATALOGUES["en"]
    page, problems = browser_page(browser, "fr-FR")
    page.goto(inference.url + "/")
    expect(page.locator("h1")).to_have_text(french["page.title"])
    expect(page.locator('#languages a[data-lang="fr"]')).to_have_attribute("aria-current", "true")

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg((20, 20, 220)))
    page.set_input_files("#file-input", str(photo))
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=15_000)
    page.click("#feedback-no")
    expect(page.locator("#feedback-status")).to_have_text(french["feedback.what_was_it"])

    # What the page wrote itself changes language with the rest, the figures with it.
    page.click('#languages a[data-lang="en"]')
    expect(page.locator("h1")).to_have_text(english["page.title"])
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#feedback-status")).to_have_text(english["feedback.what_was_it"])
    verdict = page.text_content("#verdict") or ""
    assert verdict.startswith(("It's a ", english["result.neither"])), verdict
    figures = verdict + (page.text_content("#not-pet-warning") or "")
    assert "." in figures, figures
    assert page.url.endswith("/?lang=en")

    # Remembered: the same French browser, back without the parameter, stays in English...
    page.goto(inference.url + "/")
    expect(page.locator("h1")).to_have_text(english["page.title"])
    # ...while an address that names a language still wins.
    page.goto(inference.url + "/?lang=fr")
    expect(page.locator("h1")).to_have_text(french["page.title"])
    assert problems == []
    assert page.evaluate("window.__violations") == []
    page.context.close()


@pytest.fixture
def choosy_model(tiny_model_path: Path, tmp_path: Path) -> Path:
    """The tiny model with a card that calls a photo "neither" under 0.9: grey is neither."""
    folder = tmp_path / "choosy"
    folder.mkdir()
    model = folder / tiny_model_path.name
    shutil.copyfile(tiny_model_path, model)
    card = json.loads(tiny_model_path.with_suffix(".json").read_text())
    model.with_suffix(".json").write_text(json.dumps({**card, "pet_threshold": 0.9}))
    return model


@pytest.mark.parametrize(("locale", "language"), [("en-US", "en"), ("fr-FR", "fr")])
def test_neither_a_failed_upload_and_a_photo_past_the_hourly_quota(
    browser: Any,
    database_url: str,
    choosy_model: Path,
    tmp_path: Path,
    locale: str,
    language: str,
) -> None:
    words = CATALOGUES[language]
    env = {
        "DATABASE_URL": database_url,
        "MODEL_PATH": str(choosy_model),
        "KEPT_PHOTOS_PER_CLIENT_PER_HOUR": "1",
    }
    page, problems = browser_page(browser, locale)
    with ServiceProcess("inference", env, tmp_path) as inference:
        page.goto(inference.url + "/")
        grey, red = tmp_path / "grey.jpg", tmp_path / "red.jpg"
        grey.write_bytes(jpeg((128, 128, 128)))
        red.write_bytes(jpeg((220, 20, 20)))

        # Neither: the headline says so; the model's pick is only the warning's guess.
        page.set_input_files("#file-input", str(grey))
        page.check("#photo-consent")
        page.click("#submit")
        expect(page.locator("#verdict")).to_have_text(words["result.neither"], timeout=15_000)
        warning = page.text_content("#not-pet-warning") or ""
        assert warning.startswith(before_placeholder(words["result.not_pet"])), warning
        assert words["result.guess_dog"] in warning
        expect(page.locator("#photo-not-kept")).to_be_hidden()

        # The second photo kept this hour is past the quota of one: the page says so.
        page.set_input_files("#file-input", str(red))
        page.check("#photo-consent")
        page.click("#submit")
        verdict = page.locator("#verdict")
        expect(verdict).to_have_text(
            re.compile("^" + re.escape(before_placeholder(words["result.cat"]))), timeout=15_000
        )
        expect(page.locator("#not-pet-warning")).to_be_hidden()
        expect(page.locator("#photo-not-kept")).to_have_text(words["photo.hourly_quota"])

        # A failed upload takes the earlier answer off the screen.
        page.set_input_files(
            "#file-input",
            files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"notes"}],
        )
        page.click("#submit")
        expect(page.locator("#error")).to_have_text(words["error.predict.400"])
        expect(page.locator("#result")).to_be_hidden()
    assert problems == []
    assert page.evaluate("window.__violations") == []
    page.context.close()
