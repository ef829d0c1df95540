"""KubeRay ``RayService`` (``ray.io/v1``) for plans served by Ray on Kubernetes.

``spec.serveConfigV2`` is the Serve config of :mod:`serving.ray_config` as a YAML string. The head group runs
the GCS, dashboard and Serve controller (``num-cpus: 0``, so no replica lands there); one worker group per
part carries the plan's ``nodes`` (worker pods, one per node), ``gpus_per_node`` (``nvidia.com/gpu`` limit ==
``rayStartParams.num-gpus``) and GPU type (``nodeSelector`` and tolerations from :mod:`serving.hardware`: the
accelerator pool of the stacks' clusters, or GPU Feature Discovery's ``nvidia.com/gpu.product`` on-prem).
Worker pods take the node's allocatable share; the head sits on the system pool. Pods get restricted-profile
security defaults (runAsNonRoot, no privilege escalation, all capabilities dropped, seccomp RuntimeDefault),
requests == limits, and readiness/liveness probes equal to the ones KubeRay injects (raylet health, GCS health
on the head, Serve proxy health on workers), written out so reviewers see them.

Validation: :func:`validate_rayservice` checks the object against the RayService CRD's openAPIV3Schema
(jsonschema Draft 7), rejects fields the schema does not declare (the API server would silently prune them),
and validates ``serveConfigV2`` with :func:`serving.ray_config.validate_serve_config`.
Sources: KubeRay docs "RayService" and ray-operator/config/crd/bases/ray.io_rayservices.yaml; Kubernetes Pod
Security Standards (restricted).
"""

from __future__ import annotations

import math
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

from planner.errors import ArtifactError, MissingDependency
from planner.plan import Part, Plan
from serving import hardware
from serving.ray_config import app_name, build_serve_config, serve_runtime, validate_serve_config

RAY_VERSION = "2.60.0"
RAY_IMAGE = f"rayproject/ray:{RAY_VERSION}-py311"  # + "-gpu" on GPU workers
RAY_LLM_IMAGE = f"rayproject/ray-llm:{RAY_VERSION}-py311-cu128"
#: AMD's ROCm build of Ray with vLLM for AMD Instinct GPUs, and its Ray version (the cluster's rayVersion).
#: Source: https://rocm.docs.amd.com (Ray on ROCm), https://hub.docker.com/r/rocm/ray
RAY_ROCM_IMAGE, RAY_ROCM_VERSION = "rocm/ray:ray-2.51.1_rocm7.0.0_ubuntu22.04_py3.12_pytorch2.9.0", "2.51.1"
MLPLAN_IMAGE = "mlplan-serving:0.1.0"  # built from the repository Dockerfile (serving extra); push to your registry
RAY_UID = 1000  # the "ray" user of the rayproject images
#: The head pod (GCS, dashboard, Serve controller; ``num-cpus: 0``, so no replica lands there), on the system pool.
HEAD_CPU, HEAD_MEMORY = "2", "8Gi"
SCHEMA_FILE = "ray.io_rayservices.yaml"


def uses_kubernetes(plan: Plan, part: Part) -> bool:
    """Whether ``part`` of ``plan`` is served by Ray on Kubernetes (so gets a RayService).

    Ray runtimes only (ray, vllm). Cloud: more than one accelerator in the part (``nodes * gpus_per_node > 1``)
    needs a cluster. On-prem: every part except a single ``localhost`` box (served by ``serve run``). Edge
    fleets run Triton / firmware, never KubeRay.
    """
    if plan.workload != "inference" or serve_runtime(plan, part) not in ("ray", "vllm"):
        return False
    if part.placement == "cloud":
        return part.nodes * max(part.gpus_per_node, 1) > 1
    if part.placement == "on-prem":
        return part.instance != "localhost"
    return False


def kubernetes_parts(plan: Plan) -> list[Part]:
    return [p for p in plan.parts if uses_kubernetes(plan, p)]


def _label_value(text: str) -> str:
    v = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", v) or "x"


def _security_pod() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": RAY_UID, "runAsGroup": 100, "fsGroup": 100,
            "seccompProfile": {"type": "RuntimeDefault"}}


def _security_container() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
            "privileged": False, "seccompProfile": {"type": "RuntimeDefault"}}


def _probe(command: str, *, period: int, failures: int, delay: int) -> dict[str, Any]:
    return {"exec": {"command": ["bash", "-c", command]}, "initialDelaySeconds": delay,
            "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": failures, "successThreshold": 1}


_RAYLET = "wget -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success"
_GCS = "wget -T 2 -q -O- http://localhost:8265/api/gcs_healthz | grep success"
_PROXY = "wget -T 2 -q -O- http://localhost:8000/-/healthz | grep success"


def _volumes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    vols = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}, {"name": "ray-tmp", "emptyDir": {}}]
    mounts = [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "ray-tmp", "mountPath": "/tmp/ray"}]
    return vols, mounts


