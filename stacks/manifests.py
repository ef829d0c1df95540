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
RUN_AS_USER = 1000
GIB = 2**30

#: Bytes per parameter for each serving dtype (weights only).
DTYPE_BYTES = {"fp32": 4.0, "tf32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}

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
            "app.kubernetes.io/managed-by": "mlplan", "mlplan.dev/role": info.part.role}


def selector(info: PartInfo) -> dict[str, str]:
    return {"app.kubernetes.io/name": info.app, "mlplan.dev/role": info.part.role}


def meta(name: str, info: PartInfo, **extra: Any) -> Obj:
    out: Obj = {"name": name, "namespace": info.namespace, "labels": labels(info)}
    out.update(extra)
    return out


def weights_bytes(plan: Plan, part: Part) -> int:
    """Weight bytes of the model in the part's dtype: params x bytes/param (the standard memory estimate)."""
    return int(plan.model.params * DTYPE_BYTES.get(part.dtype, 2.0))


def pod_resources(plan: Plan, part: Part) -> Obj:
    """Requests = limits (Guaranteed QoS) sized from the plan.

    Host memory: the pod stages its share of the weights through host RAM when loading, so it gets that share
    x 1.2 plus 4 GiB for the server (rule of thumb from vLLM/Triton deployment guides). CPU: 2 cores per GPU
    (tokenisation, scheduling, HTTP), at least 1.
    """
    gpus = gpus_per_pod(part)
    share = weights_bytes(plan, part) / nodes_per_replica(part)
    mem_gib = max(2, math.ceil(share * 1.2 / GIB) + 4) if gpus else max(1, math.ceil(share * 2 / GIB) + 1)
    cpu = max(1, 2 * gpus) if gpus else 2
    res: Obj = {"cpu": str(cpu), "memory": f"{mem_gib}Gi"}
    if gpus:
        res["nvidia.com/gpu"] = str(gpus)
    return {"requests": dict(res), "limits": dict(res)}


def container_security() -> Obj:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def pod_security() -> Obj:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER, "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"}}


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
        "imagePullPolicy": "IfNotPresent",
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
        "imagePullPolicy": "IfNotPresent",
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
        out["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
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
        md["annotations"] = {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
                             "service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
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


def max_pods(plan: Plan, info: PartInfo) -> int:
    part = info.part
    if part.placement == "edge":
        return part.nodes
    return max(part.replicas, plan.serving.max_replicas) * nodes_per_replica(part)


def resource_quota(plan: Plan, info: PartInfo) -> Obj:
    """Caps the namespace at what the plan needs at its replica ceiling (plus one init container's worth)."""
    res = pod_resources(plan, info.part)["limits"]
    n = max_pods(plan, info)
    mem_gib = int(res["memory"].removesuffix("Gi")) * n + 1
    hard: Obj = {"requests.cpu": str(int(res["cpu"]) * n + 1), "limits.cpu": str(int(res["cpu"]) * n + 1),
                 "requests.memory": f"{mem_gib}Gi", "limits.memory": f"{mem_gib}Gi", "pods": str(n + 4)}
    if "nvidia.com/gpu" in res:
        hard["requests.nvidia.com/gpu"] = str(int(res["nvidia.com/gpu"]) * n)
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta("mlplan-quota", info),
            "spec": {"hard": hard}}


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
            "podSelector": {"matchLabels": selector(info)}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"mlplan.dev/gateway": "true"}}}],
                         "ports": ports}]}))
    return out


# ------------------------------------------------------------------------------------------- routing


