"""The one source of truth for Kubernetes objects: pure functions from a plan to manifest dicts.

These dicts are (a) written to ``k8s/*.yaml`` by the plan writer and (b) applied by the Pulumi components in
:mod:`stacks.k8s` (``pulumi_kubernetes.yaml.v2.ConfigGroup(objs=...)``), so IaC and manifests never disagree.

Security defaults follow the Pod Security Standards "restricted" profile
(https://kubernetes.io/docs/concepts/security/pod-security-standards/): non-root, no privilege escalation, all
capabilities dropped, seccomp RuntimeDefault, read-only root filesystem with ``emptyDir`` for ``/tmp``, resource
requests and limits, liveness/readiness probes, no service-account token unless the pod needs AWS credentials.
No Pulumi import here: this module is cheap and used by ``mlplan plan`` directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from planner.plan import Part, Plan
from stacks.layout import PartInfo, gpus_per_pod, nodes_per_replica, parts

Obj = dict[str, Any]

# Container images, pinned (a reviewer sees exactly what runs). Sources: the projects' release pages.
IMAGES = {
    "vllm": "vllm/vllm-openai:v0.8.5",
    "triton": "nvcr.io/nvidia/tritonserver:24.12-py3",
    "triton-igpu": "nvcr.io/nvidia/tritonserver:24.12-py3-igpu",
    "tensorrt-llm": "nvcr.io/nvidia/tritonserver:24.12-trtllm-python-py3",
    "aws-cli": "public.ecr.aws/aws-cli/aws-cli:2.22.35",
    "envoy": "envoyproxy/envoy:v1.32.3",
}
SERVE_PORT = 8000
GRPC_PORT = 8001
METRICS_PORT = 8002
#: UID/GID of the model-server pods: above 10000, so it matches no user of the node (checkov CKV_K8S_40, "run as
#: a high UID to avoid host conflict"). vLLM, Triton and Envoy run as any UID with HOME=/tmp.
RUN_AS_USER = 10001
#: The rayproject images' own "ray" user (uid 1000, HOME /home/ray, which Ray writes to): the training RayJob
#: runs as it, like the RayService pods (serving.kuberay.RAY_UID).
RAY_IMAGE_UID = 1000
GIB = 2**30

#: The HPA metric per runtime: the per-pod "requests in flight" gauge each server exports, which a Prometheus
#: adapter must expose through the custom metrics API (vLLM: ``vllm:num_requests_running``; Triton:
#: ``nv_inference_pending_request_count``). Sources: vLLM and Triton metrics docs.
HPA_METRIC = {"vllm": "vllm_num_requests_running", "triton": "nv_inference_pending_request_count",
              "tensorrt-llm": "nv_inference_pending_request_count"}


@dataclass(frozen=True)
class Context:
    """What the manifests need beyond the plan: where the model lives and who may call the service."""

    model_uri: str | None = None  # s3://bucket/prefix (cloud bucket) or the plan's artifact
    service_account_role_arn: str | None = None  # IRSA role for pods that read the model bucket
    cloud_endpoint: str | None = None  # hybrid: the cloud side's private endpoint (host:port)


# --------------------------------------------------------------------------------------------- helpers


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


def weights_bytes(plan: Plan, part: Part) -> int:
    """Weight bytes of the model in the part's dtype, as the planner counted them (``Part.weights_bytes``)."""
    return part.weights_bytes


def pod_resources(plan: Plan, part: Part) -> Obj:
    """Requests = limits (Guaranteed QoS) sized from the plan.

    Host memory: the pod stages its share of the weights through host RAM when loading, so it gets that share
    x 1.2 plus 4 GiB for the server (rule of thumb from vLLM/Triton deployment guides); edge devices (unified
    memory) get twice the weights plus 2 GiB. CPU: 2 cores per GPU (tokenisation, scheduling, HTTP), at least 1.
    """
    gpus = gpus_per_pod(part)
    share = weights_bytes(plan, part) / nodes_per_replica(part)
    if part.placement == "edge":  # unified memory on Jetson-class devices: the server plus twice the weights
        mem_gib = math.ceil(share * 2 / GIB) + 2
    elif gpus:
        mem_gib = max(2, math.ceil(share * 1.2 / GIB) + 4)
    else:
        mem_gib = max(1, math.ceil(share * 2 / GIB) + 1)
    cpu = max(1, 2 * gpus) if gpus else 2
    res: Obj = {"cpu": str(cpu), "memory": f"{mem_gib}Gi"}
    if gpus:
        res[_resource(part)] = str(gpus)
    return {"requests": dict(res), "limits": dict(res)}


