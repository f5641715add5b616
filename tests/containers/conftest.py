"""The container tier: docker-compose.yml built and run for real (`make test-containers`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.compose import EngineError, find_engine
from harness.compose_stack import ComposeStack, isolated_network


def _unavailable() -> str | None:
    """Why the tier cannot run here, or None."""
    if not isolated_network():
        return "the container tier runs in a network namespace of its own: `make test-containers`"
    try:
        find_engine()
    except EngineError as error:
        return str(error)
    return None


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    """The stack's project, not yet up; everything it made is removed afterwards."""
    reason = _unavailable()
    if reason:
        # CI installs what the tier needs (.ci/run): there, a missing part is a failure.
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    stack = ComposeStack(Path(tmp_path_factory.mktemp("compose")))
    stack.down()
    try:
        yield stack
    finally:
        stack.down()


_REPORT = pytest.StashKey[dict[str, str]]()


@pytest.fixture
def report(request: pytest.FixtureRequest) -> dict[str, str]:
    """Figures a test measured, printed at the end of the run (pytest hides passing output)."""
    return request.config.stash.setdefault(_REPORT, {})


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    figures = config.stash.get(_REPORT, {})
    if figures:
        terminalreporter.section("container tier: measured")
        for name, value in figures.items():
            terminalreporter.write_line(f"{name}: {value}")
