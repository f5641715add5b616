"""Render a kustomization the way `kubectl kustomize` does, for exactly the features used here.

The project's checks must run where no kustomize binary is installed (Debian ships none recent
enough), so this renders: `resources` (files and folders), `components`, `namespace`, `labels`
(metadata only), `images`, `replicas`, `patches` (strategic merge, addressed by the patch's own
kind and name or by `target`), and `configMapGenerator` (literals and files, with kustomize's
content-hash suffix and the references to it rewritten). Anything else in a kustomization is
refused rather than ignored. Where kubectl is installed, the tests compare the two renderings.

    python -m deploy.k8s.render deploy/k8s/overlays/prod
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "components",
    "namespace",
    "labels",
    "images",
    "replicas",
    "patches",
    "configMapGenerator",
    "generatorOptions",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
# Lists merged item by item on this key by a strategic merge patch; other lists are replaced.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "name",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}


class RenderError(ValueError):
    """The kustomization uses something this renderer does not support, or is inconsistent."""


def render(path: Path) -> list[Resource]:
    """Every resource the kustomization at `path` produces, in kustomize's output order."""
    return _build(Path(path).resolve(), component=False)


def _load_kustomization(folder: Path) -> dict[str, Any]:
    file = folder / "kustomization.yaml"
    if not file.is_file():
        raise RenderError(f"no kustomization.yaml in {folder}")
    document: dict[str, Any] = yaml.safe_load(file.read_text()) or {}
    unknown = set(document) - SUPPORTED
    if unknown:
        raise RenderError(f"{file}: unsupported fields {sorted(unknown)}")
    return document


def _read_resources(path: Path) -> list[Resource]:
    if path.is_dir():
        return _build(path, component=False)
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _build(
    folder: Path, *, component: bool, inherited: list[Resource] | None = None
) -> list[Resource]:
    kustomization = _load_kustomization(folder)
    expected = "Component" if component else "Kustomization"
    if kustomization.get("kind", "Kustomization") != expected:
        raise RenderError(f"{folder}: expected kind {expected}")
    resources: list[Resource] = list(inherited or [])
    for entry in kustomization.get("resources", []):
        resources.extend(_read_resources(folder / entry))
    generated = _generate_config_maps(folder, kustomization)
    resources.extend(generated)
    for entry in kustomization.get("components", []):
        resources = _build(folder / entry, component=True, inherited=resources)
    for patch in kustomization.get("patches", []):
        _apply_patch(folder, patch, resources)
    _set_replicas(kustomization.get("replicas", []), resources)
    _set_images(kustomization.get("images", []), resources)
    for labels in kustomization.get("labels", []):
        if set(labels) - {"pairs"}:
            raise RenderError(f"{folder}: only labels.pairs is supported")
        for resource in resources:
            resource.setdefault("metadata", {}).setdefault("labels", {}).update(labels["pairs"])
    if "namespace" in kustomization:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = kustomization["namespace"]
    _hash_generated(generated, resources)
    return resources


def _generate_config_maps(folder: Path, kustomization: dict[str, Any]) -> list[Resource]:
    options = kustomization.get("generatorOptions", {})
    generated = []
    for spec in kustomization.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for literal in spec.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        for file in spec.get("files", []):
            key, sep, relative = file.partition("=")
            source = folder / (relative if sep else key)
            data[key if sep else Path(key).name] = source.read_text()
        merged = {**options, **spec.get("options", {})}
        metadata: dict[str, Any] = {"name": spec["name"]}
        if merged.get("labels"):
            metadata["labels"] = dict(merged["labels"])
        if merged.get("annotations"):
            metadata["annotations"] = dict(merged["annotations"])
        config_map: Resource = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
        config_map["data"] = data
        config_map["__hash__"] = not merged.get("disableNameSuffixHash", False)
        generated.append(config_map)
    return generated