def _resource(part: Part) -> str:
    """The device-plugin resource of the part's accelerator (only called for parts that request GPUs)."""
    assert part.device.resource is not None
    return part.device.resource


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


def _dtype_args(dtype: str) -> list[str]:
    if dtype == "fp8":
        return ["--quantization", "fp8"]
    if dtype in ("bf16", "fp16"):
        return ["--dtype", {"bf16": "bfloat16", "fp16": "float16"}[dtype]]
    return ["--dtype", "auto"]  # int8 / int4: the checkpoint is pre-quantised (AWQ/GPTQ/SmoothQuant)


def _model_dir(plan: Plan) -> str:
    return f"/models/{plan.model.name}"


def server_container(plan: Plan, info: PartInfo) -> Obj:
    """The model-server container for the part's runtime (vLLM, Triton, TensorRT-LLM on Triton)."""
    part = info.part
    gpus = gpus_per_pod(part)
    runtime = part.runtime
    env: list[Obj] = [{"name": "HOME", "value": "/tmp"}, {"name": "XDG_CACHE_HOME", "value": "/tmp/cache"}]
    if runtime == "vllm":
        args = ["--model", _model_dir(plan), "--served-model-name", plan.model.name, "--host", "0.0.0.0",
                "--port", str(SERVE_PORT), "--tensor-parallel-size", str(part.tensor_parallel),
                "--max-num-seqs", str(plan.serving.max_batch_size), *_dtype_args(part.dtype)]
        if part.pipeline_parallel > 1:
            args += ["--pipeline-parallel-size", str(part.pipeline_parallel)]
        if plan.model.max_context:
            args += ["--max-model-len", str(plan.model.max_context)]
        image, command = IMAGES["vllm"], ["python3", "-m", "vllm.entrypoints.openai.api_server"]
        probe_path = "/health"
        ports = [{"name": "http", "containerPort": SERVE_PORT}]
    elif runtime == "tensorrt-llm":
        image = IMAGES["tensorrt-llm"]
        command = ["python3", "/app/scripts/launch_triton_server.py"]
        args = [f"--world_size={max(1, gpus)}", "--model_repo=/models/triton"]
        probe_path = "/v2/health/ready"
        ports = [{"name": "http", "containerPort": SERVE_PORT}, {"name": "grpc", "containerPort": GRPC_PORT},
                 {"name": "metrics", "containerPort": METRICS_PORT}]
    else:  # triton (and ray plans that fall back to a plain deployment never reach here)
        jetson = part.placement == "edge" and part.accelerator.startswith("jetson")
        image = IMAGES["triton-igpu" if jetson else "triton"]
        command = ["tritonserver"]
        args = ["--model-repository=/models/triton", f"--http-port={SERVE_PORT}", f"--grpc-port={GRPC_PORT}",
                f"--metrics-port={METRICS_PORT}", "--strict-readiness=true", "--exit-on-error=true"]
        probe_path = "/v2/health/ready"
        ports = [{"name": "http", "containerPort": SERVE_PORT}, {"name": "grpc", "containerPort": GRPC_PORT},
                 {"name": "metrics", "containerPort": METRICS_PORT}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "models", "mountPath": "/models", "readOnly": True}]
    if gpus > 1:
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})  # NCCL needs shared memory across TP ranks
    # Large models take minutes to load: a startup probe holds liveness off until the server is up.
    load_s = max(120, int(weights_bytes(plan, part) / nodes_per_replica(part) / (500 * 2**20)))
    http_get = {"path": probe_path, "port": "http"}
    return {
        "name": "server",
        "image": image,
        "imagePullPolicy": pull_policy(part),
        "command": command,
        "args": args,
        "env": env,
        "ports": ports,
        "resources": pod_resources(plan, part),
        "securityContext": container_security(),
        "volumeMounts": mounts,
        "startupProbe": {"httpGet": http_get, "periodSeconds": 10, "failureThreshold": math.ceil(load_s / 10)},
        "readinessProbe": {"httpGet": http_get, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": http_get, "periodSeconds": 15, "failureThreshold": 4},
    }


def fetch_container(plan: Plan, info: PartInfo, ctx: Context) -> Obj | None:
    """Init container that copies the model (weights or Triton repository) from S3 into the ``models`` volume."""
    uri = ctx.model_uri or plan.model.artifact
    if not uri or not uri.startswith("s3://"):
        return None
    dest = "/models/triton" if info.part.runtime in ("triton", "tensorrt-llm") else _model_dir(plan)
    src = f"{uri.rstrip('/')}/triton" if info.part.runtime in ("triton", "tensorrt-llm") else uri
    return {
        "name": "fetch-model",
        "image": IMAGES["aws-cli"],
        "imagePullPolicy": pull_policy(info.part),
        "command": ["aws", "s3", "sync", "--only-show-errors", src, dest],
        "env": [{"name": "HOME", "value": "/tmp"}],
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "models", "mountPath": "/models"}],
    }


