"""The docs as tests: every shell and Python block of README.md and docs/*.md, run verbatim as
a newcomer runs it, from the checkout, while `make run` runs on the ports the docs name.

pytest-codeblocks reads the blocks and the marks written above them in the Markdown
(`<!--pytest.mark.skip(reason="…")-->` for a block no test can run: a Discord webhook, a
Kubernetes cluster, a training of minutes); `-ra` lists those with their reasons. A block runs
in bash with `-e`, so each of its commands must succeed, not only the last; what it prints is
compared with the output block that follows `<!--pytest-codeblocks:expected-output-->`.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pytest_codeblocks import CodeBlock, extract_from_file
from skimage import data

from devstack.components import REPO_ROOT
from devstack.tests.conftest import Devstack, shell_environment
from tests.support.tiny_model import build_tiny_model

pytestmark = [pytest.mark.docs, pytest.mark.slow]

DOCUMENTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
RUN = {"bash": ["bash", "-e", "-c"], "sh": ["bash", "-e", "-c"], "python": [sys.executable, "-c"]}
# Blocks that show rather than run: output, payloads, trees, queries for Prometheus' console.
SHOWN = {"text", "json", "yaml", "promql"}
# What the docs assume the reader has beside the checkout: a photo of their own.
PHOTOS = ("photo.jpg", "cat.jpg")
RELEASED_VERSION = "2.1.0"
BLOCK_TIMEOUT_S = 120


def blocks() -> Iterator[Any]:
    """Each runnable block, with the marks the Markdown gives it."""
    for document in DOCUMENTS:
        for block in extract_from_file(document):
            if block.syntax not in RUN:
                continue
            location = f"{document.relative_to(REPO_ROOT)}:{block.lineno}"
            yield pytest.param(
                block, id=location, marks=[located(mark, location) for mark in block.marks]
            )


def located(mark: str, location: str) -> pytest.MarkDecorator:
    """A mark written above a block, evaluated as pytest-codeblocks' own collector does, its
    reason prefixed with the block's place, which `-ra` would otherwise not show."""
    decorator: pytest.MarkDecorator = eval(mark, {"pytest": pytest, "sys": sys})
    reason = decorator.kwargs.get("reason")
    if reason is None:
        return decorator
    kwargs = {**decorator.kwargs, "reason": f"{location}: {reason}"}
    return getattr(pytest.mark, decorator.name)(*decorator.args, **kwargs)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where a reader types the commands: this checkout (its files linked, its `.data` left
    alone, what the commands write kept out of it) with a cat photo of their own."""
    if not (REPO_ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("the docs run .venv/bin/python, which make run creates (make venv)")
    folder = tmp_path_factory.mktemp("checkout")
    for entry in REPO_ROOT.iterdir():
        if entry.name not in {".git", ".data"}:
            (folder / entry.name).symlink_to(entry)
    photo = io.BytesIO()
    Image.fromarray(data.chelsea()).save(photo, format="JPEG")
    for name in PHOTOS:
        (folder / name).write_bytes(photo.getvalue())
    # A reader sees curl print an error's body; the test needs it as an exit status too.
    (folder / ".curlrc").write_text("fail-with-body\n")
    # The model a reader has built and is releasing (docs/model.md), small here.
    built = build_tiny_model(folder / "build", version=RELEASED_VERSION)
    built.rename(built.with_name("cat_dog_classifier.onnx"))
    built.with_suffix(".json").rename(built.with_name("cat_dog_classifier.json"))
    return folder


@pytest.mark.parametrize("block", blocks())
def test_the_documented_block_works_as_written(
    block: CodeBlock, checkout: Path, documented_devstack: Devstack
) -> None:
    process = subprocess.Popen(
        [*RUN[block.syntax], block.code],
        cwd=checkout,
        env={**shell_environment(documented_devstack.stack_file), "CURL_HOME": str(checkout)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Its own process group, so that a block that hangs is stopped with all it started.
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"still running after {BLOCK_TIMEOUT_S} s\n{block.code}\n{stdout}{stderr}")
    assert process.returncode == 0, (
        f"exit {process.returncode}\n{block.code}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    )
    if block.expected_output is not None:
        # `<!--pytest-codeblocks:expected-output-->` before the block that shows it.
        printed, expected = stdout, block.expected_output
        if block.expected_output_ignore_whitespace:
            printed, expected = "".join(printed.split()), "".join(expected.split())
        assert printed == expected, f"{block.code}\nprinted:\n{stdout}"


def test_every_block_says_whether_it_runs() -> None:
    """A fence without a language (or with one this test does not know) would be neither run
    nor said to be skipped: it could hide a command."""
    unknown = [
        f"{document.relative_to(REPO_ROOT)}:{block.lineno}"
        for document in DOCUMENTS
        for block in extract_from_file(document)
        if block.syntax not in RUN.keys() | SHOWN and not block.marks
    ]
    assert not unknown, f"name these blocks' language (bash, text, …) or mark them: {unknown}"