def config_map_hash(config_map: Resource) -> str:
    """kustomize's name suffix: sha256 of Go's JSON encoding of kind, name and data, re-lettered.

    kustomize 5 hashes the generated map before it is named, so "name" is empty; the tests
    compare with `kubectl kustomize` wherever kubectl is installed.
    """
    encoded = json.dumps(
        {"data": config_map.get("data", {}), "kind": "ConfigMap", "name": ""},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    # Go's encoder escapes these for safe embedding in HTML.
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        encoded = encoded.replace(char, escaped)
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _hash_generated(generated: list[Resource], resources: list[Resource]) -> None:
    renames = {}
    for config_map in generated:
        if config_map.pop("__hash__"):
            old = config_map["metadata"]["name"]
            config_map["metadata"]["name"] = f"{old}-{config_map_hash(config_map)}"
            renames[old] = config_map["metadata"]["name"]
    if renames:
        for resource in resources:
            for pod in _pod_specs(resource):
                _rename_config_map_refs(pod, renames)


def _pod_specs(resource: Resource) -> list[dict[str, Any]]:
    spec = resource.get("spec", {})
    if resource["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if "template" in spec and "spec" in spec.get("template", {}):
        return [spec["template"]["spec"]]
    if resource["kind"] == "Pod":
        return [spec]
    return []


def _rename_config_map_refs(pod: dict[str, Any], renames: dict[str, str]) -> None:
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef")
            if ref and ref.get("name") in renames:
                ref["name"] = renames[ref["name"]]
        for variable in container.get("env", []):
            ref = variable.get("valueFrom", {}).get("configMapKeyRef")
            if ref and ref.get("name") in renames:
                ref["name"] = renames[ref["name"]]
    for volume in pod.get("volumes", []):
        ref = volume.get("configMap")
        if ref and ref.get("name") in renames:
            ref["name"] = renames[ref["name"]]


def _apply_patch(folder: Path, patch: dict[str, Any], resources: list[Resource]) -> None:
    if set(patch) - {"path", "target"}:
        raise RenderError(f"{folder}: only patches with path (and target) are supported")
    documents = [doc for doc in yaml.safe_load_all((folder / patch["path"]).read_text()) if doc]
    for document in documents:
        target = patch.get("target") or {
            "kind": document["kind"],
            "name": document["metadata"]["name"],
        }
        matches = [resource for resource in resources if _matches(resource, target)]
        if not matches:
            raise RenderError(f"{folder / patch['path']}: nothing matches {target}")
        for resource in matches:
            merged = strategic_merge(resource, document)
            if patch.get("target"):
                merged["metadata"]["name"] = resource["metadata"]["name"]
            resource.clear()
            resource.update(merged)


def _matches(resource: Resource, target: dict[str, str]) -> bool:
    return all(
        resource.get(key) == value if key == "kind" else resource["metadata"].get(key) == value
        for key, value in target.items()
    )


def strategic_merge(original: Any, patch: Any, key: str | None = None) -> Any:
    """Maps merged recursively, named lists merged by name, anything else replaced."""
    if isinstance(original, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(original)
        for name, value in patch.items():
            if value is None:
                merged.pop(name, None)
            elif name in merged:
                merged[name] = strategic_merge(merged[name], value, name)
            else:
                merged[name] = copy.deepcopy(value)
        return merged
    merge_key = MERGE_KEYS.get(key or "")
    if isinstance(original, list) and isinstance(patch, list) and merge_key:
        # kustomize puts the patched items first, in the patch's order, then the untouched ones.
        by_key = {item.get(merge_key): item for item in original}
        patched = [
            strategic_merge(by_key[item.get(merge_key)], item)
            if item.get(merge_key) in by_key
            else copy.deepcopy(item)
            for item in patch
        ]
        touched = {item.get(merge_key) for item in patch}
        untouched = [copy.deepcopy(item) for item in original if item.get(merge_key) not in touched]
        return patched + untouched
    return copy.deepcopy(patch)


def _set_replicas(entries: list[dict[str, Any]], resources: list[Resource]) -> None:
    for entry in entries:
        matches = [
            r
            for r in resources
            if r["metadata"]["name"] == entry["name"] and "replicas" in r.get("spec", {})
        ]
        if not matches:
            raise RenderError(f"replicas: nothing named {entry['name']}")
        for resource in matches:
            resource["spec"]["replicas"] = entry["count"]


def _set_images(entries: list[dict[str, Any]], resources: list[Resource]) -> None:
    for entry in entries:
        for resource in resources:
            for pod in _pod_specs(resource):
                for container in pod.get("containers", []) + pod.get("initContainers", []):
                    name, _, _ = container["image"].partition("@")
                    name = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
                    if name != entry["name"]:
                        continue
                    image = entry.get("newName", name)
                    if "digest" in entry:
                        image += f"@{entry['digest']}"
                    elif "newTag" in entry:
                        image += f":{entry['newTag']}"
                    container["image"] = image


def dump(resources: list[Resource]) -> str:
    """Resources as one multi-document YAML stream."""
    return "---\n".join(yaml.safe_dump(resource, sort_keys=True) for resource in resources)


def main(argv: list[str] | None = None) -> int:
    """Command line: print the rendered manifests."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.k8s.render",
        description="Render a kustomization of deploy/k8s (the subset of kustomize it uses).",
    )
    parser.add_argument("path", type=Path, help="folder holding a kustomization.yaml")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(dump(render(args.path)))
    except (RenderError, OSError) as error:
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