def _volumes(plan: Plan, part: Part) -> list[Obj]:
    size_gib = math.ceil(weights_bytes(plan, part) * 1.1 / GIB) + 1
    vols: list[Obj] = [{"name": "tmp", "emptyDir": {"sizeLimit": "8Gi"}},
                       {"name": "models", "emptyDir": {"sizeLimit": f"{size_gib}Gi"}}]
    if gpus_per_pod(part) > 1:
        vols.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}})
    return vols


def _scheduling(info: PartInfo) -> Obj:
    """Node selection: GPU type (cloud / on-prem) or edge-node and device labels (edge fleet)."""
    part = info.part
    out: Obj = {}
    if part.placement == "edge":
        out["nodeSelector"] = {"node-role.kubernetes.io/edge": "true", "mlplan.dev/device": part.instance}
    elif info.target in ("aws-eks", "manifests-only") and part.provider == "aws":
        out["nodeSelector"] = {"node.kubernetes.io/instance-type": part.instance}
    else:
        out["nodeSelector"] = {"mlplan.dev/accelerator": part.accelerator}
    if gpus_per_pod(part):
        out["tolerations"] = [{"key": _resource(part), "operator": "Exists",
                               "effect": "NoSchedule"}]
    return out


def pod_template(plan: Plan, info: PartInfo, ctx: Context) -> Obj:
    fetch = fetch_container(plan, info, ctx)
    spec: Obj = {
        "serviceAccountName": info.app,
        # IRSA credentials come from the projected token the EKS pod-identity webhook injects, not from this
        "automountServiceAccountToken": False,
        "securityContext": pod_security(),
        "containers": [server_container(plan, info)],
        "volumes": _volumes(plan, info.part),
        "terminationGracePeriodSeconds": 60,
        **_scheduling(info),
    }
    if fetch is not None:
        spec["initContainers"] = [fetch]
    if info.part.placement != "edge":
        # spread replicas over nodes so one node failure does not take the service down
        spec["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                              "whenUnsatisfiable": "ScheduleAnyway",
                                              "labelSelector": {"matchLabels": selector(info)}}]
    return {"metadata": {"labels": labels(info)}, "spec": spec}


# ------------------------------------------------------------------------------------------- objects


def namespace(info: PartInfo, strict: bool) -> Obj:
    lab = {"app.kubernetes.io/managed-by": "mlplan", "pod-security.kubernetes.io/enforce": "restricted",
           "pod-security.kubernetes.io/enforce-version": "latest"}
    if strict:
        lab["mlplan.dev/data-class"] = "confidential"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": info.namespace, "labels": lab}}


def service_account(info: PartInfo, ctx: Context) -> Obj:
    md = meta(info.app, info)
    if ctx.service_account_role_arn:
        md["annotations"] = {"eks.amazonaws.com/role-arn": ctx.service_account_role_arn}
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": md, "automountServiceAccountToken": False}


