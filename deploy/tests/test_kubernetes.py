"""deploy/k8s, each overlay rendered, checked against the Kubernetes schemas and the code."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from deploy.k8s import generate, kustomize
from deploy.tests import dockerfile
from deploy.tests.settings_env import env_vars, process_env_vars, service_names, settings_class
from services.common.serve import SERVICES

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S = REPO_ROOT / "deploy" / "k8s"
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir() if path.is_dir())
COMPONENTS = sorted(path.name for path in (K8S / "components").iterdir() if path.is_dir())
KUBERNETES_VERSION = "1.33.0"
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
    ("postgresql.cnpg.io/v1", "Cluster"): "cnpg-cluster.json",
    ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"): "alertmanagerconfig.json",
}
LAUNCHER_VARS = {"PROMETHEUS_MULTIPROC_DIR"}
SECRET_VARS = {"DATABASE_URL", "FEEDBACK_ADMIN_TOKEN", "DASHBOARD_PASSWORD", "NOTIFIER_TOKEN"}


def uvicorn_drain_s() -> int:
    """The graceful-shutdown time services/common/serve.py gives uvicorn."""
    source = (REPO_ROOT / "services" / "common" / "serve.py").read_text()
    found = re.search(r"timeout_graceful_shutdown=(\d+)", source)
    assert found, "serve.py no longer sets timeout_graceful_shutdown"
    return int(found.group(1))


def rendered(overlay: str) -> list[dict[str, Any]]:
    """The overlay's resources."""
    return kustomize.render(K8S / "overlays" / overlay)


