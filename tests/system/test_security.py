"""Who may call what, no default passwords, and secrets that never leak (logs, metrics, bodies,
repository), checked against the running stack."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from harness.fake_discord import FakeDiscord
from harness.ports import free_port
from harness.services import REPO_ROOT, ServiceProcess
from harness.stack import Stack, service_env, wait_for
from tests.support.images import jpeg

pytestmark = pytest.mark.slow

# (service, method, path, body) of every route that must demand a token.
PROTECTED = [
    ("notifier", "POST", "/alertmanager", {"groupKey": "k", "status": "firing", "alerts": []}),
    ("notifier", "POST", "/notify", {"title": "t", "message": "m", "level": "info"}),
    ("feedback", "GET", "/admin/feedback", None),
    ("feedback", "POST", "/admin/retention/purge", None),
]  # fmt: skip


def credentials(stack: Stack, service: str) -> dict[str, str]:
    return {
        "notifier": stack.secrets.notifier_token,
        "feedback": stack.secrets.admin_token,
    }[service]


def wrong_headers(stack: Stack, service: str) -> dict[str, dict[str, str]]:
    """Every way of not having the right token."""
    right = credentials(stack, service)
    other = stack.secrets.admin_token if service == "notifier" else stack.secrets.notifier_token
    return {
        "missing": {},
        "bearer without a token": {"Authorization": "Bearer"},
        "wrong token": {"Authorization": "Bearer not-the-token"},
        "another service's token": {"Authorization": f"Bearer {other}"},
        "right token, wrong scheme": {"Authorization": f"Basic {right}"},
        "token with a suffix": {"Authorization": f"Bearer {right}x"},
        "token prefix": {"Authorization": f"Bearer {right[:-1]}"},
    }


@pytest.mark.parametrize(("service", "method", "path", "body"), PROTECTED)
def test_internal_and_admin_routes_need_their_token(
    stack: Stack, service: str, method: str, path: str, body: object
) -> None:
    url = stack.url(service) + path
    for case, headers in wrong_headers(stack, service).items():
        response = httpx.request(method, url, json=body, headers=headers, timeout=10)
        assert response.status_code == 401, f"{case}: {response.status_code} {response.text}"
        assert response.headers["www-authenticate"].lower().startswith("bearer")
        assert response.json()["detail"]
    right = {"Authorization": f"Bearer {credentials(stack, service)}"}
    response = httpx.request(method, url, json=body, headers=right, timeout=10)
    assert 200 <= response.status_code < 300, response.text


def test_dashboard_needs_its_login(stack: Stack) -> None:
    url = stack.url("dashboard") + "/monitoring/"
    user, password = stack.dashboard_auth
    for auth in [None, (user, "wrong"), ("admin", password), (user, ""), (user, password + "x")]:
        response = httpx.get(url, auth=auth, timeout=10)
        assert response.status_code == 401, auth
    assert httpx.get(url, auth=(user, password), timeout=10).status_code == 200


def test_html_pages_send_the_security_headers(stack: Stack) -> None:
    pages = [
        (stack.url("inference") + "/", None),
        (stack.url("dashboard") + "/monitoring/", stack.dashboard_auth),
    ]
    for url, auth in pages:
        response = httpx.get(url, auth=auth, timeout=10)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        headers = response.headers
        csp = headers.get("content-security-policy", "")
        assert headers.get("x-content-type-options") == "nosniff", url
        assert headers.get("x-frame-options") == "DENY" or "frame-ancestors 'none'" in csp, url
        assert "default-src" in csp and "script-src" in csp, url
        assert "'unsafe-inline'" not in re.search(r"script-src[^;]*", csp).group(0), url  # type: ignore[union-attr]
        assert headers.get("referrer-policy") in {"no-referrer", "strict-origin-when-cross-origin"}


@pytest.mark.parametrize(
    ("service", "variable"),
    [
        ("dashboard", "DASHBOARD_PASSWORD"),
        ("feedback", "FEEDBACK_ADMIN_TOKEN"),
        ("notifier", "NOTIFIER_TOKEN"),
    ],
)
# Missing, a placeholder, published in this repository, too short, too repetitive.
@pytest.mark.parametrize(
    "value", [None, "changeme", "dev-notifier-token", "Changeme!", "x", "abab" * 8]
)
def test_no_service_starts_with_a_missing_default_or_weak_secret(
    tmp_path: Path, service: str, variable: str, value: str | None
) -> None:
    assert_refuses_to_start(service, variable, value)


# Unset, the admin API refuses every call; set, it obeys the rule of every other secret.
@pytest.mark.parametrize(
    "value", ["changeme", "dev-notifier-token", "x", "Changeme!", "a" * 20, "abab" * 8]
)
def test_inference_does_not_start_with_a_weak_admin_token(value: str) -> None:
    assert_refuses_to_start("inference", "INFERENCE_ADMIN_TOKEN", value)


def assert_refuses_to_start(service: str, variable: str, value: str | None) -> None:
    """The service, in production mode with every other secret strong, exits naming `variable`."""
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_TOKEN", "_PASSWORD"))}
    env.update({"DEV_MODE": "false", "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"})
    env["DASHBOARD_PASSWORD"] = f"a-real-one-{secrets.token_hex(8)}"
    env["FEEDBACK_ADMIN_TOKEN"] = f"a-real-one-{secrets.token_hex(8)}"
    env["NOTIFIER_TOKEN"] = f"a-real-one-{secrets.token_hex(8)}"
    env.pop(variable, None)
    if value is not None:
        env[variable] = value
    result = subprocess.run(
        [sys.executable, "-m", "services.common.serve", service, "--port", str(free_port())],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert variable in result.stdout + result.stderr


def test_compose_refuses_to_start_grafana_and_postgres_without_passwords() -> None:
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    for variable in ("GRAFANA_PASSWORD", "POSTGRES_PASSWORD", "DASHBOARD_PASSWORD"):
        assert re.search(r"\$\{" + variable + r":\?", compose), variable
    assert not re.search(r"\$\{(GRAFANA|POSTGRES)_PASSWORD:-", compose), "a default password"


def test_secrets_never_reach_logs_metrics_or_error_bodies(
    stack: Stack, tmp_path: Path, model_path: Path
) -> None:
    bodies: list[str] = []
    client = httpx.Client(timeout=15)

    def call(method: str, url: str, **kwargs: object) -> httpx.Response:
        response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
        bodies.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    inference, feedback = stack.url("inference"), stack.url("feedback")
    notifier, dashboard = stack.url("notifier"), stack.url("dashboard")
    photo = jpeg()
    prediction = call("POST", f"{inference}/predict", files={"file": ("a.jpg", photo)}).json()
    call("POST", f"{inference}/predict", files={"file": ("a.jpg", b"not an image")})
    call("POST", f"{inference}/predict", content=b"x" * 100)
    call("POST", f"{feedback}/feedback", json={"prediction_id": str(uuid.uuid4())})
    body = {"prediction_id": prediction["prediction_id"], "satisfaction": "unsatisfied"}
    call("POST", f"{feedback}/feedback", json={**body, "rgpd_consent": True})
    call("GET", f"{feedback}/admin/feedback", headers={"Authorization": "Bearer nope"})
    call("GET", f"{feedback}/admin/feedback", headers=stack.admin_auth)
    call("POST", f"{notifier}/notify", json={"title": "x"}, headers={"Authorization": "Bearer no"})
    call("POST", f"{notifier}/notify", json={"title": ""}, headers=stack.notifier_auth)
    delivered = len(stack.discord.messages())
    call("POST", f"{notifier}/notify", json={"title": "leak check"}, headers=stack.notifier_auth)
    stack.discord.wait_until(lambda fake: len(fake.messages()) > delivered, 30)
    # Discord disowns the webhook, then fails: the notifier logs both, with the URL redacted.
    stack.discord.fail("unknown_webhook", count=1)
    call("POST", f"{notifier}/notify", json={"title": "refused"}, headers=stack.notifier_auth)
    stack.discord.wait_until(lambda fake: any(r.status == 404 for r in fake.requests()), 30)
    stack.discord.heal()
    call("GET", f"{dashboard}/monitoring/", auth=("monitoring", "wrong"))
    call("GET", f"{dashboard}/monitoring/", auth=stack.dashboard_auth)
    for url in (inference, feedback, notifier, dashboard):
        call("GET", f"{url}/ready")
        call("GET", f"{url}/does-not-exist")
        call("GET", f"{url}/metrics")
    # A service that cannot reach its database logs why, with the password in its DSN.
    with FakeDiscord() as discord:
        env = service_env(
            f"postgresql://postgres@127.0.0.1:{free_port()}/predictions_feedback",
            model_path,
            stack.secrets,
            discord.webhook_url("1", stack.secrets.webhook_token),
        )
        for name in ("feedback", "notifier"):
            with ServiceProcess(name, env, tmp_path) as unreachable:
                call("GET", f"{unreachable.url}/ready")
                notify = {"json": {"title": "t"}, "headers": stack.notifier_auth}
                call("POST", f"{unreachable.url}/notify", **notify)
                call("POST", f"{unreachable.url}/feedback", json={**body, "rgpd_consent": True})
                call("GET", f"{unreachable.url}/metrics")
    client.close()

    logs = {path.name: path.read_text() for path in [*stack.log_files(), *tmp_path.glob("*.log")]}
    assert any("database unavailable" in text for text in logs.values()), "failures were logged"
    haystacks = {**logs, **{f"response {i}": text for i, text in enumerate(bodies)}}
    leaks = [
        f"{name} in {where}: ...{text[max(0, text.index(secret) - 300) : text.index(secret)]}"
        for name, secret in stack.secrets.values().items()
        for where, text in haystacks.items()
        if secret in text
    ]
    assert not leaks, "\n".join(leaks)


_WEBHOOK = re.compile(r"discord(?:app)?\.com/api(?:/v\d+)?/webhooks/\d+/[\w-]{20,}")
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")
_CLOUD_KEYS = re.compile(r"\b(?:AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36}|xox[abp]-[\w-]{10,})\b")
# NAME=value / NAME: value where NAME says it holds a secret.
_ASSIGNMENT = re.compile(
    r"""(?im)^[ \t-]*(?P<name>[\w.-]*(?:password|passwd|secret|token|api_key|webhook_url))"""
    r"""[ \t]*[:=][ \t]*["']?(?P<value>[^\s"'#]*)"""
)
# Placeholders the documentation names, and references to where the real value comes from.
_PLACEHOLDERS = {"", "changeme", "change-me", "dev-notifier-token"}
_REFERENCE = re.compile(r"^(\$\{|\$\(|\{|<|os\.environ|settings\.|env\.|None|null|true|false)")
CONFIG_SUFFIXES = {".yml", ".yaml", ".env", ".example", ".toml", ".ini", ".cfg", ".json", ".conf"}


