"""``kubectl kustomize`` for the subset of kustomize that ``deploy/k8s`` uses (no kustomize
binary on the test machines): the resources files, the namespace, image names, and a
Secret generated from env files. Anything else in a kustomization fails loudly, so the
manifests cannot use a feature this rendering would skip."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "namespace", "resources", "images", "secretGenerator"}
SUPPORTED |= {"generatorOptions"}
#: kinds that have no namespace (of those a kustomization here may hold)
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}


def render(directory: Path) -> list[dict[str, Any]]:
    """The documents ``kubectl kustomize directory`` prints."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED
    if unsupported:
        raise ValueError(f"kustomization fields not rendered here: {sorted(unsupported)}")
    if kustomization.get("generatorOptions", {}) != {"disableNameSuffixHash": True}:
        raise ValueError("only generatorOptions.disableNameSuffixHash: true is rendered here")
    documents = []
    for resource in kustomization["resources"]:
        text = (directory / resource).read_text()
        documents += [document for document in yaml.safe_load_all(text) if document]
    documents += [_secret(directory, spec) for spec in kustomization.get("secretGenerator", [])]
    for document in documents:
        if "namespace" in kustomization and document["kind"] not in CLUSTER_SCOPED:
            document["metadata"]["namespace"] = kustomization["namespace"]
        for image in kustomization.get("images", []):
            _rename_image(document, image)
    return documents


def _secret(directory: Path, spec: dict[str, Any]) -> dict[str, Any]:
    if set(spec) != {"name", "envs"}:
        raise ValueError(f"secretGenerator fields not rendered here: {sorted(spec)}")
    data = {}
    for env_file in spec["envs"]:
        for line in (directory / env_file).read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                name, _, value = line.partition("=")
                data[name.strip()] = base64.b64encode(value.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": spec["name"]},
        "type": "Opaque",
        "data": data,
    }


def pod_spec(document: dict[str, Any]) -> dict[str, Any] | None:
    """The pod template's spec of a workload (Deployment, Job...), else None."""
    return document.get("spec", {}).get("template", {}).get("spec")


def _rename_image(document: dict[str, Any], image: dict[str, str]) -> None:
    spec = pod_spec(document)
    if spec is None:
        return
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        name = container["image"].split("@")[0].rsplit(":", 1)[0]
        if name == image["name"]:
            new = image.get("newName", name)
            container["image"] = f"{new}:{image['newTag']}" if "newTag" in image else new