def router(plan: Plan, local: PartInfo, remote: PartInfo, ctx: Context) -> list[Obj]:
    """Hybrid routing: an Envoy front door next to the local (on-prem) side.

    Requests marked ``x-mlplan-data-class: sensitive`` always stay local; the rest is split by the parts'
    ``traffic_fraction`` (weighted clusters) between the local service and the cloud side's private endpoint.
    Envoy weighted clusters: https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/route/v3/route_components.proto
    """
    endpoint = ctx.cloud_endpoint or f"{remote.app}.{remote.key}.mlplan.internal:{SERVE_PORT}"
    host, _, port = endpoint.rpartition(":")
    w_local = round(local.part.traffic_fraction * 100)
    w_remote = 100 - w_local
    local_host = f"{local.app}.{local.namespace}.svc.cluster.local"

    def cluster(name: str, address: str, p: int) -> Obj:
        return {"name": name, "type": "STRICT_DNS", "connect_timeout": "5s",
                "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": address, "port_value": p}}}}]}]}}

    route_cfg = {"name": "mlplan", "virtual_hosts": [{"name": "model", "domains": ["*"], "routes": [
        {"match": {"prefix": "/", "headers": [{"name": "x-mlplan-data-class",
                                               "string_match": {"exact": "sensitive"}}]},
         "route": {"cluster": "local", "timeout": "300s"}},
        {"match": {"prefix": "/"},
         "route": {"timeout": "300s", "weighted_clusters": {"clusters": [
             {"name": "local", "weight": w_local}, {"name": "cloud", "weight": w_remote}]}}},
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
            "containers": [{"name": "envoy", "image": IMAGES["envoy"], "imagePullPolicy": "IfNotPresent",
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


def uses_rayservice(info: PartInfo) -> bool:
    """Ray runtime, or a replica spanning nodes (multi-node vLLM runs on a Ray cluster)."""
    return info.part.runtime == "ray" or nodes_per_replica(info.part) > 1


def part_manifests(plan: Plan, info: PartInfo, ctx: Context | None = None, *, internal_lb: bool = False) -> list[Obj]:
    """Every Kubernetes object of one part, in apply order."""
    ctx = ctx or Context()
    strict = plan.security.deny_by_default_network
    objs: list[Obj] = [namespace(info, strict), service_account(info, ctx), resource_quota(plan, info)]
    if strict:
        objs += network_policies(info)
    if uses_rayservice(info):
        from serving.kuberay import build_rayservice  # the serving package owns the RayService shape

        objs.append(build_rayservice(plan, info.namespace))
    else:
        objs.append(workload(plan, info, ctx))
        objs.append(service(info, internal_lb=internal_lb))
        objs += [o for o in (hpa(plan, info), pdb(info)) if o is not None]
    return objs


def hybrid_local_remote(infos: list[PartInfo]) -> tuple[PartInfo, PartInfo] | None:
    """The (local, cloud) pair of a hybrid plan where routing is needed, else None."""
    local = next((i for i in infos if i.part.placement in ("on-prem", "edge") and i.uses_k8s), None)
    remote = next((i for i in infos if i.part.placement == "cloud"), None)
    if local is None or remote is None:
        return None
    return local, remote


def render(plan: Plan, contexts: dict[str, Context] | None = None) -> dict[str, list[Obj]]:
    """All manifests of the plan, keyed by part key (the file ``k8s/<key>.yaml``)."""
    contexts = contexts or {}
    infos = parts(plan)
    pair = hybrid_local_remote(infos) if plan.placement == "hybrid" else None
    out: dict[str, list[Obj]] = {}
    for info in infos:
        if not info.uses_k8s:
            continue
        ctx = contexts.get(info.key, Context())
        internal_lb = pair is not None and info is pair[1]
        objs = part_manifests(plan, info, ctx, internal_lb=internal_lb)
        if pair is not None and info is pair[0]:
            objs += router(plan, pair[0], pair[1], ctx)
            if plan.security.deny_by_default_network:
                objs.append(_router_policy(pair[0]))
        out[info.key] = objs
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
    from stacks.layout import irsa_role_name, model_bucket_name

    out: dict[str, Context] = {}
    for info in parts(plan):
        p = info.part
        if info.target == "aws-eks" and p.region:
            bucket = model_bucket_name(plan, p.region)
            # the stack applies the same objects with the real role ARN; the account id is only known there
            role = irsa_role_name(plan, p.region)
            out[info.key] = Context(model_uri=f"s3://{bucket}/{plan.model.name}",
                                    service_account_role_arn=f"arn:aws:iam::ACCOUNT_ID:role/{role}")
        else:
            out[info.key] = Context(model_uri=plan.model.artifact)
    return out