def _image(plan: Plan, part: Part, gpu: bool) -> str:
    if serve_runtime(plan, part) == "vllm":
        return RAY_ROCM_IMAGE if part.device.vendor == "amd" else RAY_LLM_IMAGE
    return os.environ.get("MLPLAN_SERVING_IMAGE", MLPLAN_IMAGE) if not gpu else \
        os.environ.get("MLPLAN_SERVING_IMAGE_GPU", f"{MLPLAN_IMAGE}-gpu")


def build_rayservice(plan: Plan, namespace: str, part: Part | None = None, *,
                     bucket_uri: str | None = None) -> dict[str, Any]:
    """The RayService for ``part`` (default: the plan's first Kubernetes part, else its first part).

    Worker pods take the node's allocatable share (:func:`serving.hardware.pod_budget`, one worker pod per node,
    all its accelerators); vLLM workers first fetch the weights into their ``models`` volume
    (:mod:`serving.fetch`; ``bucket_uri`` overrides the stack's bucket prefix). Every pod runs as the part's
    ServiceAccount (its workload identity reads the model bucket)."""
    from serving import fetch

    if part is None:
        k8s = kubernetes_parts(plan)
        part = k8s[0] if k8s else plan.parts[0]
    gpu = hardware.uses_gpu(part)
    llm = serve_runtime(plan, part) == "vllm"
    model_path = fetch.model_dir(plan) if llm else None
    serve_cfg = build_serve_config(plan, part if len(plan.parts) > 1 else None, model_path=model_path)
    import yaml

    serve_yaml = yaml.safe_dump(serve_cfg, sort_keys=True)
    name = app_name(plan, part if len(plan.parts) > 1 else None)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "mlplan",
              "app.kubernetes.io/component": "serving", "mlplan.dev/plan": _label_value(plan.id),
              "mlplan.dev/role": _label_value(part.role)}
    image = _image(plan, part, gpu)
    ray_version = RAY_ROCM_VERSION if image == RAY_ROCM_IMAGE else RAY_VERSION
    vols, mounts = _volumes()

    head_container = {
        "name": "ray-head", "image": image, "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": 6379, "name": "gcs-server"}, {"containerPort": 8265, "name": "dashboard"},
                  {"containerPort": 10001, "name": "client"}, {"containerPort": 8000, "name": "serve"}],
        "resources": {"requests": {"cpu": HEAD_CPU, "memory": HEAD_MEMORY},
                      "limits": {"cpu": HEAD_CPU, "memory": HEAD_MEMORY}},
        "securityContext": _security_container(), "volumeMounts": mounts,
        "readinessProbe": _probe(f"{_RAYLET} && {_GCS}", period=5, failures=10, delay=10),
        "livenessProbe": _probe(f"{_RAYLET} && {_GCS}", period=5, failures=120, delay=30),
    }
    sa = part.names.app
    head_spec: dict[str, Any] = {"serviceAccountName": sa, "containers": [head_container], "volumes": vols,
                                 "securityContext": _security_pod(), "automountServiceAccountToken": False}
    if part.target in hardware.CLOUD_CLUSTER_TARGETS:
        head_spec["nodeSelector"] = {hardware.POOL_LABEL: hardware.SYSTEM_POOL}
    head = {
        "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
        "template": {"metadata": {"labels": dict(labels)}, "spec": head_spec},
    }

    gpn = part.gpus_per_node if gpu else 0
    cpu_m, mem_mib = hardware.pod_budget(part, 1)
    limits: dict[str, str] = {"cpu": hardware.cpu_quantity(cpu_m), "memory": hardware.memory_quantity(mem_mib)}
    if gpn:
        limits[hardware.device_resource(part)] = str(gpn)
    worker_container: dict[str, Any] = {
        "name": "ray-worker", "image": image, "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": dict(limits), "limits": dict(limits)},
        "securityContext": _security_container(), "volumeMounts": list(mounts),
        "readinessProbe": _probe(f"{_RAYLET} && {_PROXY}", period=5, failures=10, delay=10),
        "livenessProbe": _probe(_RAYLET, period=5, failures=120, delay=30),
    }
    worker_vols = list(vols)
    init: list[dict[str, Any]] = []
    if llm:
        source = fetch.model_source(plan, part, bucket_uri or fetch.bucket_uri(plan, part))
        init.append(fetch.fetch_container(source, engine_image=image, pull_policy="IfNotPresent",
                                          region=part.region, uid=RAY_UID))
        worker_vols += fetch.model_volumes(source)
        worker_container["volumeMounts"].append({"name": fetch.MODELS_VOLUME, "mountPath": fetch.MODELS_MOUNT,
                                                 "readOnly": True})
        worker_container["env"] = [{"name": "HF_HUB_OFFLINE", "value": "1"}]
    elif "s3://" in serve_yaml:
        # model weights from S3: credentials come from the pod's service account (IRSA / workload identity)
        worker_container["env"] = [{"name": "AWS_REGION", "value": part.region or "us-east-1"}]
    worker_spec: dict[str, Any] = {"serviceAccountName": sa, "containers": [worker_container],
                                   "volumes": worker_vols, "securityContext": _security_pod(),
                                   "automountServiceAccountToken": False,
                                   "nodeSelector": hardware.node_selector(part)}
    if init:
        worker_spec["initContainers"] = init
    if gpn:
        worker_spec["tolerations"] = hardware.tolerations(part)
    if part.nodes > 1:  # spread worker pods over distinct nodes (one pod owns one node's GPUs)
        worker_spec["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": name, "ray.io/node-type": "worker"}}}]
    max_nodes = part.nodes
    s = plan.serving
    if len(plan.parts) == 1 and s.max_replicas > s.min_replicas and gpn:
        max_nodes = max(part.nodes, math.ceil(s.max_replicas * part.accelerator_count / gpn))
    start: dict[str, str] = {"num-gpus": str(gpn)}  # Ray detects the accelerator_type:<T> resource itself
    worker_group = {
        "groupName": _label_value(f"{'gpu' if gpu else 'cpu'}-{part.accelerator}")[:40],
        "replicas": part.nodes, "minReplicas": part.nodes, "maxReplicas": max_nodes, "numOfHosts": 1,
        "rayStartParams": start,
        "template": {"metadata": {"labels": {**labels, "ray.io/node-type": "worker"}}, "spec": worker_spec},
    }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "serveConfigV2": serve_yaml,
            "rayClusterConfig": {
                "rayVersion": ray_version,
                "enableInTreeAutoscaling": max_nodes > part.nodes,
                "headGroupSpec": head,
                "workerGroupSpecs": [worker_group],
            },
        },
    }