def workload(plan: Plan, info: PartInfo, ctx: Context) -> Obj:
    """A DaemonSet on an edge fleet (one server per device), else a Deployment of ``replicas`` pods."""
    tmpl = pod_template(plan, info, ctx)
    if info.part.placement == "edge":
        return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta(info.app, info),
                "spec": {"selector": {"matchLabels": selector(info)}, "template": tmpl,
                         "updateStrategy": {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": "10%"}}}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(info.app, info),
            "spec": {"replicas": info.part.replicas, "selector": {"matchLabels": selector(info)},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
                     "template": tmpl}}


def service(info: PartInfo, *, internal_lb: bool = False) -> Obj:
    ports = [{"name": "http", "port": SERVE_PORT, "targetPort": "http", "protocol": "TCP"}]
    if info.part.runtime in ("triton", "tensorrt-llm"):
        ports.append({"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"})
    md = meta(info.app, info)
    spec: Obj = {"type": "ClusterIP", "selector": selector(info), "ports": ports}
    if internal_lb:  # hybrid cloud side: reachable from on-prem over the private link only
        md["annotations"] = internal_lb_annotations()
        spec["type"] = "LoadBalancer"
    return {"apiVersion": "v1", "kind": "Service", "metadata": md, "spec": spec}


def hpa(plan: Plan, info: PartInfo) -> Obj | None:
    """Scale on requests in flight per pod (the plan's target), between the plan's replica bounds."""
    s = plan.serving
    lo, hi = max(s.min_replicas, info.part.replicas), max(s.max_replicas, info.part.replicas)
    metric = HPA_METRIC.get(info.part.runtime)
    if metric is None or hi <= lo:
        return None
    target = max(1, math.floor(s.target_ongoing_requests))
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta(info.app, info),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": info.app},
                     "minReplicas": lo, "maxReplicas": hi,
                     "metrics": [{"type": "Pods", "pods": {"metric": {"name": metric},
                                                           "target": {"type": "AverageValue",
                                                                      "averageValue": str(target)}}}],
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}}}


def pdb(info: PartInfo) -> Obj | None:
    if info.part.placement == "edge" or info.part.replicas < 2:
        return None
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(info.app, info),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(info)}}}


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


def pod_sets(plan: Plan, info: PartInfo, objs: list[Obj]) -> list[tuple[Obj, int]]:
    """(pod template, most pods at once) for every workload object, at its scaling ceiling.

    A RayService counts twice: KubeRay's zero-downtime upgrade brings up the new cluster before retiring the old.
    """
    out: list[tuple[Obj, int]] = []
    hpa_max = {o["spec"]["scaleTargetRef"]["name"]: o["spec"]["maxReplicas"]
               for o in objs if o["kind"] == "HorizontalPodAutoscaler"}
    for o in objs:
        kind, spec = o["kind"], o.get("spec", {})
        if kind == "Deployment":
            out.append((spec["template"], max(spec.get("replicas", 1), hpa_max.get(o["metadata"]["name"], 0))))
        elif kind == "DaemonSet":
            out.append((spec["template"], info.part.nodes))
        elif kind in ("RayService", "RayJob"):
            cluster = spec.get("rayClusterConfig") or spec.get("rayClusterSpec") or {}
            factor = 2 if kind == "RayService" else 1
            out.append((cluster["headGroupSpec"]["template"], factor))
            for g in cluster.get("workerGroupSpecs", []):
                n = max(g.get("replicas", 1), g.get("maxReplicas", 1)) * g.get("numOfHosts", 1)
                out.append((g["template"], n * factor))
    return out


def resource_quota(plan: Plan, info: PartInfo, objs: list[Obj]) -> Obj:
    """Caps the namespace at what its workloads need at their scaling ceiling (computed from the objects)."""
    total: dict[str, float] = {}
    pods = 0
    for template, n in pod_sets(plan, info, objs):
        pods += n
        for k, v in pod_limits(template["spec"]).items():
            total[k] = total.get(k, 0.0) + v * n
    cpu = math.ceil(total.get("cpu", 0.0))
    mem = math.ceil(total.get("memory", 0.0) / GIB)
    hard: Obj = {"requests.cpu": str(cpu), "limits.cpu": str(cpu), "requests.memory": f"{mem}Gi",
                 "limits.memory": f"{mem}Gi", "pods": str(pods + 2)}
    for resource in sorted(k for k in total if "/" in k):  # nvidia.com/gpu, amd.com/gpu, ...
        hard[f"requests.{resource}"] = str(int(total[resource]))
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta("mlplan-quota", info),
            "spec": {"hard": hard}}


