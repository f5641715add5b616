"""Hostile text everywhere it can enter: SQL-looking strings stay data, markup is shown as text
in a real browser (no script runs), and path tricks in ids and static paths find nothing."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from harness.services import ServiceProcess
from harness.stack import Stack, wait_for
from tests.support.images import jpeg
from tests.support.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow

SQL_STRINGS = [
    "'; DROP TABLE monitoring; --",
    "' OR '1'='1",
    "1); DELETE FROM feedback; --",
    "\\'; TRUNCATE notifier_outbox; --",
    "$$; DROP TABLE notifier_dedup; $$",
    "x' UNION SELECT usename, passwd FROM pg_shadow --",
]
XSS = '<img src=x onerror="window.__xss=1;alert(1)">'
TABLES = ["monitoring", "feedback", "prediction_photos", "notifier_outbox", "notifier_dedup"]


def table_counts(db: psycopg.Connection) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        row = db.execute(f"SELECT count(*) FROM {table}").fetchone()  # every table still there
        assert row is not None
        counts[table] = int(row[0])
    return counts


def test_sql_in_every_text_field_is_kept_as_text(stack: Stack, db_conn: psycopg.Connection) -> None:
    before = table_counts(db_conn)
    feedback, notifier = stack.url("feedback"), stack.url("notifier")
    answer = httpx.post(
        f"{stack.url('inference')}/predict",
        files={"file": ("'; DROP TABLE monitoring; --.jpg", jpeg(), "image/jpeg")},
        data={"rgpd_consent": "' OR '1'='1"},
        timeout=15,
    )
    assert answer.status_code == 422, answer.text  # consent must be true or false
    for text in SQL_STRINGS:
        for field in ("prediction_id", "satisfaction", "true_label", "rgpd_consent"):
            body = {
                "prediction_id": str(uuid.uuid4()),
                "satisfaction": "satisfied",
                "rgpd_consent": True,
                field: text,
            }
            response = httpx.post(f"{feedback}/feedback", json=body, timeout=15)
            assert response.status_code == 422, (field, text, response.text)
        for params in ({"after": text}, {"limit": text}):
            response = httpx.get(
                f"{feedback}/admin/feedback", params=params, headers=stack.admin_auth, timeout=15
            )
            assert response.status_code == 422, (params, response.text)

    delivered = len(stack.discord.messages())
    for index, text in enumerate(SQL_STRINGS):
        body = {"title": text, "message": text, "level": "warning", "dedup_key": text}
        response = httpx.post(f"{notifier}/notify", json=body, headers=stack.notifier_auth)
        assert response.status_code == 202, response.text
        alert = {
            "status": "firing",
            "labels": {"alertname": text, "severity": "warning", "job": text, text: text},
            "annotations": {"summary": text, "description": text},
            "startsAt": "2026-11-28T22:00:00Z",
            "fingerprint": f"sql{index}",
        }
        webhook = {"groupKey": text, "status": "firing", "receiver": text, "alerts": [alert]}
        response = httpx.post(f"{notifier}/alertmanager", json=webhook, headers=stack.notifier_auth)
        assert response.status_code == 202, response.text
    expected = delivered + 2 * len(SQL_STRINGS)
    messages = stack.discord.wait_for_messages(expected, timeout_s=60)
    posted = json.dumps(messages[delivered:])
    for text in SQL_STRINGS:
        assert json.dumps(text)[1:-1] in posted, text

    after = table_counts(db_conn)
    assert after["notifier_outbox"] == before["notifier_outbox"] + 2 * len(SQL_STRINGS)
    assert after["notifier_dedup"] >= before["notifier_dedup"] + len(SQL_STRINGS)
    assert after["monitoring"] >= before["monitoring"] and after["feedback"] >= before["feedback"]


def test_control_characters_in_a_photo_part_header_lose_no_prediction(
    stack: Stack, db_conn: psycopg.Connection
) -> None:
    """A prediction answered 200 is stored, whatever the client wrote in its part headers."""
    boundary = "cv-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\x00'; DROP TABLE monitoring; --\r\n\r\n"
    )
    tail = (
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="photo_consent"\r\n\r\n'
        f"true\r\n--{boundary}--\r\n"
    )
    response = httpx.post(
        f"{stack.url('inference')}/predict",
        content=head.encode() + jpeg() + tail.encode(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=15,
    )
    assert response.status_code == 200, response.text
    prediction_id = response.json()["prediction_id"]

    def stored() -> bool:
        query = "SELECT count(*) FROM monitoring WHERE id = %s"
        row = db_conn.execute(query, (prediction_id,)).fetchone()
        return row is not None and row[0] == 1

    wait_for(stored, 30, "the answered prediction in PostgreSQL")
    row = db_conn.execute(
        "SELECT content_type FROM prediction_photos WHERE prediction_id = %s", (prediction_id,)
    ).fetchone()
    assert row is not None and "\x00" not in row[0]


def test_text_postgresql_cannot_store_is_refused_not_called_an_outage(stack: Stack) -> None:
    """A NUL character cannot be stored in PostgreSQL text: a 4xx, never a retryable 503."""
    notifier = stack.url("notifier")
    response = httpx.post(
        f"{notifier}/notify", json={"title": "nul \x00 inside"}, headers=stack.notifier_auth
    )
    assert response.status_code in {202, 422}, response.text
    alert = {"status": "firing", "labels": {"alertname": "Nul\x00"}, "fingerprint": "nul"}
    webhook = {"groupKey": "nul\x00", "status": "firing", "alerts": [alert]}
    response = httpx.post(f"{notifier}/alertmanager", json=webhook, headers=stack.notifier_auth)
    assert response.status_code in {202, 422}, response.text
    assert httpx.get(f"{notifier}/ready").json()["database"] == "ok"


def raw_request(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Send the path byte for byte (clients normalise `..` away); status and body."""
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


