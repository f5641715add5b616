"""`make up`, `make down`, `make logs` (`python -m deploy.compose`): which engine, or why none."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"


def _engine(path_dir: Path, checkout: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """`deploy.compose engine` in `checkout`, with only `path_dir` on PATH (and no
    CONTAINER_ENGINE)."""
    env = {k: v for k, v in os.environ.items() if k not in {"CONTAINER_ENGINE", "DOCKER_HOST"}}
    env["PATH"] = str(path_dir)
    return subprocess.run(
        [SYSTEM_PYTHON, "-m", "deploy.compose", "engine"],
        capture_output=True,
        text=True,
        cwd=checkout,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    return folder


def _link(bin_dir: Path, tool: str, target: str | None = None) -> None:
    found = target or shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} is not installed")
    (bin_dir / tool).symlink_to(found)


@pytest.fixture
def bare_checkout(tmp_path: Path) -> Path:
    """A checkout without `make venv` (so without the Compose it installs)."""
    folder = tmp_path / "checkout"
    (folder / "deploy").mkdir(parents=True)
    for name in ("__init__.py", "compose.py"):
        shutil.copy(REPO_ROOT / "deploy" / name, folder / "deploy" / name)
    return folder


def test_with_neither_engine_it_says_what_to_install(bin_dir: Path) -> None:
    done = _engine(bin_dir)
    assert done.returncode == 2
    assert "No container engine: install Docker with its compose plugin, or podman" in done.stderr


def test_podman_without_compose_names_what_is_missing(bin_dir: Path, bare_checkout: Path) -> None:
    _link(bin_dir, "podman")
    done = _engine(bin_dir, bare_checkout)
    assert done.returncode == 2
    assert "podman is installed but Docker Compose v2 is not" in done.stderr


def test_podman_with_the_compose_of_make_venv_is_named_with_its_version(bin_dir: Path) -> None:
    """`make up` runs the system's Python: the Compose `make venv` installed is found."""
    if not (REPO_ROOT / ".venv" / "bin" / "docker-compose").exists():
        pytest.skip("no .venv with Compose in this checkout")
    _link(bin_dir, "podman")
    done = _engine(bin_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("engine: podman ")
    assert "driven by Docker Compose v2 through podman's API" in done.stdout


def test_a_docker_client_without_a_daemon_is_not_taken_for_docker(bin_dir: Path) -> None:
    """This machine has the docker client but no engine: podman is used, and said."""
    _link(bin_dir, "docker")
    _link(bin_dir, "podman")
    _link(bin_dir, "docker-compose", str(Path(sys.executable).with_name("docker-compose")))
    done = _engine(bin_dir)
    if done.stdout.startswith("engine: Docker"):
        pytest.skip("a Docker daemon answers here")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("engine: podman ")


def test_up_without_env_says_how_to_make_one(bin_dir: Path, tmp_path: Path) -> None:
    if (REPO_ROOT / ".env").exists():
        pytest.skip("this checkout has a .env")
    _link(bin_dir, "podman")
    _link(bin_dir, "docker-compose", str(Path(sys.executable).with_name("docker-compose")))
    env = {k: v for k, v in os.environ.items() if k != "CONTAINER_ENGINE"}
    env["PATH"] = str(bin_dir)
    done = subprocess.run(
        [SYSTEM_PYTHON, "-m", "deploy.compose", "up"],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no .env: `cp .env.example .env` and fill in the secrets first" in done.stderr
