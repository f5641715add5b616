"""The dashboard in French and English: chosen per request, the same keys in both catalogues."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect

from harness.services import ServiceProcess
from services.common.i18n import LANGUAGES, load_catalogues
from services.dashboard.language import CATALOGUES
from services.dashboard.layout import GRAPHS, WATCH_GRAPHS
from services.dashboard.seed import seed
from services.dashboard.tests.conftest import PASSWORD, USER, call_callback, figure_text

STATUS = [("status", "children"), ("status", "className"), ("kpis", "children")]
SERIES = [
    (graph, "figure")
    for graph in ("graph-traffic", "graph-versions", "graph-low-confidence", "graph-consent")
]
TABLES = [("latest-table", "children")]
VERSIONS = [("versions-table", "children"), ("graph-version-accuracy", "figure")]
WATCH = [("watch-table", "children")] + [(graph, "figure") for graph in WATCH_GRAPHS]
SOURCE = Path(__file__).resolve().parents[1]


def texts(component: Any) -> list[str]:
    """Every string in a serialised Dash component tree."""
    if isinstance(component, str):
        return [component]
    if isinstance(component, list):
        return [text for child in component for text in texts(child)]
    if isinstance(component, dict):
        values = component.get("props", component)
        return [text for value in values.values() for text in texts(value)]
    return []


def test_both_catalogues_have_every_key_the_code_names() -> None:
    assert load_catalogues(SOURCE / "i18n") == CATALOGUES
    code = "".join(
        (SOURCE / name).read_text(encoding="utf-8")
        for name in ("layout.py", "callbacks.py", "figures.py", "rates.py", "language.py")
    )
    named = set(re.findall(r'\bt\(\s*"([\w.]+)"', code))
    named |= set(GRAPHS.values()) | set(WATCH_GRAPHS.values())
    assert len(named) > 60
    for language in LANGUAGES:
        assert sorted(named - CATALOGUES[language].keys()) == [], language


@pytest.mark.parametrize(
    ("path", "headers", "language"),
    [
        ("/monitoring/", {"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.8"}, "fr"),
        ("/monitoring/", {"Accept-Language": "en-GB"}, "en"),
        ("/monitoring/", {}, "en"),
        ("/monitoring/?lang=en", {"Accept-Language": "fr-FR"}, "en"),
        ("/monitoring/?lang=fr", {"Accept-Language": "en-US"}, "fr"),
    ],
)
def test_page_is_in_the_language_asked_for_or_the_browsers(
    client: TestClient, path: str, headers: dict[str, str], language: str
) -> None:
    response = client.get(path, headers=headers)
    assert response.status_code == 200
    assert f'<html lang="{language}">' in response.text
    assert f"<title>{CATALOGUES[language]['page.title']}</title>" in response.text
    config = re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>',
                       response.text)  # fmt: skip
    assert config is not None
    # The page's own requests carry its language: Dash sends them under this prefix.
    assert json.loads(config.group(1))["requests_pathname_prefix"] == f"/monitoring/{language}/"


def test_bare_address_keeps_the_language_it_was_asked_for(client: TestClient) -> None:
    response = client.get("/monitoring?lang=fr", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/monitoring/?lang=fr"


@pytest.mark.parametrize("language", LANGUAGES)
def test_layout_is_in_the_language_of_its_address(client: TestClient, language: str) -> None:
    words = CATALOGUES[language]
    other_language = "fr" if language == "en" else "en"
    other = CATALOGUES[other_language]
    # The header says the other language: the address decides.
    layout = client.get(
        f"/monitoring/{language}/_dash-layout", headers={"Accept-Language": other_language}
    )
    assert layout.status_code == 200
    shown = texts(layout.json())
    for key in ("page.title", "graph.traffic", "watch.note", "latest.title", "range.30d"):
        assert words[key] in shown, key
        assert other[key] not in shown, key
    assert client.get(f"/monitoring/{language}/_dash-dependencies").status_code == 200


def test_callbacks_answer_in_the_language_of_the_request(client: TestClient) -> None:
    english = call_callback(client, STATUS)["status"]["children"]
    assert english == CATALOGUES["en"]["status.no_predictions"].format(
        command="python -m services.dashboard.seed --rows 100000"
    )
    client.headers["Accept-Language"] = "fr-FR"
    french = call_callback(client, STATUS)["status"]["children"]
    assert french.startswith("Aucune prédiction enregistrée")
    for figure in call_callback(client, SERIES).values():
        assert figure_text(figure["figure"]).startswith("Aucune prédiction entre ")


def test_every_filled_panel_speaks_french(client: TestClient, database_url: str) -> None:
    seed(database_url, rows=3000, days=2, progress=False)
    client.headers["Accept-Language"] = "fr"
    status = call_callback(client, STATUS)
    assert re.match(r"^[\d\u202f]+ prédictions, .* \(un point par 15 min\)\. Mis à jour à ",
                    status["status"]["children"])  # fmt: skip
    kpis = texts(status["kpis"]["children"])
    assert "Exactitude en direct (avis)" in kpis
    assert any(re.fullmatch(r"\d+,\d\u202f%", text) for text in kpis), kpis
    assert any("IC à 95 %" in text for text in kpis), kpis

    traffic = call_callback(client, SERIES)["graph-traffic"]["figure"]
    assert {trace["name"] for trace in traffic["data"]} == {"chat", "chien"}
    assert traffic["layout"]["yaxis"]["title"]["text"] == "prédictions"
    assert traffic["layout"]["separators"] == ", "

    shown = texts(call_callback(client, TABLES)["latest-table"]["children"])
    assert {"heure (UTC)", "consentement", "oui", "non"} <= set(shown)
    assert {"chat", "chien"} & set(shown)
    assert not {"yes", "no", "cat", "dog", "satisfied"} & set(shown)

    versions = texts(call_callback(client, VERSIONS)["versions-table"]["children"])
    assert "rôle au registre" in versions
    assert any(" sur " in text for text in versions), versions
    assert CATALOGUES["fr"]["role.none"] in versions or any("depuis le" in v for v in versions)

    watch = texts(call_callback(client, WATCH)["watch-table"]["children"])
    assert "dérive des plongements" in watch
    assert any(re.search(r"(pas de )?dérive \(p = \d,\d{3}, ", text) for text in watch), watch
    drift = call_callback(client, WATCH)["graph-drift"]["figure"]
    hovers = [trace.get("hovertemplate", "") for trace in drift["data"]]
    assert any("seuil</extra>" in hover for hover in hovers), hovers
    assert drift["layout"]["yaxis"]["title"]["text"] == CATALOGUES["fr"]["figure.mmd"]


@pytest.mark.browser
@pytest.mark.slow
def test_browser_gets_its_language_and_the_switch_changes_it(
    browser: Any, database_url: str, tmp_path: Path
) -> None:
    seed(database_url, rows=2000, days=1, progress=False)
    env = {
        "DATABASE_URL": database_url,
        "DASHBOARD_USER": USER,
        "DASHBOARD_PASSWORD": PASSWORD,
        "DEV_MODE": "false",
    }
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    context = browser.new_context(
        locale="fr-FR",
        viewport={"width": 1280, "height": 900},
        extra_http_headers={"Authorization": f"Basic {token}"},
    )
    page = context.new_page()
    page.add_init_script(
        "window.__violations = []; document.addEventListener('securitypolicyviolation',"
        " (e) => window.__violations.push(e.violatedDirective));"
    )
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    french, english = CATALOGUES["fr"], CATALOGUES["en"]
    with ServiceProcess("dashboard", env, tmp_path) as service:
        page.goto(service.url + "/monitoring/")
        expect(page.locator("h1")).to_have_text(french["page.title"], timeout=30_000)
        expect(page.locator("html")).to_have_attribute("lang", "fr")
        expect(page.locator("#status")).to_contain_text("prédictions,", timeout=30_000)
        expect(page.locator("#kpis")).to_contain_text(french["kpi.accuracy"])
        expect(page.locator('#languages a[lang="fr"]')).to_have_attribute("aria-current", "true")
        page.get_by_text(french["range.30d"]).click()
        expect(page.locator("#status")).to_contain_text("un point par 6 h", timeout=30_000)
        page.screenshot(path=str(tmp_path / "dashboard-fr.png"), full_page=True)

        page.click('#languages a[lang="en"]')
        expect(page.locator("h1")).to_have_text(english["page.title"], timeout=30_000)
        expect(page.locator("#status")).to_contain_text("predictions,", timeout=30_000)
        assert page.url.endswith("/monitoring/?lang=en")
        # The address keeps the choice: reloading stays in English despite the French browser.
        page.reload()
        expect(page.locator("#status")).to_contain_text("one point per", timeout=30_000)
        expect(page.locator("html")).to_have_attribute("lang", "en")
        assert page.evaluate("window.__violations") == []
    context.close()
    assert problems == []