def worker_pdb(info: PartInfo, rayservice: Obj) -> Obj | None:
    """Voluntary disruptions (node drains) take at most one Ray worker pod at a time."""
    groups = rayservice["spec"]["rayClusterConfig"].get("workerGroupSpecs", [])
    if not groups or sum(g.get("replicas", 1) for g in groups) < 2:
        return None
    lab = groups[0]["template"]["metadata"]["labels"]
    sel = {k: lab[k] for k in ("app.kubernetes.io/name", "ray.io/node-type") if k in lab}
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": meta(f"{rayservice['metadata']['name']}-workers", info),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": sel}}}


def serving_service_name(objs: list[Obj], info: PartInfo) -> str:
    """The in-cluster Service that fronts the model: KubeRay's ``<name>-serve-svc`` or ours."""
    for o in objs:
        if o["kind"] == "RayService":
            custom = o["spec"].get("serveService", {}).get("metadata", {}).get("name")
            return str(custom or f"{o['metadata']['name']}-serve-svc")
    return info.app


def network_policies(info: PartInfo, *, gateway_namespaces: bool = True) -> list[Obj]:
    """Deny all ingress and egress by default, then allow only what serving needs.

    Allowed: traffic inside the namespace (TP/PP ranks, router), DNS, HTTPS egress except the instance metadata
    endpoint (model download from S3, STS for IRSA), and ingress on the serving ports from namespaces labelled
    ``mlplan.dev/gateway: "true"`` (your ingress controller / API gateway).
    """
    def np(name: str, spec: Obj) -> Obj:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(name, info),
                "spec": spec}

    out = [
        np("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        np("allow-same-namespace", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                                    "ingress": [{"from": [{"podSelector": {}}]}],
                                    "egress": [{"to": [{"podSelector": {}}]}]}),
        np("allow-dns", {"podSelector": {}, "policyTypes": ["Egress"],
                         "egress": [{"to": [{"namespaceSelector": {
                             "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                             "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}),
        np("allow-https-egress", {"podSelector": {}, "policyTypes": ["Egress"],
                                  "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0",
                                                                  "except": ["169.254.169.254/32"]}}],
                                              "ports": [{"protocol": "TCP", "port": 443}]}]}),
    ]
    if gateway_namespaces:
        ports = [{"protocol": "TCP", "port": SERVE_PORT}]
        if info.part.runtime in ("triton", "tensorrt-llm"):
            ports.append({"protocol": "TCP", "port": GRPC_PORT})
        out.append(np("allow-gateway-ingress", {
            "podSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "mlplan",
                                            "mlplan.dev/role": info.part.role}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"mlplan.dev/gateway": "true"}}}],
                         "ports": ports}]}))
    return out


# ------------------------------------------------------------------------------------------- routing


#: The header a client sets to mark a request public; the router's only rule that leaves the private side.
PUBLIC_HEADER = "x-mlplan-data-class"
PUBLIC_VALUE = "public"


