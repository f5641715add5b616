"""docker-compose.yml run for real, by the code `make up` runs (`deploy.compose`).

The container tier (`make test-containers`) runs in a network namespace of its own: the ports
the stack publishes are that namespace's loopback, and the stack's bridge and firewall rules
never touch the host's network. Podman's API gets a socket of its own there, so containers are
never created through an API serving another namespace.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploy.compose import (
    COMPOSE_FILE,
    IMAGE_REPOSITORY,
    TARGETS,
    Engine,
    PodmanSession,
    base_image,
    find_engine,
    run_compose,
    up,
)
from harness.monitoring import write_scaled_rules
from monitoring.render import MONITORING_DIR, RULES_DIR

PROJECT = "cat-dog"
# Services left out of the tier, and why: the test output says so.
LEFT_OUT = {
    "grafana": "no package registry reachable here ships Grafana's image; its service stays "
    "defined in docker-compose.yml and its provisioning is checked as data (monitoring/tests)",
}
# Minutes of `for:` become seconds, and Alertmanager batches for a second or two.
RULE_SCALE = 12
ROUTE_TIMINGS = ("group_wait=1s", "group_interval=2s", "repeat_interval=1h")


def isolated_network() -> bool:
    """True when this process runs in another network namespace than the one named by
    `CV_HOST_NETNS` (`make test-containers` records its own before `unshare --net`)."""
    host = os.environ.get("CV_HOST_NETNS")
    return bool(host) and os.readlink("/proc/self/ns/net") != host


def generated_env() -> dict[str, str]:
    """What an operator puts in .env: random secrets, the documented defaults otherwise."""

    def token() -> str:
        return secrets.token_hex(24)

    return {
        "POSTGRES_PASSWORD": token(),
        "NOTIFIER_TOKEN": token(),
        "FEEDBACK_ADMIN_TOKEN": token(),
        "INFERENCE_ADMIN_TOKEN": token(),
        "DASHBOARD_PASSWORD": token(),
        "GRAFANA_PASSWORD": token(),
        "DISCORD_WEBHOOK_URL": "",
    }


@dataclass
class ComposeStack:
    """The project's compose file with an operator's .env, and the calls the tests make."""

    work_dir: Path
    env: dict[str, str] = field(default_factory=generated_env)
    engine: Engine = field(default_factory=find_engine)

    def __post_init__(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.session = PodmanSession(
            state_dir=self.work_dir / "state", sock=self.work_dir / "podman.sock"
        )
        self.env_file = self.work_dir / "env"
        self.override = self.work_dir / "docker-compose.fast.yml"
        self.write_env()
        self._write_fast_override()

    def write_env(self, **changes: str) -> None:
        """Write the .env file compose reads, with `changes` applied."""
        self.env.update(changes)
        self.env_file.write_text("".join(f"{key}={value}\n" for key, value in self.env.items()))

    @property
    def options(self) -> list[str]:
        return ["--env-file", str(self.env_file), "-f", str(COMPOSE_FILE), "-f", str(self.override)]

    def services(self) -> list[str]:
        """Every service of the compose file but the ones left out."""
        names = self.compose("config", "--services").stdout.split()
        return [name for name in names if name not in LEFT_OUT]

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a compose command on this stack, its output captured."""
        done = run_compose(self.engine, self.session, args, options=self.options, capture=True)
        if check and done.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def up(self) -> subprocess.CompletedProcess[str]:
        """`up --wait` with the images already built, everything but what is left out."""
        return up(
            self.engine,
            self.session,
            build=False,
            services=self.services(),
            options=self.options,
        )

    def down(self) -> subprocess.CompletedProcess[str]:
        """`down --volumes`, then stop podman's API and health watcher."""
        try:
            return self.compose("down", "--volumes", "--remove-orphans", check=False)
        finally:
            self.session.stop()

    def containers(self) -> list[dict[str, Any]]:
        """`compose ps --all` as JSON objects (Service, State, Health, ExitCode, …)."""
        text = self.compose("ps", "--all", "--format", "json").stdout.strip()
        if not text:
            return []
        if text.startswith("["):
            rows: list[dict[str, Any]] = json.loads(text)
            return rows
        return [json.loads(line) for line in text.splitlines()]

    def sql(self, query: str) -> str:
        """A query run by psql inside the PostgreSQL container; its unaligned output."""
        user = self.env.get("POSTGRES_USER", "cv")
        psql = ["psql", "-U", user, "-d", "predictions_feedback", "-v", "ON_ERROR_STOP=1"]
        return self.compose("exec", "-T", "postgres", *psql, "-Atc", query).stdout.strip()

    def image_sizes_over_base(self) -> dict[str, float]:
        """Each project image's size minus its base image's, in MB (10^6 bytes)."""

        def size(image: str) -> int:
            done = subprocess.run(
                [self.engine.name, "image", "inspect", "--format", "{{.Size}}", image],
                capture_output=True,
                text=True,
                check=True,
            )
            return int(done.stdout.strip())

        base = size(base_image())
        return {
            target: round((size(f"{IMAGE_REPOSITORY}/{target}:latest") - base) / 1e6, 1)
            for target in TARGETS
        }

    def gateway(self) -> str:
        """The address of this namespace on the stack's network, as containers reach it."""
        network = f"{PROJECT}_default"
        done = subprocess.run(
            [self.engine.name, "network", "inspect", network],
            capture_output=True,
            text=True,
            check=True,
        )
        (details,) = json.loads(done.stdout)
        # podman: subnets[].gateway; Docker: IPAM.Config[].Gateway.
        for subnet in details.get("subnets") or []:
            return str(subnet["gateway"])
        for config in details["IPAM"]["Config"]:
            return str(config["Gateway"])
        raise AssertionError(f"no gateway on {network}: {details}")

    def _write_fast_override(self) -> None:
        """A second compose file, as an operator would add one: Prometheus with second-long
        intervals and scaled `for:` durations, Alertmanager batching for a second or two."""
        fast = self.work_dir / "fast"
        fast.mkdir(mode=0o755, exist_ok=True)
        # Containers run as other users: what they read must be readable by all.
        self.work_dir.chmod(0o755)
        config = yaml.safe_load((MONITORING_DIR / "prometheus" / "prometheus.yml").read_text())
        config["global"].update(
            {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
        )
        (fast / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        write_scaled_rules(RULES_DIR, fast / "rules", RULE_SCALE)
        committed = yaml.safe_load(COMPOSE_FILE.read_text())
        render_command = committed["services"]["alertmanager-config"]["command"]
        override = {
            "services": {
                "prometheus": {
                    "volumes": [
                        f"{fast / 'prometheus.yml'}:/etc/prometheus/prometheus.yml:ro",
                        f"{fast / 'rules'}:/etc/prometheus/rules:ro",
                    ]
                },
                "alertmanager-config": {
                    "command": [*render_command, *(f"--route-timing={t}" for t in ROUTE_TIMINGS)]
                },
            }
        }
        self.override.write_text(yaml.safe_dump(override, sort_keys=False))
