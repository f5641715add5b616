"""Every documented route of every service, fuzzed from its own OpenAPI schema: no 5xx, and
every answer matches what the schema promises (status, content type, body)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.stack import Stack

pytestmark = pytest.mark.slow

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)
# Per operation; with the coverage phase this makes a few hundred requests per service.
MAX_EXAMPLES = 25
SEED = 20261128


def auth_headers(stack: Stack, service: str) -> list[str]:
    token = {"feedback": stack.secrets.admin_token, "notifier": stack.secrets.notifier_token}
    if service not in token:
        return []
    return ["-H", f"Authorization: Bearer {token[service]}"]


@pytest.mark.parametrize("service", ["inference", "feedback", "notifier", "dashboard"])
def test_routes_hold_their_schema_under_fuzzing(stack: Stack, service: str, tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    command = [
        str(Path(sys.executable).with_name("st")), "run", f"{stack.url(service)}/openapi.json",
        "--checks", CHECKS,
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--phases", "examples,coverage,fuzzing",
        "--request-timeout", "20",
        "--no-shrink",
        "--report", "junit", "--report-junit-path", str(report),
        *auth_headers(stack, service),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    failures = output[output.find("FAILURES") :]
    assert result.returncode == 0, failures[:5000] + "\n...\n" + output[-1500:]
    assert report.exists() and "<testcase" in report.read_text(), output[-2000:]


# The dashboard's data comes through Dash's callback endpoint, which is not in the OpenAPI
# schema: its inputs (range preset, custom dates) are fuzzed here directly.
CALLBACK_INPUTS = [
    ("range-preset", "value"),
    ("range-custom", "start_date"),
    ("range-custom", "end_date"),
    ("refresh", "n_intervals"),
]
OUTPUTS = [
    "graph-confidence.figure",
    "graph-satisfaction.figure",
    "latest-table.children",
]
hostile_text = st.sampled_from(
    [
        "24h",
        "7d",
        "1h'; DROP TABLE monitoring; --",
        "' OR '1'='1",
        "2026-01-01' UNION SELECT password FROM pg_shadow --",
        "2026-13-45",
        "9999-12-31T23:59:59",
        "0001-01-01",
        "<img src=x onerror=alert(1)>",
        "../../etc/passwd",
        "\x00",
        "",
    ]
)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def callback_bodies(draw: st.DrawFn) -> dict[str, Any]:
    output = draw(st.sampled_from(OUTPUTS))
    component, prop = output.split(".")
    inputs = [
        {"id": cid, "property": prop_name, "value": draw(hostile_text | json_values)}
        for cid, prop_name in CALLBACK_INPUTS
    ]
    return {
        "output": output,
        "outputs": {"id": component, "property": prop},
        "inputs": inputs,
        "changedPropIds": ["range-preset.value"],
    }


def test_dashboard_callbacks_refuse_hostile_inputs_without_a_5xx(stack: Stack) -> None:
    url = f"{stack.url('dashboard')}/monitoring/_dash-update-component"
    failures: list[str] = []
    with httpx.Client(auth=stack.dashboard_auth, timeout=30) as client:

        @settings(
            max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(callback_bodies())
        def post(body: dict[str, Any]) -> None:
            response = client.post(url, json=body)
            if response.status_code >= 500:
                failures.append(f"{response.status_code} for {json.dumps(body)[:300]}")

        post()
        for raw in [b"garbage", b"{}", b'{"output": "nope.x", "inputs": []}', b"[]"]:
            response = client.post(url, content=raw, headers={"content-type": "application/json"})
            if response.status_code >= 500:
                failures.append(f"{response.status_code} for {raw!r}")
    assert not failures, f"{len(failures)} callback requests got a 5xx:\n" + "\n".join(failures[:8])