def build_rayservices(plan: Plan, namespace: str) -> list[dict[str, Any]]:
    """One RayService per Kubernetes part of the plan (a hybrid plan may have several)."""
    return [build_rayservice(plan, namespace, p) for p in kubernetes_parts(plan)]


# ------------------------------------------------------------------------------------------------ validation
def schemas_dir() -> Path | None:
    """``$MLPLAN_SCHEMAS_DIR``, else ``<repo>/../shared/schemas``; None when the CRD file is in neither."""
    env = os.environ.get("MLPLAN_SCHEMAS_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parent.parent.parent / "shared" / "schemas")
    for c in candidates:
        if (c / SCHEMA_FILE).is_file():
            return c
    return None


@cache
def rayservice_schema() -> dict[str, Any]:
    """``spec.versions[name=v1].schema.openAPIV3Schema`` of the RayService CRD."""
    import yaml

    d = schemas_dir()
    if d is None:
        raise MissingDependency(f"the RayService CRD schema {SCHEMA_FILE} was not found",
                                fix="set MLPLAN_SCHEMAS_DIR to the folder holding it (shared/schemas)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is 1 MB: libyaml reads it 5x faster
    crd = yaml.load((d / SCHEMA_FILE).read_text(), Loader=loader)
    for v in crd["spec"]["versions"]:
        if v["name"] == "v1":
            schema: dict[str, Any] = v["schema"]["openAPIV3Schema"]
            return schema
    raise ArtifactError(f"{d / SCHEMA_FILE} has no v1 version", fix="use the KubeRay v1 CRD")


@cache
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(rayservice_schema())


def _strict(schema: dict[str, Any], obj: Any, path: str) -> None:
    """Reject object keys the structural schema does not declare (the API server would prune them)."""
    if isinstance(obj, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
            for k, v in obj.items():
                here = f"{path}.{k}"
                if k in props:
                    _strict(props[k], v, here)
                elif isinstance(extra, dict):
                    _strict(extra, v, here)
                elif extra is not True:
                    raise ArtifactError(f"unknown field {here!r} in the RayService (the CRD declares: "
                                        f"{', '.join(sorted(props))})", fix="remove or correct the field")
        elif isinstance(extra, dict):
            for k, v in obj.items():
                _strict(extra, v, f"{path}.{k}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            _strict(schema["items"], item, f"{path}[{i}]")


def validate_rayservice(obj: dict[str, Any]) -> None:
    """CRD schema (jsonschema Draft 7) + unknown-field check + ``serveConfigV2`` with Ray's schema."""
    import yaml

    schema = rayservice_schema()
    errors = sorted(_validator().iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
        raise ArtifactError(f"RayService invalid at {where or '.'}: {e.message}",
                            fix="correct the field (schema: ray.io_rayservices.yaml)")
    if obj.get("apiVersion") != "ray.io/v1" or obj.get("kind") != "RayService":
        raise ArtifactError(f"not a ray.io/v1 RayService: {obj.get('apiVersion')}/{obj.get('kind')}")
    _strict(schema, obj, "")
    text = obj.get("spec", {}).get("serveConfigV2")
    if not isinstance(text, str):
        raise ArtifactError("RayService has no spec.serveConfigV2 string", fix="re-run mlplan plan")
    validate_serve_config(yaml.safe_load(text))