def router(plan: Plan, local: PartInfo, remote: PartInfo, ctx: Context, local_service: str) -> list[Obj]:
    """Hybrid routing: an Envoy front door next to the privacy-safe (on-prem / edge) side, as an allow-list.

    Only a request positively marked ``x-mlplan-data-class: public`` goes to the cloud side's private endpoint;
    every other request, an untagged one included, stays on the safe side (Envoy routes are matched in order:
    the header match first, then a catch-all to the local cluster). The safe side is sized for the share of
    requests not marked public. Envoy route matching:
    https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/route/v3/route_components.proto
    """
    endpoint = ctx.cloud_endpoint or f"{remote.app}.{remote.key}.mlplan.internal:{SERVE_PORT}"
    host, _, port = endpoint.rpartition(":")
    local_host = f"{local_service}.{local.namespace}.svc.cluster.local"

    def cluster(name: str, address: str, p: int) -> Obj:
        return {"name": name, "type": "STRICT_DNS", "connect_timeout": "5s",
                "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": address, "port_value": p}}}}]}]}}

    route_cfg = {"name": "mlplan", "virtual_hosts": [{"name": "model", "domains": ["*"], "routes": [
        {"match": {"prefix": "/", "headers": [{"name": PUBLIC_HEADER, "string_match": {"exact": PUBLIC_VALUE}}]},
         "route": {"cluster": "cloud", "timeout": "300s"}},
        {"match": {"prefix": "/"}, "route": {"cluster": "local", "timeout": "300s"}},
    ]}]}
    envoy = {
        "static_resources": {
            "listeners": [{"name": "http", "address": {"socket_address": {"address": "0.0.0.0",
                                                                          "port_value": SERVE_PORT}},
                           "filter_chains": [{"filters": [{
                               "name": "envoy.filters.network.http_connection_manager",
                               "typed_config": {
                                   "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                            "http_connection_manager.v3.HttpConnectionManager",
                                   "stat_prefix": "mlplan", "route_config": route_cfg,
                                   "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                                       "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3"
                                                ".Router"}}]}}]}]}],
            "clusters": [cluster("local", local_host, SERVE_PORT), cluster("cloud", host, int(port))],
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}},
    }
    import yaml  # local: only the router needs it

    name = f"{local.app}-router"
    rl = {**labels(local), "app.kubernetes.io/component": "router"}
    sel = {"app.kubernetes.io/name": name}
    md = {"name": name, "namespace": local.namespace, "labels": {**rl, **sel}}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md,
          "data": {"envoy.yaml": yaml.safe_dump(envoy, sort_keys=True)}}
    probe = {"tcpSocket": {"port": "http"}, "periodSeconds": 10}
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": md, "spec": {
        "replicas": 2, "selector": {"matchLabels": sel},
        "template": {"metadata": {"labels": {**rl, **sel}}, "spec": {
            "automountServiceAccountToken": False, "securityContext": pod_security(),
            "containers": [{"name": "envoy", "image": IMAGES["envoy"],
                            "imagePullPolicy": pull_policy(local.part),
                            "args": ["-c", "/etc/envoy/envoy.yaml"],
                            "ports": [{"name": "http", "containerPort": SERVE_PORT}],
                            "resources": {"requests": {"cpu": "500m", "memory": "256Mi"},
                                          "limits": {"cpu": "500m", "memory": "256Mi"}},
                            "securityContext": container_security(),
                            "readinessProbe": probe, "livenessProbe": probe,
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/envoy", "readOnly": True},
                                             {"name": "tmp", "mountPath": "/tmp"}]}],
            "volumes": [{"name": "config", "configMap": {"name": name}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": md, "spec": {
        "type": "ClusterIP", "selector": sel,
        "ports": [{"name": "http", "port": SERVE_PORT, "targetPort": "http", "protocol": "TCP"}]}}
    return [cm, dep, svc]


# ----------------------------------------------------------------------------------------------- entry


def with_service_account(obj: Obj, service_account: str) -> Obj:
    """Run the RayService's pods under the part's service account (IRSA: read the model bucket)."""
    cluster = obj.get("spec", {}).get("rayClusterConfig", {})
    groups = [cluster.get("headGroupSpec", {}), *cluster.get("workerGroupSpecs", [])]
    for g in groups:
        spec = g.get("template", {}).get("spec")
        if isinstance(spec, dict):
            spec["serviceAccountName"] = service_account
    return obj


TRAINING_IMAGE = "rayproject/ray:2.60.0-py311-gpu"
TRAINING_ENTRYPOINT = "python train.py --deepspeed_config /etc/mlplan/ds_config.json"


def deepspeed_config(plan: Plan) -> Obj:
    """DeepSpeed config from the plan's training decision (ZeRO stage, precision, activation checkpointing).

    Keys per the DeepSpeed configuration JSON docs (https://www.deepspeed.ai/docs/config-json/). Micro batch 1 is
    the spec default; the global batch follows from data parallelism.
    """
    t = plan.training
    assert t is not None
    return {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "bf16": {"enabled": plan.dtype == "bf16"},
        "fp16": {"enabled": plan.dtype == "fp16"},
        "zero_optimization": {"stage": t.zero_stage, "overlap_comm": True, "contiguous_gradients": True},
        "activation_checkpointing": {"partition_activations": t.activation_checkpointing,
                                     "contiguous_memory_optimization": t.activation_checkpointing},
        "gradient_clipping": 1.0,
    }


def training_job(plan: Plan, info: PartInfo, ctx: Context) -> list[Obj]:
    """A KubeRay RayJob that brings up ``nodes`` GPU workers, runs the training entrypoint, then tears down.

    The entrypoint (``train.py``) is the user's code, built into the training image; mlplan provides the
    cluster shape and the DeepSpeed/ZeRO config (a ConfigMap mounted at ``/etc/mlplan``).
    """
    import json

    part = info.part
    gpn = gpus_per_pod(part) and part.gpus_per_node
    name = f"{info.app}-train"
    lab = {**labels(info), "app.kubernetes.io/component": "training"}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(f"{name}-deepspeed", info, labels=lab),
          "data": {"ds_config.json": json.dumps(deepspeed_config(plan), indent=2, sort_keys=True)}}
    mounts = [{"name": "config", "mountPath": "/etc/mlplan", "readOnly": True},
              {"name": "dshm", "mountPath": "/dev/shm"}, {"name": "ray-tmp", "mountPath": "/tmp/ray"}]
    vols = [{"name": "config", "configMap": {"name": f"{name}-deepspeed"}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}}, {"name": "ray-tmp", "emptyDir": {}}]
    sec = {k: v for k, v in container_security(RAY_IMAGE_UID).items()
           if k != "readOnlyRootFilesystem"}  # ray writes ~/

    def pod(container: Obj, gpu: bool) -> Obj:
        spec: Obj = {"serviceAccountName": info.app, "automountServiceAccountToken": False,
                     "securityContext": pod_security(RAY_IMAGE_UID), "containers": [container], "volumes": vols}
        if gpu:
            spec.update(_scheduling(info))
        return {"metadata": {"labels": lab}, "spec": spec}

    env = [{"name": "MODEL_URI", "value": ctx.model_uri or plan.model.artifact or plan.model.name}]
    # the same health checks KubeRay injects by default (raylet on every pod, GCS on the head)
    raylet = "wget -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success"
    gcs = "wget -T 2 -q -O- http://localhost:8265/api/gcs_healthz | grep success"

    def probe(cmd: str, failures: int) -> Obj:
        return {"exec": {"command": ["bash", "-c", cmd]}, "initialDelaySeconds": 10, "periodSeconds": 5,
                "timeoutSeconds": 2, "failureThreshold": failures}

    head_res = {"cpu": "4", "memory": "16Gi"}
    head = {"name": "ray-head", "image": TRAINING_IMAGE, "imagePullPolicy": "IfNotPresent", "env": env,
            "ports": [{"containerPort": 6379, "name": "gcs-server"}, {"containerPort": 8265, "name": "dashboard"}],
            "resources": {"requests": head_res, "limits": head_res}, "securityContext": sec,
            "volumeMounts": mounts, "readinessProbe": probe(f"{raylet} && {gcs}", 10),
            "livenessProbe": probe(f"{raylet} && {gcs}", 120)}
    res = pod_resources(plan, part)
    if gpn:
        dev = _resource(part)
        res["requests"][dev] = res["limits"][dev] = str(gpn)
    worker = {"name": "ray-worker", "image": TRAINING_IMAGE, "imagePullPolicy": "IfNotPresent", "env": env,
              "resources": res, "securityContext": sec, "volumeMounts": mounts,
              "readinessProbe": probe(raylet, 10), "livenessProbe": probe(raylet, 120)}
    job = {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": meta(name, info, labels=lab), "spec": {
        "entrypoint": TRAINING_ENTRYPOINT,
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": 3600,
        "rayClusterSpec": {
            "rayVersion": "2.60.0",
            "headGroupSpec": {"rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
                              "template": pod(head, gpu=False)},
            "workerGroupSpecs": [{"groupName": "gpu-workers", "replicas": part.nodes, "minReplicas": part.nodes,
                                  "maxReplicas": part.nodes, "numOfHosts": 1,
                                  "rayStartParams": {"num-gpus": str(gpn)},
                                  "template": pod(worker, gpu=True)}],
        },
    }}
    return [cm, job]