TRAVERSALS = [
    "../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252fetc%252fpasswd",
    "..%5c..%5cetc%5cpasswd",
    "....//....//etc/passwd",
    "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "..%00/etc/passwd",
    "/etc/passwd",
]


def basic_login(stack: Stack) -> str:
    return "Basic " + base64.b64encode(":".join(stack.dashboard_auth).encode()).decode()


def test_path_traversal_finds_no_file_and_no_error(stack: Stack) -> None:
    login = basic_login(stack)
    targets = [
        ("feedback", "/predictions/{}", {}),
        ("inference", "/static/{}", {}),
        ("inference", "/{}", {}),
        ("dashboard", "/monitoring/assets/{}", {"Authorization": login}),
        (
            "dashboard",
            "/monitoring/_dash-component-suites/dash/{}",
            {"Authorization": login},
        ),
    ]
    wrong = []
    for service, template, headers in targets:
        for trick in TRAVERSALS:
            path = template.format(trick)
            status, body = raw_request(stack.services[service].port, path, headers)
            if status not in {400, 404, 422} or b"root:" in body or b"/bin/" in body:
                wrong.append(f"{service} {path} -> {status} {body[:80]!r}")
    for method in ("GET", "DELETE"):
        response = httpx.request(method, f"{stack.url('feedback')}/predictions/..%2f..%2fetc")
        if response.status_code not in {404, 422, 429}:
            wrong.append(f"{method} feedback ..%2f..%2fetc -> {response.status_code}")
    assert not wrong, f"{len(wrong)} traversal attempts not refused cleanly:\n" + "\n".join(wrong)


# --- markup in a real browser ------------------------------------------------------------

WATCH_SCRIPT = """
window.__dialogs = [];
window.__violations = [];
document.addEventListener(
  'securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective));
"""


def watch(page: Any) -> list[str]:
    """Record dialogs (alert/confirm) and CSP violations from the first script on."""
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.add_init_script(WATCH_SCRIPT)
    return dialogs


def assert_nothing_ran(page: Any, dialogs: list[str]) -> None:
    assert page.evaluate("window.__xss") is None, "an injected handler ran"
    assert dialogs == [], dialogs
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert page.evaluate("window.__violations") == [], "markup was injected (blocked by CSP)"


@pytest.fixture
def hostile_model(tmp_path: Path) -> Path:
    """A working model whose card names its version with markup."""
    return build_tiny_model(tmp_path / "model", version=XSS)


@pytest.fixture
def page_stack(
    tmp_path: Path, database_url: str, hostile_model: Path, stack: Stack
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    inference = ServiceProcess("inference", {}, tmp_path)
    feedback = ServiceProcess("feedback", {}, tmp_path)
    base = {
        **{k: v for k, v in stack.services["feedback"].env.items() if k not in {"DATABASE_URL"}},
        "DATABASE_URL": database_url,
        "MODEL_PATH": str(hostile_model),
    }
    inference.env.update({**base, "FEEDBACK_PUBLIC_URL": feedback.url})
    feedback.env.update({**base, "FEEDBACK_ALLOWED_ORIGINS": inference.url})
    with inference, feedback:
        yield inference, feedback


@pytest.mark.browser
def test_upload_page_shows_markup_as_text(
    page: Any, page_stack: tuple[ServiceProcess, ServiceProcess], db: psycopg.Connection
) -> None:
    inference, _ = page_stack
    dialogs = watch(page)
    name = '<img src=x onerror="window.__xss=2">.jpg'
    page.goto(inference.url + "/")
    page.set_input_files(
        "#file-input", files=[{"name": name, "mimeType": "image/jpeg", "buffer": jpeg()}]
    )
    assert page.text_content("#drop-text") == name
    page.check("#rgpd-consent")
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=20_000)
    assert page.text_content("#model-version") == XSS
    prediction_id = page.text_content("#prediction-id")
    page.click("#feedback-no")
    page.click("#true-dog")
    page.locator("#feedback-status", has_text="Thank you").wait_for(timeout=20_000)
    assert_nothing_ran(page, dialogs)
    row = db.execute("SELECT model_version FROM monitoring WHERE id = %s", (prediction_id,))
    assert row.fetchone() == (XSS,)


@pytest.mark.browser
def test_dashboard_shows_markup_as_text(
    page: Any, stack: Stack, db_conn: psycopg.Connection
) -> None:
    for index, result in enumerate(["cat", "dog"]):
        db_conn.execute(
            "INSERT INTO monitoring (id, prediction_result, proba_cat, proba_dog, confidence,"
            " inference_time_ms, model_version, rgpd_consent, user_feedback)"
            " VALUES (%s, %s, 0.5, 0.5, 0.5, 1.0, %s, true, 0)",
            (uuid.uuid4(), result, f"{XSS}{index}"),
        )
    dialogs = watch(page)
    page.context.set_extra_http_headers({"Authorization": basic_login(stack)})
    page.goto(stack.url("dashboard") + "/monitoring/")
    # Both tables name the version: the latest predictions and the per-version comparison.
    for table in ("#latest-table", "#versions-table"):
        cell = page.locator(table).get_by_role("cell", name=f"{XSS}0", exact=True)
        cell.wait_for(timeout=30_000)
    # Plotly's legend names the model versions: the markup is its text, not elements.
    legend = page.locator(".legendtext", has_text=XSS)
    wait_for(lambda: legend.count() >= 2, 30, "the versions graph's legend")
    assert_nothing_ran(page, dialogs)
