"""What the Kubernetes target applies: the plan folder's manifests, read, checked and put in apply order.

``k8s/<part>.yaml`` of every part except those on a cluster the Pulumi stack creates (EKS, GKE, AKS), plus the
RayServices of ``serving/kuberay/rayservice.yaml`` that no ``k8s/`` file already holds. Apply order is the order
Helm installs kinds in (dependencies first); teardown runs it backwards, namespaces last.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from planner.errors import ArtifactError
from stacks.folder import PlanFolder

ORDER = (
    "Namespace", "CustomResourceDefinition", "PriorityClass", "StorageClass", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "ServiceAccount", "Secret", "ConfigMap", "PersistentVolume", "PersistentVolumeClaim",
    "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "NetworkPolicy", "Service", "DaemonSet",
    "Pod", "ReplicaSet", "Deployment", "StatefulSet", "Job", "CronJob", "RayCluster", "RayService",
    "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress",
)
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "RayService", "RayCluster")
_RANK = {k: i for i, k in enumerate(ORDER)}
REMAKE = "run `mlplan plan SPEC --out DIR` again"


@dataclass(frozen=True)
class Manifest:
    body: dict[str, Any]
    source: str

    @property
    def api_version(self) -> str:
        return str(self.body["apiVersion"])

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        ns = self.body["metadata"].get("namespace")
        return str(ns) if ns else None

    @property
    def identity(self) -> tuple[str, str | None, str]:
        return self.kind, self.namespace, self.name


def select_manifests(folder: PlanFolder) -> list[Manifest]:
    """What ``--target kubernetes`` applies to the kubeconfig's cluster, in apply order."""
    cloud = folder.cloud_cluster_keys()
    files = folder.k8s_files()
    applied = read_manifests([f for f in files if f.stem not in cloud])
    known = {m.identity for m in applied} | {m.identity for m in read_manifests([f for f in files
                                                                                 if f.stem in cloud])}
    extra: list[Manifest] = []
    if folder.rayservice.is_file():
        extra = [m for m in read_manifests([folder.rayservice]) if m.identity not in known]
    return ordered(applied + extra)


def read_manifests(paths: Iterable[Path]) -> list[Manifest]:
    """Every YAML document of the files, checked for apiVersion / kind / metadata.name, in apply order."""
    out: list[Manifest] = []
    for path in paths:
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as e:
            raise ArtifactError(f"manifest {path} is not readable YAML: {str(e).splitlines()[0]}",
                                fix=REMAKE) from None
        for n, doc in enumerate(docs):
            if doc is None:
                continue
            where = f"{path.name} document {n + 1}"
            if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
                raise ArtifactError(f"{where} is not a Kubernetes object (no apiVersion/kind)", fix=REMAKE)
            if str(doc["kind"]).endswith("List") and isinstance(doc.get("items"), list):
                out.extend(_manifest(item, where) for item in doc["items"])
                continue
            out.append(_manifest(doc, where))
    return ordered(out)


def _manifest(doc: object, where: str) -> Manifest:
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not isinstance(meta, dict) or not meta.get("name"):
        raise ArtifactError(f"{where} has no metadata.name", fix=REMAKE)
    return Manifest(body=doc, source=where)


def ordered(manifests: list[Manifest]) -> list[Manifest]:
    """Apply order (stable: file order within a kind)."""
    return sorted(manifests, key=lambda m: _RANK.get(m.kind, len(ORDER)))


def ref_id(api_version: str, kind: str, namespace: str | None, name: str) -> str:
    """The key of an object in the deploy state."""
    return f"{api_version}/{kind}/{namespace or ''}/{name}"


def teardown_order(refs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Reverse apply order, namespaces last."""
    return sorted((dict(r) for r in refs),
                  key=lambda r: (r["kind"] == "Namespace", -_RANK.get(str(r["kind"]), len(ORDER))))


def describe(ref: Mapping[str, Any]) -> str:
    """``Kind/name`` (and `` in namespace``) of a recorded object, for messages."""
    where = f" in {ref['namespace']}" if ref.get("namespace") else ""
    return f"{ref['kind']}/{ref['name']}{where}"