def needs_kuberay(plan: Plan, info: PartInfo) -> bool:
    return plan.workload == "training" or uses_rayservice(plan, info)


def uses_rayservice(plan: Plan, info: PartInfo) -> bool:
    """Served by Ray on Kubernetes (a KubeRay RayService): the serving package decides (Ray and vLLM runtimes;
    vLLM runs as Ray Serve LLM), so the RayService and the rest of the manifests agree."""
    from serving.kuberay import uses_kubernetes

    return plan.workload == "inference" and uses_kubernetes(plan, info.part)


def internal_lb_annotations() -> dict[str, str]:
    return {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
            "service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}


def part_manifests(plan: Plan, info: PartInfo, ctx: Context | None = None, *, internal_lb: bool = False,
                   route_to: PartInfo | None = None) -> list[Obj]:
    """Every Kubernetes object of one part, in apply order (``route_to``: hybrid, add the router to that part)."""
    ctx = ctx or Context()
    strict = plan.security.deny_by_default_network
    work: list[Obj] = []
    if plan.workload == "training":
        work += training_job(plan, info, ctx)
    elif uses_rayservice(plan, info):
        from serving.kuberay import build_rayservice  # the serving package owns the RayService shape

        rs = with_service_account(build_rayservice(plan, info.namespace, info.part), info.app)
        if internal_lb:  # hybrid cloud side: the serve service becomes an internal NLB for the on-prem router
            rs["spec"]["serveService"] = {
                "metadata": {"name": f"{rs['metadata']['name']}-serve-lb", "annotations": internal_lb_annotations()},
                "spec": {"type": "LoadBalancer",
                         "ports": [{"name": "serve", "port": SERVE_PORT, "targetPort": SERVE_PORT}]}}
        work.append(rs)
        work += [o for o in (worker_pdb(info, rs),) if o is not None]
    else:
        work.append(workload(plan, info, ctx))
        work.append(service(info, internal_lb=internal_lb))
        work += [o for o in (hpa(plan, info), pdb(info)) if o is not None]
    if route_to is not None:
        work += router(plan, info, route_to, ctx, serving_service_name(work, info))
        if strict:
            work.append(_router_policy(info))
    objs: list[Obj] = [namespace(info, strict), service_account(info, ctx), resource_quota(plan, info, work)]
    if strict:
        objs += network_policies(info)
    return objs + work


def hybrid_local_remote(infos: list[PartInfo]) -> tuple[PartInfo, PartInfo] | None:
    """The (privacy-safe, marked-public) pair of a hybrid plan that needs the allow-list router, else None.
    (An edge fleet with a cloud fallback needs none: each site's clients call their own devices.)"""
    local = next((i for i in infos if i.part.routing == "not-marked-public" and i.uses_k8s), None)
    remote = next((i for i in infos if i.part.routing == "marked-public"), None)
    if local is None or remote is None:
        return None
    return local, remote


def render(plan: Plan, contexts: dict[str, Context] | None = None) -> dict[str, list[Obj]]:
    """All manifests of the plan, keyed by part key (the file ``k8s/<key>.yaml``). The caller has checked the
    plan against its spec (:func:`planner.guard.check_plan`: the writer before it writes, the folder loader
    before anything is built from a folder)."""
    contexts = contexts or {}
    infos = parts(plan)
    pair = hybrid_local_remote(infos) if plan.placement == "hybrid" else None
    out: dict[str, list[Obj]] = {}
    for info in infos:
        if not info.uses_k8s:
            continue
        ctx = contexts.get(info.key, Context())
        internal_lb = pair is not None and info is pair[1]
        route_to = pair[1] if pair is not None and info is pair[0] else None
        out[info.key] = part_manifests(plan, info, ctx, internal_lb=internal_lb, route_to=route_to)
    return out


def _router_policy(info: PartInfo) -> Obj:
    """Let the router reach the cloud side's private endpoint on the serving port."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": meta("allow-router-to-cloud", info),
            "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": f"{info.app}-router"}},
                     "policyTypes": ["Egress"],
                     "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
                                 "ports": [{"protocol": "TCP", "port": SERVE_PORT}]}]}}


def default_contexts(plan: Plan) -> dict[str, Context]:
    """Contexts the writer uses for ``k8s/*.yaml``: the deterministic bucket URI on AWS, the artifact elsewhere."""
    out: dict[str, Context] = {}
    for info in parts(plan):
        p = info.part
        if info.target == "aws-eks" and p.names.bucket and p.names.role:
            # the stack applies the same objects with the real role ARN; the account id is only known there
            out[info.key] = Context(model_uri=f"s3://{p.names.bucket}/{plan.model.name}",
                                    service_account_role_arn=f"arn:aws:iam::ACCOUNT_ID:role/{p.names.role}")
        else:
            out[info.key] = Context(model_uri=plan.model.artifact)
    return out