def with_component(overlay: str, component: str, tmp_path: Path) -> list[dict[str, Any]]:
    """An overlay with one optional component added, as an operator would enable it."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize refuses absolute paths.
                "resources": [os.path.relpath(K8S / "overlays" / overlay, tmp_path)],
                "components": [os.path.relpath(K8S / "components" / component, tmp_path)],
            }
        )
    )
    return kustomize.render(tmp_path)


def by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Resources of one kind by name."""
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def validate(resource: dict[str, Any]) -> None:
    """Core kinds against Kubernetes' schemas (strict), custom ones against deploy/schemas."""
    crd = CRD_SCHEMAS.get((resource["apiVersion"], resource["kind"]))
    if crd is None:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        return
    schema = json.loads((REPO_ROOT / "deploy" / "schemas" / "crds" / crd).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)
    validator.validate(resource)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    """The one container of a workload."""
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_overlays_exist() -> None:
    assert {"dev", "prod"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_against_kubernetes_and_crd_schemas(overlay: str) -> None:
    resources = rendered(overlay)
    assert resources
    for resource in resources:
        validate(resource)


@pytest.mark.parametrize("component", COMPONENTS)
def test_optional_components_render_and_validate_on_prod(component: str, tmp_path: Path) -> None:
    for resource in with_component("prod", component, tmp_path):
        validate(resource)


def test_custom_metrics_component_adds_a_pods_metric_and_keeps_cpu(tmp_path: Path) -> None:
    hpa = by_kind(
        with_component("prod", "custom-metrics-autoscaling", tmp_path), "HorizontalPodAutoscaler"
    )["inference"]
    types = [metric["type"] for metric in hpa["spec"]["metrics"]]
    assert types == ["Resource", "Pods"]
    assert hpa["spec"]["minReplicas"] == 3


def test_validation_rejects_a_broken_manifest() -> None:
    deployment = json.loads(json.dumps(by_kind(rendered("prod"), "Deployment")["inference"]))
    container(deployment)["livenessProbe"]["httpGet"]["port"] = {"name": "http"}
    with pytest.raises(jsonschema.ValidationError):
        validate(deployment)
    rule = json.loads(json.dumps(by_kind(rendered("prod"), "PrometheusRule")["cat-dog-alerts"]))
    rule["spec"]["groups"][0]["rules"][0]["fro"] = "5m"
    with pytest.raises(jsonschema.ValidationError):
        validate(rule)


def test_kustomize_refuses_a_broken_kustomization(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(kustomize.KustomizeError, match=re.escape("missing.yaml")):
        kustomize.render(tmp_path)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_is_deployed_as_make_run_starts_it(overlay: str) -> None:
    deployments = by_kind(rendered(overlay), "Deployment")
    stages = dockerfile.stages()
    for name in SERVICES:
        spec = container(deployments[name])
        # No command/args: the image's entrypoint, `python -m services.common.serve <name>`.
        assert "command" not in spec
        assert "args" not in spec
        image = spec["image"].split("@")[0].rsplit(":", 1)[0]
        assert image.endswith(f"cat-dog/{name}")
        assert (
            dockerfile.exec_form(dockerfile.effective(name, "ENTRYPOINT", stages) or "[]")[-1]
            == name
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", service_names())
def test_deployment_matches_the_service_code(overlay: str, service: str) -> None:
    resources = rendered(overlay)
    deployment = by_kind(resources, "Deployment")[service]
    spec = container(deployment)
    port = settings_class(service).model_fields["port"].default
    assert spec["ports"] == [{"name": "http", "containerPort": port}]
    reads = process_env_vars(service)
    port_var = next(
        name for name, var in env_vars(settings_class(service)).items() if var.field == "port"
    )
    env = {item["name"]: item for item in spec["env"]}
    assert env[port_var]["value"] == str(port)
    config_maps = by_kind(resources, "ConfigMap")
    shared: set[str] = set()
    for source in spec["envFrom"]:
        shared |= set(config_maps[source["configMapRef"]["name"]]["data"])
    given = set(env) | shared
    assert sorted(given - set(reads) - LAUNCHER_VARS) == [], "variables nothing reads"
    missing = [name for name, var in reads.items() if var.required and name not in given]
    assert missing == []
    for name in SECRET_VARS & set(reads):
        assert "secretKeyRef" in env[name]["valueFrom"], f"{name} must come from a Secret"
    for name, item in env.items():
        if any(word in name for word in ("TOKEN", "PASSWORD", "WEBHOOK", "DATABASE_URL")):
            assert "value" not in item, f"{name} is a secret: reference it, never inline it"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_are_probed_bounded_and_unprivileged(overlay: str) -> None:
    resources = rendered(overlay)
    workloads = [*by_kind(resources, "Deployment").values(), *by_kind(resources, "Job").values()]
    metrics_dir = dockerfile.environment("inference", dockerfile.stages())[
        "PROMETHEUS_MULTIPROC_DIR"
    ]
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        spec = container(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec["securityContext"]["allowPrivilegeEscalation"] is False
        assert spec["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(spec["resources"]["requests"])
        assert {"cpu", "memory"} <= set(spec["resources"]["limits"])
        if workload["kind"] != "Deployment":
            continue
        assert spec["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert spec["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
        grace = pod["terminationGracePeriodSeconds"]
        # The pre-stop pause plus uvicorn's graceful drain must fit in the grace period.
        assert spec["lifecycle"]["preStop"]["sleep"]["seconds"] + uvicorn_drain_s() < grace
        mounts = {mount["mountPath"] for mount in spec["volumeMounts"]}
        assert {"/tmp", metrics_dir} <= mounts


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_ingress_autoscaler_and_budgets_point_at_real_pods(overlay: str) -> None:
    resources = rendered(overlay)
    deployments = by_kind(resources, "Deployment")
    services = by_kind(resources, "Service")
    for name, service in services.items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        port_names = {p["name"] for p in container(deployments[name])["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    for budget in by_kind(resources, "PodDisruptionBudget").values():
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(
            selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
            for d in deployments.values()
        )
    hpa = by_kind(resources, "HorizontalPodAutoscaler")["inference"]
    assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    (ingress,) = by_kind(resources, "Ingress").values()
    routes = {
        path["path"]: path["backend"]["service"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert routes["/"]["name"] == "inference"
    assert routes["/predict"]["name"] == "inference"
    assert routes["/monitoring"]["name"] == "dashboard"
    assert routes["/feedback"]["name"] == "feedback"
    assert routes["/predictions"]["name"] == "feedback"
    for backend in routes.values():
        ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
        assert backend["port"]["name"] in ports


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_monitor_scrapes_every_service_under_its_prometheus_job_name(
    overlay: str,
) -> None:
    resources = rendered(overlay)
    (monitor,) = by_kind(resources, "ServiceMonitor").values()
    (expression,) = monitor["spec"]["selector"]["matchExpressions"]
    assert set(expression["values"]) == set(SERVICES)
    config = yaml.safe_load(
        (REPO_ROOT / "monitoring" / "prometheus" / "prometheus.yml").read_text()
    )
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert set(SERVICES) <= jobs
    # The job label comes from the Service's name label, which is the compose job name.
    for name, service in by_kind(resources, "Service").items():
        assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == name
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/metrics"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_is_committed(overlay: str) -> None:
    assert by_kind(rendered(overlay), "Secret") == {}


def test_every_referenced_secret_is_documented() -> None:
    docs = (REPO_ROOT / "docs" / "deployment.md").read_text()
    references = set()
    for overlay in OVERLAYS:
        for deployment in [
            *by_kind(rendered(overlay), "Deployment").values(),
            *by_kind(rendered(overlay), "Job").values(),
        ]:
            for item in container(deployment).get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    references.add((ref["name"], ref["key"]))
    for name, key in references:
        assert name in docs
        assert key in docs


def test_dev_database_cluster_provides_the_secret_the_workloads_read() -> None:
    resources = rendered("dev")
    (cluster,) = by_kind(resources, "Cluster").values()
    assert cluster["spec"]["bootstrap"]["initdb"]["database"] == "predictions_feedback"
    inference = container(by_kind(resources, "Deployment")["inference"])
    ref = next(e for e in inference["env"] if e["name"] == "DATABASE_URL")["valueFrom"]
    # CloudNativePG names the application secret <cluster>-app and puts the DSN under `uri`.
    assert ref["secretKeyRef"] == {"name": f"{cluster['metadata']['name']}-app", "key": "uri"}
    assert "StatefulSet" not in {r["kind"] for r in resources}


def test_prod_uses_an_external_database() -> None:
    kinds = {r["kind"] for r in rendered("prod")}
    assert "Cluster" not in kinds
    assert "StatefulSet" not in kinds


def test_migration_job_runs_the_migrate_image() -> None:
    (job,) = by_kind(rendered("prod"), "Job").values()
    spec = container(job)
    assert "command" not in spec
    assert spec["image"].rsplit(":", 1)[0].endswith("cat-dog/migrate")
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}


def test_generated_monitoring_objects_are_up_to_date() -> None:
    assert generate.main(["--check"]) == 0


def test_prometheus_rules_are_the_monitoring_rules() -> None:
    rules = by_kind(rendered("prod"), "PrometheusRule")
    for path in sorted(generate.RULES_DIR.glob("*.yml")):
        source = yaml.safe_load(path.read_text())["groups"]
        assert rules[f"cat-dog-{path.stem}"]["spec"]["groups"] == source


def test_grafana_dashboards_are_labelled_for_the_sidecar() -> None:
    config_maps = by_kind(rendered("prod"), "ConfigMap")
    dashboards = sorted(generate.DASHBOARDS_DIR.glob("*.json"))
    for path in dashboards:
        config_map = config_maps[f"cat-dog-dashboard-{path.stem.replace('_', '-')}"]
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(config_map["data"][path.name]) == json.loads(path.read_text())


def test_prometheus_rule_objects_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    for name, rule in by_kind(rendered("prod"), "PrometheusRule").items():
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        result = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_generator_check_detects_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / "prometheus-rules.yaml"
    stale.write_text("# old\n")
    outputs = generate.outputs()
    monkeypatch.setattr(generate, "outputs", lambda: {stale: outputs[generate.RULES_OUTPUT]})
    assert generate.main(["--check"]) == 1
    assert stale.read_text() == "# old\n"
    assert generate.main([]) == 0
    assert generate.main(["--check"]) == 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_page_posts_feedback_to_an_origin_feedback_accepts(overlay: str) -> None:
    resources = rendered(overlay)
    deployments = by_kind(resources, "Deployment")
    inference = {e["name"]: e for e in container(deployments["inference"])["env"]}
    feedback = {e["name"]: e for e in container(deployments["feedback"])["env"]}
    public = inference["FEEDBACK_PUBLIC_URL"]["value"]
    allowed = feedback["FEEDBACK_ALLOWED_ORIGINS"]["value"].split(",")
    assert public.rstrip("/") in allowed
    (ingress,) = by_kind(resources, "Ingress").values()
    hosts = {rule.get("host") for rule in ingress["spec"]["rules"]}
    host = public.split("://", 1)[1].split("/")[0]
    assert host in hosts or hosts == {None}


def _route_back(route: dict[str, Any]) -> dict[str, Any]:
    """An AlertmanagerConfig route in alertmanager.yml's own spelling."""
    names = {"groupBy": "group_by", "groupWait": "group_wait", "groupInterval": "group_interval"}
    names |= {"repeatInterval": "repeat_interval", "receiver": "receiver", "continue": "continue"}
    back: dict[str, Any] = {names[k]: v for k, v in route.items() if k in names}
    if "matchers" in route:
        back["matchers"] = [f'{m["name"]}{m["matchType"]}"{m["value"]}"' for m in route["matchers"]]
    if "routes" in route:
        back["routes"] = [_route_back(child) for child in route["routes"]]
    return back


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_alertmanager_config_routes_as_the_compose_alertmanager_does(overlay: str) -> None:
    from monitoring.render import render_alertmanager

    resources = rendered(overlay)
    (config,) = by_kind(resources, "AlertmanagerConfig").values()
    namespace = config["metadata"]["namespace"]
    notifier = f"http://notifier.{namespace}.svc:8002"
    source = yaml.safe_load(
        render_alertmanager(
            notifier_token="t", notifier_url=notifier, discord_webhook_url="https://d.invalid/x"
        )
    )
    assert _route_back(config["spec"]["route"]) == source["route"]
    assert [r["name"] for r in config["spec"]["receivers"]] == [
        r["name"] for r in source["receivers"]
    ]
    services = by_kind(resources, "Service")
    for receiver in config["spec"]["receivers"]:
        for webhook in receiver.get("webhookConfigs", []):
            assert webhook["url"] == f"{notifier}/alertmanager"
            assert "notifier" in services
            assert webhook["httpConfig"]["authorization"]["credentials"] == {
                "name": "cv-notifier",
                "key": "token",
            }
    for rule, original in zip(config["spec"]["inhibitRules"], source["inhibit_rules"], strict=True):
        assert rule["equal"] == original["equal"]
        assert len(rule["sourceMatch"]) == len(original["source_matchers"])


def test_every_prometheus_datasource_the_dashboards_use_is_provided() -> None:
    config_maps = by_kind(rendered("prod"), "ConfigMap")
    (datasources,) = [
        c for c in config_maps.values() if c["metadata"]["labels"].get("grafana_datasource") == "1"
    ]
    provided = {
        source["uid"]: source["type"]
        for text in datasources["data"].values()
        for source in yaml.safe_load(text)["datasources"]
    }
    for path in sorted(generate.DASHBOARDS_DIR.glob("*.json")):
        used = {
            match["uid"]
            for match in _datasource_refs(json.loads(path.read_text()))
            if match.get("type") == "prometheus"
        }
        assert used
        assert used <= set(provided), path.name


def _datasource_refs(node: Any) -> list[dict[str, Any]]:
    """Every `datasource: {type, uid}` object inside a dashboard."""
    found = []
    if isinstance(node, dict):
        reference = node.get("datasource")
        if isinstance(reference, dict) and "uid" in reference:
            found.append(reference)
        for value in node.values():
            found.extend(_datasource_refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_datasource_refs(item))
    return found


def test_network_policies_let_in_exactly_what_the_services_need(tmp_path: Path) -> None:
    resources = with_component("prod", "network-policies", tmp_path)
    policies = by_kind(resources, "NetworkPolicy")
    deployments = by_kind(resources, "Deployment")
    assert policies["default-deny-ingress"]["spec"].get("ingress") is None

    def selected(policy: dict[str, Any]) -> set[str]:
        selector = policy["spec"]["podSelector"]
        names = set()
        for name, deployment in deployments.items():
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            if selector.get("matchLabels", {}).items() <= labels.items() and all(
                labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", [])
            ):
                names.add(name)
        return names

    jobs = set(by_kind(resources, "Job"))
    assert selected(policies["default-deny-ingress"]) == set(SERVICES)
    assert jobs == {"migrate"}
    allowed = {
        name: selected(policy)
        for name, policy in policies.items()
        if name != "default-deny-ingress"
    }
    # Every service is reachable through some policy, on a port its container names.
    assert set().union(*allowed.values()) == set(SERVICES)
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []):
            for port in rule["ports"]:
                for target in allowed[name]:
                    names = {p["name"] for p in container(deployments[target])["ports"]}
                    assert port["port"] in names
    (monitor,) = by_kind(resources, "ServiceMonitor").values()
    assert monitor["spec"]["endpoints"][0]["port"] == "http"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_buffers_requests_and_bounds_what_one_client_holds(overlay: str) -> None:
    (ingress,) = by_kind(rendered(overlay), "Ingress").values()
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "proxy-request-buffering"] == "on"
    assert int(annotations[prefix + "limit-connections"]) <= 50
    for timeout in ("proxy-connect-timeout", "proxy-send-timeout", "proxy-read-timeout"):
        assert int(annotations[prefix + timeout]) <= 60, timeout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_believe_forwarded_addresses_from_the_pod_network_only(overlay: str) -> None:
    (shared,) = [
        config["data"]
        for config in by_kind(rendered(overlay), "ConfigMap").values()
        if "FORWARDED_ALLOW_IPS" in config.get("data", {})
    ]
    networks = [ipaddress.ip_network(n) for n in shared["FORWARDED_ALLOW_IPS"].split(",")]
    assert networks and all(network.is_private for network in networks)


INTERNAL_PATHS = [
    "/metrics", "/ready", "/health", "/docs", "/openapi.json", "/redoc",
    "/admin/models", "/admin/feedback", "/admin/retention/purge",
]  # fmt: skip


def routed(paths: list[dict[str, Any]], request_path: str) -> bool:
    """Whether an Ingress path list sends `request_path` anywhere (Kubernetes' matching)."""
    for path in paths:
        if path["pathType"] == "Exact" and request_path == path["path"]:
            return True
        prefix = path["path"].rstrip("/")
        if path["pathType"] == "Prefix" and (
            prefix == "" or request_path == prefix or request_path.startswith(prefix + "/")
        ):
            return True
    return False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_routes_only_public_paths(overlay: str) -> None:
    (ingress,) = by_kind(rendered(overlay), "Ingress").values()
    paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    exposed = [path for path in INTERNAL_PATHS if routed(paths, path)]
    assert exposed == [], f"internal routes reachable through the Ingress: {exposed}"
    for public in ("/", "/predict", "/model", "/static/app.js", "/feedback", "/monitoring/"):
        assert routed(paths, public), public
    assert routed(paths, f"/predictions/{uuid.uuid4()}")