def tracked_files() -> list[Path]:
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout
    return [REPO_ROOT / name for name in listing.decode().split("\0") if name]


def test_repository_holds_no_secrets() -> None:
    findings: list[str] = []
    for path in tracked_files():
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        relative = path.relative_to(REPO_ROOT)
        for pattern in (_WEBHOOK, _PRIVATE_KEY, _CLOUD_KEYS):
            findings += [f"{relative}: {m.group(0)[:40]}" for m in pattern.finditer(text)]
        is_config = path.suffix in CONFIG_SUFFIXES or path.name in {"Dockerfile", ".env.example"}
        if not is_config:
            continue
        for match in _ASSIGNMENT.finditer(text):
            value = match["value"]
            if value.lower() in _PLACEHOLDERS or _REFERENCE.match(value):
                continue
            findings.append(f"{relative}: {match.group(0).strip()[:60]}")
    assert not findings, "secret-looking values committed:\n" + "\n".join(findings)


def test_scanner_finds_what_it_looks_for() -> None:
    # Assembled at run time, so this file itself holds none of the patterns it searches for.
    webhook = "https://discord.com/api/" + "webhooks/123/abcdefghijklmnopqrstuvwxyz012"
    key = "-----BEGIN RSA " + "PRIVATE KEY-----"
    committed = f"DISCORD_WEBHOOK_URL={webhook}\nGRAFANA_PASSWORD=hunter2\n{key}\n"
    assert _WEBHOOK.search(committed) and _PRIVATE_KEY.search(committed)
    values = [m["value"] for m in _ASSIGNMENT.finditer(committed)]
    assert "hunter2" in values


