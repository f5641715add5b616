"""docker-compose.yml, checked against the Compose specification and against the code."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from deploy.tests import compose_file as compose
from deploy.tests import dockerfile
from deploy.tests.conftest import TEST_SECRETS
from deploy.tests.settings_env import (
    EnvVar,
    all_env_vars,
    env_vars,
    process_env_vars,
    service_names,
    settings_class,
)
from services.common.serve import SERVICES
from services.common.settings import PLACEHOLDER_SECRETS, ServiceSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = REPO_ROOT / "monitoring" / "prometheus" / "prometheus.yml"
# What the world may reach; everything else talks over the compose network only.
PUBLISHED = {
    "proxy": ["8000:8000", "8001:8001", "8050:8050"],
    "grafana": ["3000:3000"],
    "prometheus": ["127.0.0.1:9090:9090"],
}
# Variables read outside the Settings classes, by the process launcher (services/common/serve.py).
LAUNCHER_VARS = ("PROMETHEUS_MULTIPROC_DIR",)


def compose_schema() -> dict[str, Any]:
    """The Compose specification's JSON schema, as vendored by check-jsonschema (Apache-2.0)."""
    path = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def app_services(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services built from deploy/docker/Dockerfile, by name."""
    return {
        name: service
        for name, service in document["services"].items()
        if isinstance(service.get("build"), dict)
        and service["build"].get("dockerfile") == "deploy/docker/Dockerfile"
    }


def test_compose_file_matches_the_compose_specification(compose_raw: dict[str, Any]) -> None:
    jsonschema.validate(compose_raw, compose_schema())


def test_interpolated_compose_file_still_matches_the_specification(
    compose_file: dict[str, Any],
) -> None:
    jsonschema.validate(compose_file, compose_schema())


def test_schema_rejects_what_compose_would_reject(compose_raw: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose_raw))
    broken["services"]["inference"]["depends_on"]["migrate"]["condition"] = "service_started_ok"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, compose_schema())


def test_every_variable_compose_reads_is_in_env_example(env_example: dict[str, str]) -> None:
    used = compose.referenced_variables(compose.COMPOSE_FILE.read_text())
    assert sorted(set(used) - set(env_example)) == []


def test_compose_requires_exactly_the_secrets(env_example: dict[str, str]) -> None:
    used = compose.referenced_variables(compose.COMPOSE_FILE.read_text())
    required = {name for name, op in used.items() if op in (":?", "?")}
    assert required == set(TEST_SECRETS)
    # Blank or a placeholder the services refuse, so a copied file cannot run with a known secret.
    for name in required:
        assert env_example[name].strip().lower() in PLACEHOLDER_SECRETS, name


def test_a_missing_secret_stops_compose_with_its_name(operator_env: dict[str, str]) -> None:
    without = {k: v for k, v in operator_env.items() if k != "GRAFANA_PASSWORD"}
    with pytest.raises(compose.InterpolationError, match="GRAFANA_PASSWORD"):
        compose.interpolate(compose.load(), without)


@pytest.mark.parametrize("service", service_names())
def test_every_variable_a_service_reads_is_documented(
    service: str, env_example: dict[str, str]
) -> None:
    missing = sorted(set(process_env_vars(service)) - set(env_example))
    assert missing == [], f"add to .env.example: {missing}"


@pytest.mark.parametrize("service", service_names())
def test_every_variable_a_service_reads_is_passed_to_its_container(
    service: str, compose_raw: dict[str, Any]
) -> None:
    environment = compose_raw["services"][service]["environment"]
    wanted = set(process_env_vars(service)) | set(LAUNCHER_VARS)
    assert sorted(wanted - set(environment)) == []


def test_compose_passes_no_variable_that_nothing_reads(compose_raw: dict[str, Any]) -> None:
    readers = all_env_vars()
    for name, service in app_services(compose_raw).items():
        if name not in readers:
            continue
        extra = set(service["environment"]) - set(readers[name]) - set(LAUNCHER_VARS)
        assert extra == set(), f"{name} is given variables it does not read: {sorted(extra)}"


def test_migrate_gets_what_the_migrations_cli_reads(compose_raw: dict[str, Any]) -> None:
    environment = compose_raw["services"]["migrate"]["environment"]
    assert {"DATABASE_URL", "LOG_LEVEL"} <= set(environment)
    assert set(environment) <= set(env_vars(ServiceSettings))


def test_compose_defaults_never_contradict_the_code() -> None:
    text = compose.COMPOSE_FILE.read_text()
    known: dict[str, EnvVar] = {}
    for variables in all_env_vars().values():
        known.update(variables)
    for name, default in compose.defaults(text).items():
        var = known.get(name)
        if var is None or var.required or var.default is None:
            continue
        assert var.parse(default) == var.default, f"{name}: compose {default!r}"


@pytest.mark.parametrize("service", service_names())
def test_container_environment_is_accepted_by_the_service_settings(
    service: str,
    compose_file: dict[str, Any],
    operator_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment = compose.container_environment(compose.load()["services"][service], operator_env)
    for name in all_env_vars()[service]:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = settings_class(service)(_env_file=None)  # type: ignore[call-arg]
    assert settings.host == "0.0.0.0"
    assert settings.dev_mode is False
    assert "@postgres:5432/predictions_feedback" in settings.database_url
    metrics = Path(compose_file["services"][service]["environment"]["PROMETHEUS_MULTIPROC_DIR"])
    tmpfs = {Path(path.split(":")[0]) for path in compose_file["services"][service]["tmpfs"]}
    assert tmpfs & {metrics, *metrics.parents}, "the metric files must go to a tmpfs"


@pytest.mark.parametrize("service", service_names())
def test_service_listens_where_compose_and_the_image_expect(
    service: str, compose_raw: dict[str, Any]
) -> None:
    code_port = settings_class(service).model_fields["port"].default
    port_var = next(
        name for name, var in env_vars(settings_class(service)).items() if var.field == "port"
    )
    assert compose_raw["services"][service]["environment"][port_var] == code_port
    assert dockerfile.effective(service, "EXPOSE", dockerfile.stages()) == str(code_port)
    for mapping in compose_raw["services"][service].get("ports", []):
        assert mapping.rsplit(":", 1)[1] == str(code_port)


def test_only_the_public_ports_are_published(compose_raw: dict[str, Any]) -> None:
    published = {
        name: service["ports"]
        for name, service in compose_raw["services"].items()
        if service.get("ports")
    }
    assert published == PUBLISHED


def test_app_services_are_the_served_ones_built_from_their_own_target(
    compose_raw: dict[str, Any],
) -> None:
    built = app_services(compose_raw)
    for name in SERVICES:
        assert built[name]["build"]["target"] == name
    assert set(service_names()) <= set(built)
    assert {s["build"]["target"] for s in built.values()} <= set(dockerfile.stages())


def test_services_start_after_migrations_and_migrations_after_postgres(
    compose_raw: dict[str, Any],
) -> None:
    services = compose_raw["services"]
    for name in SERVICES:
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"


def test_service_healthy_is_only_awaited_on_services_with_a_health_check(
    compose_raw: dict[str, Any],
) -> None:
    stages = dockerfile.stages()
    for service in compose_raw["services"].values():
        for dependency, rule in (service.get("depends_on") or {}).items():
            if rule["condition"] != "service_healthy":
                continue
            target = compose_raw["services"][dependency]
            image_check = target.get("build") and dockerfile.healthcheck_command(
                target["build"]["target"], stages
            )
            assert target.get("healthcheck") or image_check, dependency


def test_long_running_services_restart_and_one_shots_do_not(compose_raw: dict[str, Any]) -> None:
    one_shots = {
        name
        for service in compose_raw["services"].values()
        for name, rule in (service.get("depends_on") or {}).items()
        if rule["condition"] == "service_completed_successfully"
    }
    for name, service in compose_raw["services"].items():
        expected = "no" if name in one_shots else "unless-stopped"
        assert service["restart"] == expected, name


def test_postgres_is_pinned_persistent_checked_and_creates_the_database(
    compose_raw: dict[str, Any],
) -> None:
    postgres = compose_raw["services"]["postgres"]
    assert re.fullmatch(r"postgres:\d+\.\d+-\w+", postgres["image"])
    assert postgres["environment"]["POSTGRES_DB"] == "predictions_feedback"
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in compose_raw["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_third_party_images_are_pinned(compose_raw: dict[str, Any]) -> None:
    for name, service in compose_raw["services"].items():
        if "build" in service:
            continue
        image = service["image"]
        assert re.search(r":v?\d+\.\d+\.?\d*", image), f"{name}: {image} is not pinned"


def test_monitoring_containers_keep_the_names_the_guide_uses(compose_raw: dict[str, Any]) -> None:
    assert compose_raw["services"]["prometheus"]["container_name"] == "cv_prometheus"
    assert compose_raw["services"]["grafana"]["container_name"] == "cv_grafana"


def test_grafana_password_has_no_default() -> None:
    used = compose.referenced_variables(compose.COMPOSE_FILE.read_text())
    assert used["GRAFANA_PASSWORD"] == ":?"


def test_bind_mounts_exist_in_the_repository(compose_raw: dict[str, Any]) -> None:
    for name, service in compose_raw["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO_ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in compose_raw["volumes"], f"{name}: {source}"


def _mounted(service: dict[str, Any], container_path: str) -> Path | None:
    """The repository path mounted where the container sees `container_path`."""
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith(".") and (
            container_path == target or container_path.startswith(target + "/")
        ):
            return REPO_ROOT / source / container_path[len(target) :].lstrip("/")
    return None


def test_prometheus_config_and_rules_resolve_inside_the_container(
    compose_raw: dict[str, Any],
) -> None:
    prometheus = compose_raw["services"]["prometheus"]
    flag = next(arg for arg in prometheus["command"] if arg.startswith("--config.file="))
    config_path = flag.split("=", 1)[1]
    mounted = _mounted(prometheus, config_path)
    assert mounted == PROMETHEUS_CONFIG
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for pattern in config["rule_files"]:
        in_container = str(Path(config_path).parent / pattern)
        folder = _mounted(prometheus, str(Path(in_container).parent))
        assert folder is not None, pattern
        assert list(folder.glob(Path(pattern).name)), pattern


def test_prometheus_scrapes_every_service_by_its_compose_name_and_port(
    compose_raw: dict[str, Any],
) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    for service in service_names():
        port = settings_class(service).model_fields["port"].default
        assert targets[service] == f"{service}:{port}"
    for job, target in targets.items():
        host, port = target.rsplit(":", 1)
        if host == "localhost":
            continue
        assert host in compose_raw["services"], f"{job} scrapes {host}, not a compose service"
    alertmanagers = [
        target
        for entry in config["alerting"]["alertmanagers"]
        for static in entry["static_configs"]
        for target in static["targets"]
    ]
    assert alertmanagers == ["alertmanager:9093"]


def test_alertmanager_reads_the_config_its_one_shot_renders(compose_raw: dict[str, Any]) -> None:
    services = compose_raw["services"]
    renderer, alertmanager = services["alertmanager-config"], services["alertmanager"]
    rendered = next(arg for arg in alertmanager["command"] if arg.startswith("--config.file="))
    rendered_path = rendered.split("=", 1)[1]
    assert f"--out={rendered_path}" in renderer["command"]
    shared = {v.split(":")[0] for v in renderer["volumes"]} & {
        v.split(":")[0] for v in alertmanager["volumes"]
    }
    assert shared
    assert alertmanager["depends_on"] == {
        "alertmanager-config": {"condition": "service_completed_successfully"}
    }
    # Variables, not Compose secrets: Compose writes no secret into a read-only container.
    assert renderer["read_only"] is True and "secrets" not in renderer
    assert "--token-env=NOTIFIER_TOKEN" in renderer["command"]
    assert renderer["environment"]["NOTIFIER_TOKEN"].startswith("${NOTIFIER_TOKEN:?")


@pytest.mark.parametrize("discord_webhook", ["", "https://discord.com/api/webhooks/1/abc"])
def test_alertmanager_config_step_renders_a_config_amtool_accepts(
    compose_raw: dict[str, Any], tmp_path: Path, discord_webhook: str
) -> None:
    """Runs the one-shot's own command, its container paths mapped to temporary files and
    its variables set as compose sets them (a blank webhook is the documented default)."""
    renderer = compose_raw["services"]["alertmanager-config"]
    argv = [*renderer["entrypoint"], *renderer["command"]]
    out = tmp_path / "alertmanager.yml"
    argv = [f"--out={out}" if word.startswith("--out=") else word for word in argv]
    if os.geteuid() != 0:
        argv = [word for word in argv if not word.startswith("--owner=")]
    env = {
        **os.environ,
        "NOTIFIER_TOKEN": TEST_SECRETS["NOTIFIER_TOKEN"],
        "DISCORD_WEBHOOK_URL": discord_webhook,
    }
    assert argv[:3] == ["python", "-m", "monitoring.render"]
    subprocess.run([sys.executable, *argv[1:]], cwd=REPO_ROOT, env=env, check=True)
    rendered = out
    assert TEST_SECRETS["NOTIFIER_TOKEN"] in rendered.read_text()
    assert "http://notifier:8002/alertmanager" in rendered.read_text()
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed (Debian package prometheus-alertmanager)")
    result = subprocess.run(
        [amtool, "check-config", str(rendered)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


GRAFANA_PROVISIONING = REPO_ROOT / "monitoring" / "grafana" / "provisioning"


def test_grafana_gets_every_variable_its_provisioning_expands(compose_raw: dict[str, Any]) -> None:
    environment = compose_raw["services"]["grafana"]["environment"]
    for path in sorted(GRAFANA_PROVISIONING.rglob("*.yml")):
        # Grafana expands values after parsing, so comments do not count.
        values = json.dumps(yaml.safe_load(path.read_text()))
        for name in compose.referenced_variables(values):
            assert name in environment, f"{path.name} expands ${name}"


def test_grafana_datasources_point_at_compose_services(compose_raw: dict[str, Any]) -> None:
    path = GRAFANA_PROVISIONING / "datasources" / "datasources.yml"
    for source in yaml.safe_load(path.read_text())["datasources"]:
        address = source["url"].split("://", 1)[-1].rstrip("/")
        host, port = address.rsplit(":", 1)
        assert host in compose_raw["services"], source["name"]
        expected = {"prometheus": "9090", "postgres": "5432"}[host]
        assert port == expected


def test_grafana_mounts_dashboards_where_its_provider_reads_them(
    compose_raw: dict[str, Any],
) -> None:
    grafana = compose_raw["services"]["grafana"]
    providers = yaml.safe_load(
        (GRAFANA_PROVISIONING / "dashboards" / "dashboards.yml").read_text()
    )["providers"]
    for provider in providers:
        folder = _mounted(grafana, provider["options"]["path"])
        assert folder is not None
        assert list(folder.glob("*.json")), provider["name"]
    assert _mounted(grafana, "/etc/grafana/provisioning") == GRAFANA_PROVISIONING


def test_the_page_posts_feedback_to_a_published_origin_feedback_accepts(
    compose_file: dict[str, Any],
) -> None:
    services = compose_file["services"]
    public = services["inference"]["environment"]["FEEDBACK_PUBLIC_URL"]
    published = {service: port for port, service in proxied_ports().items()}
    page_origin = f"http://localhost:{published['inference']}"
    allowed = services["feedback"]["environment"]["FEEDBACK_ALLOWED_ORIGINS"].split(",")
    assert page_origin in allowed
    assert public.rsplit(":", 1)[1].rstrip("/") == str(published["feedback"])


NGINX_CONFIG = REPO_ROOT / "deploy" / "docker" / "nginx.conf"
# One `server` of nginx.conf: the port it listens on, the service and port it passes to.
NGINX_SERVER = re.compile(r"listen (\d+);.*?set \$service (\w+):(\d+);", re.S)


def proxied_ports() -> dict[int, str]:
    """Port the proxy listens on -> the service it passes requests to (nginx.conf)."""
    servers = NGINX_SERVER.findall(NGINX_CONFIG.read_text())
    assert servers, "no server found in nginx.conf"
    return {int(listen): name for listen, name, _ in servers}


def test_the_proxy_publishes_each_service_on_the_port_the_service_listens_on(
    compose_raw: dict[str, Any],
) -> None:
    for listen, name, port in NGINX_SERVER.findall(NGINX_CONFIG.read_text()):
        code_port = settings_class(name).model_fields["port"].default
        assert int(listen) == int(port) == code_port, name
    published = sorted(int(m.split(":")[0]) for m in compose_raw["services"]["proxy"]["ports"])
    assert published == sorted(proxied_ports())


def test_the_proxy_buffers_requests_with_deadlines_and_sets_the_forwarded_client() -> None:
    text = NGINX_CONFIG.read_text()
    for directive in (
        r"client_header_timeout \d+s;",
        r"client_body_timeout \d+s;",
        r"proxy_request_buffering on;",
        r"limit_conn per_client \d+;",
        # Replaced, never `$proxy_add_x_forwarded_for`: a client must not choose its address.
        r"proxy_set_header X-Forwarded-For \$remote_addr;",
    ):
        assert re.search(directive, text), directive


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_proxy_config(tmp_path: Path) -> None:
    result = subprocess.run(
        ["nginx", "-t", "-c", str(NGINX_CONFIG), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
