"""What every manifest module shares: pinned images, ports, labels, the restricted security context, quantities,
and the :class:`Context` the Pulumi program hands the manifests (what only the live stack knows)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from planner.plan import Part
from stacks.layout import PartInfo

Obj = dict[str, Any]

# Container images, pinned (a reviewer sees exactly what runs). Sources: the projects' release pages and registries.
IMAGES = {
    "vllm": "vllm/vllm-openai:v0.33.0",
    "vllm-rocm": "rocm/vllm:rocm6.4.1_vllm_0.9.0.1_20250605",
    "triton": "nvcr.io/nvidia/tritonserver:24.12-py3",
    "triton-igpu": "nvcr.io/nvidia/tritonserver:24.12-py3-igpu",
    "tensorrt-llm": "nvcr.io/nvidia/tensorrt-llm/release:1.0.0",
    "envoy": "envoyproxy/envoy:v1.32.3",
}
SERVE_PORT = 8000
GRPC_PORT = 8001
METRICS_PORT = 8002
TLS_PORT = 8443
#: UID/GID of the model-server pods: above 10000, so it matches no user of the node (checkov CKV_K8S_40, "run as
#: a high UID to avoid host conflict"). vLLM, Triton and Envoy run as any UID with HOME=/tmp.
RUN_AS_USER = 10001
#: The rayproject images' own "ray" user (uid 1000, HOME /home/ray, which Ray writes to): the training RayJob
#: runs as it, like the RayService pods (serving.kuberay.RAY_UID).
RAY_IMAGE_UID = 1000
GIB = 2**30
MIB = 2**20


@dataclass(frozen=True)
class Context:
    """What the manifests need beyond the plan, from the live stack (the Pulumi program) or, for ``k8s/*.yaml``,
    from the plan with placeholders where only the cloud knows the value (an account id, a client id).

    - ``model_uri``: the stack's model bucket prefix (``s3://``, ``gs://``, ``https://<acct>.blob...``) when the
      ``mlplan:modelBucket`` config overrides the plan's bucket name;
    - ``service_account_annotations``: workload identity on the serving ServiceAccount (IRSA role ARN, GKE Google
      service account, AKS client id); values may be Pulumi Outputs;
    - ``pod_labels``: on every serving pod (AKS: ``azure.workload.identity/use``);
    - ``lb_annotations``: the cloud's internal load balancer annotations (GKE / AKS, from the stack's
      ``PartOutputs``); None: the manifests' own per-target defaults;
    - ``extra_tolerations``: taints of the accelerator pool beyond the GPU taint (AKS Spot);
    - ``cloud_endpoint``: hybrid, the cloud side's private ``host:port`` as seen from the safe side.
    """

    model_uri: str | None = None
    service_account_annotations: Mapping[str, Any] = field(default_factory=dict)
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    lb_annotations: Mapping[str, str] | None = None
    extra_tolerations: tuple[Mapping[str, str], ...] = ()
    cloud_endpoint: str | None = None


def labels(info: PartInfo) -> dict[str, str]:
    return {"app.kubernetes.io/name": info.app, "app.kubernetes.io/component": "model-server",
            "app.kubernetes.io/managed-by": "mlplan", "mlplan.dev/role": info.part.role,
            "mlplan.dev/part": info.key}


def selector(info: PartInfo) -> dict[str, str]:
    return {"app.kubernetes.io/name": info.app, "mlplan.dev/role": info.part.role}


def meta(name: str, info: PartInfo, **extra: Any) -> Obj:
    out: Obj = {"name": name, "namespace": info.namespace, "labels": labels(info)}
    out.update(extra)
    return out


def container_security(uid: int = RUN_AS_USER) -> Obj:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "runAsUser": uid, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def pod_security(uid: int = RUN_AS_USER) -> Obj:
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"}}


def pull_policy(part: Part) -> str:
    """``Always`` in data centres and clouds: the kubelet re-resolves the pinned tag at every pod start, so a
    re-pushed tag is never served from a stale node cache and every pod proves its pull credentials (a cached
    private image is otherwise usable by any pod on the node; checkov CKV_K8S_15). ``IfNotPresent`` on edge
    fleets: devices on intermittent links must restart pods from their cache while offline."""
    return "IfNotPresent" if part.placement == "edge" else "Always"


def weights_bytes(part: Part) -> int:
    """Weight bytes of the model in the part's dtype, as the planner counted them (``Part.weights_bytes``)."""
    return part.weights_bytes


_UNITS = {"": 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}


def quantity(q: str | int | float) -> float:
    """A Kubernetes quantity (``500m``, ``16Gi``, ``4``) as a number (cores, bytes, count)."""
    text = str(q)
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            return float(text[: -len(suffix)]) * _UNITS[suffix]
    return float(text)


def pod_limits(pod_spec: Obj) -> dict[str, float]:
    """Effective pod limits: max(sum of containers, each init container), per resource."""
    total: dict[str, float] = {}
    for c in pod_spec.get("containers", []):
        for k, v in c.get("resources", {}).get("limits", {}).items():
            total[k] = total.get(k, 0.0) + quantity(v)
    for c in pod_spec.get("initContainers", []):
        for k, v in c.get("resources", {}).get("limits", {}).items():
            total[k] = max(total.get(k, 0.0), quantity(v))
    return total


def pod_requests(pod_spec: Obj) -> dict[str, float]:
    """Effective pod requests as the scheduler counts them: max(sum of containers, largest init container)."""
    total: dict[str, float] = {}
    for c in pod_spec.get("containers", []):
        for k, v in c.get("resources", {}).get("requests", {}).items():
            total[k] = total.get(k, 0.0) + quantity(v)
    for c in pod_spec.get("initContainers", []):
        for k, v in c.get("resources", {}).get("requests", {}).items():
            total[k] = max(total.get(k, 0.0), quantity(v))
    return total