def client_from(address: str) -> httpx.Client:
    """A client connecting from its own loopback address: a rate-limit bucket of its own."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def test_owner_reads_and_erases_with_the_prediction_id_alone(stack: Stack) -> None:
    answer = httpx.post(
        stack.url("inference") + "/predict", files={"file": ("a.jpg", jpeg())}, timeout=15
    ).json()
    url = f"{stack.url('feedback')}/predictions/{answer['prediction_id']}"
    with client_from("127.0.0.2") as owner:
        wait_for(lambda: owner.get(url).status_code == 200, 30, "the prediction stored")
        assert owner.get(url).json()["prediction"] == answer["prediction"]
        assert owner.delete(url).status_code == 204
        assert owner.get(url).status_code == 404


def test_the_owners_copy_of_their_data_is_never_cached(stack: Stack) -> None:
    answer = httpx.post(
        stack.url("inference") + "/predict",
        files={"file": ("a.jpg", jpeg())},
        data={"rgpd_consent": "true", "photo_consent": "true"},
        timeout=15,
    ).json()
    url = f"{stack.url('feedback')}/predictions/{answer['prediction_id']}"
    with client_from("127.0.0.5") as owner:
        wait_for(lambda: owner.get(url).status_code == 200, 30, "the prediction stored")
        response = owner.get(url)
    assert response.json()["photo"] is not None
    assert response.headers["cache-control"] == "no-store"


def test_guessing_an_admin_token_is_throttled_per_client(stack: Stack) -> None:
    url = f"{stack.url('feedback')}/admin/feedback"
    with client_from("127.0.0.6") as guesser:
        guesses = [
            guesser.get(url, headers={"Authorization": f"Bearer guess-{n}"}) for n in range(40)
        ]
        right_token_while_throttled = guesser.get(url, headers=stack.admin_auth)
    statuses = Counter(response.status_code for response in guesses)
    assert statuses == {401: 20, 429: 20}, statuses
    assert all(int(r.headers["retry-after"]) >= 1 for r in guesses if r.status_code == 429)
    assert right_token_while_throttled.status_code == 429
    with client_from("127.0.0.7") as operator:
        assert operator.get(url, headers=stack.admin_auth).status_code == 200


# After the log scan above: this one writes tokens where the scan would find them.
def test_a_token_misplaced_in_the_query_string_is_refused_and_not_logged(stack: Stack) -> None:
    for service, method, path, body in PROTECTED:
        secret = credentials(stack, service)
        response = httpx.request(
            method, stack.url(service) + path, params={"token": secret}, json=body, timeout=10
        )
        assert response.status_code == 401
    logs = {path.name: path.read_text() for path in stack.log_files()}
    leaks = [
        f"{name}: {line[:200]}"
        for name, text in logs.items()
        for line in text.splitlines()
        if stack.secrets.notifier_token in line or stack.secrets.admin_token in line
    ]
    assert not leaks, "a token sent in the URL was written to the logs:\n" + "\n".join(leaks)


@pytest.mark.parametrize(("method", "address"), [("GET", "127.0.0.3"), ("DELETE", "127.0.0.4")])
def test_guessing_prediction_ids_is_rate_limited(stack: Stack, method: str, address: str) -> None:
    with client_from(address) as guesser, ThreadPoolExecutor(20) as pool:
        url = f"{stack.url('feedback')}/predictions/{{}}"
        responses = list(
            pool.map(lambda _: guesser.request(method, url.format(uuid.uuid4())), range(40))
        )
    statuses = Counter(response.status_code for response in responses)
    # 503 is the database pool saturated by the burst: retryable, and said so.
    # An erasure of an id not stored (yet) answers 202: the tombstone waits for it.
    assert set(statuses) <= {404 if method == "GET" else 202, 429, 503}, statuses
    assert all("retry-after" in r.headers for r in responses if r.status_code == 503)
    assert statuses[429] >= 20, f"a burst of 40 guesses was answered {dict(statuses)}"
    limited = [r for r in responses if r.status_code == 429]
    assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
