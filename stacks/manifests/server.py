"""The model server of a part outside KubeRay: its container per runtime (vLLM, TensorRT-LLM, Triton), the pod that
fetches the model and fits the node, and the workload objects (Deployment or edge DaemonSet, Service, HPA, PDB).

Sizing: a GPU pod takes its share of the node (the node's allocatable less the DaemonSets', split over the pods
that share the node, :func:`serving.hardware.pod_budget`): it is the only workload the tainted accelerator pool
runs. A CPU pod asks for what the server needs (its weights twice over plus headroom, 2 cores), capped by that
same share so it always fits the node it selects.
"""

from __future__ import annotations

import math
from typing import Any

from planner.errors import ArtifactError
from planner.plan import Part, Plan
from serving import engine_args, fetch, hardware
from serving.triton import model_name as triton_model_name
from stacks.layout import PartInfo, gpus_per_pod, nodes_per_replica
from stacks.manifests.base import (
    GIB,
    GRPC_PORT,
    IMAGES,
    METRICS_PORT,
    RUN_AS_USER,
    SERVE_PORT,
    Context,
    Obj,
    container_security,
    labels,
    meta,
    pod_security,
    pull_policy,
    selector,
    weights_bytes,
)

#: The HPA metric per runtime: the per-pod "requests in flight" gauge each server exports, which a Prometheus
#: adapter must expose through the custom metrics API (vLLM: ``vllm:num_requests_running``; Triton:
#: ``nv_inference_pending_request_count``; TensorRT-LLM's trtllm-serve exports no such gauge). Sources: vLLM and
#: Triton metrics docs.
HPA_METRIC = {"vllm": "vllm_num_requests_running", "triton": "nv_inference_pending_request_count"}
#: Health endpoints each server answers 200 on once the model is loaded. Sources: vLLM OpenAI server (``GET
#: /health``), trtllm-serve (``GET /health``), Triton (``GET /v2/health/ready``, KServe v2 protocol).
HEALTH_PATH = {"vllm": "/health", "tensorrt-llm": "/health", "triton": "/v2/health/ready"}
TRITON_REPOSITORY = "/models/triton"
TRITON_CONFIG_VOLUME = "model-repository"


def triton_repository_name(info: PartInfo) -> str:
    """The ConfigMap holding the Triton model repository (config.pbtxt, model.py, a bundled model file)."""
    return f"{info.app}-model-repository"


def pod_resources(part: Part) -> Obj:
    """Requests = limits (Guaranteed QoS), within the node's allocatable share (see the module docstring)."""
    gpus = gpus_per_pod(part)
    share = hardware.pods_per_node(part, gpus)
    cpu_m, mem_mib = hardware.pod_budget(part, share)
    if not gpus:
        want_mib = (math.ceil(weights_bytes(part) * 2 / GIB) + (2 if part.placement == "edge" else 1)) * 1024
        cpu_m, mem_mib = min(cpu_m, 2000), min(mem_mib, max(1024, want_mib))
    res: Obj = {"cpu": hardware.cpu_quantity(cpu_m), "memory": hardware.memory_quantity(mem_mib)}
    if gpus:
        res[hardware.device_resource(part)] = str(gpus)
    return {"requests": dict(res), "limits": dict(res)}


def engine_image(part: Part) -> str:
    """The server image of the part's runtime (ROCm build of vLLM on AMD GPUs, the iGPU Triton on Jetsons)."""
    if part.runtime == "vllm":
        return IMAGES["vllm-rocm"] if part.device.vendor == "amd" else IMAGES["vllm"]
    if part.runtime == "tensorrt-llm":
        return IMAGES["tensorrt-llm"]
    jetson = part.placement == "edge" and part.accelerator.startswith("jetson")
    return IMAGES["triton-igpu" if jetson else "triton"]


def model_source(plan: Plan, info: PartInfo, ctx: Context) -> fetch.ModelSource:
    """Where the part's model comes from (the stack's bucket: ``ctx.model_uri`` when the config overrides it)."""
    part = info.part
    bucket = ctx.model_uri or fetch.bucket_uri(plan, part)
    if part.runtime == "triton":
        artifact = plan.model.artifact or ""
        kind = fetch.scheme(artifact)
        path = f"{TRITON_REPOSITORY}/{triton_model_name(plan)}/1"
        if artifact.startswith("builtin://"):
            return fetch.ModelSource("bundled", "", path, 1, "the repository ConfigMap")
        if kind is not None:
            return fetch.ModelSource(kind, artifact, path, fetch.volume_gib(part), f"model.artifact {artifact}")
        if bucket:
            uri = f"{bucket}/{fetch.dir_name(plan)}.onnx"
            return fetch.ModelSource(fetch.scheme(bucket) or "s3", uri, path, fetch.volume_gib(part),
                                     f"the ONNX file, uploaded to {uri} (the stack's model bucket)",
                                     upload=f"the ONNX file of {plan.model.name}")
        return fetch.ModelSource("user", "", path, fetch.volume_gib(part),
                                 f"model.artifact {artifact or '(none)'} is not a URI the cluster can read: set it "
                                 "to an s3://, gs:// or https://<account>.blob.core.windows.net/ URI")
    return fetch.model_source(plan, part, bucket)


def _bundled(plan: Plan) -> bool:
    return (plan.model.artifact or "").startswith("builtin://")


def server_container(plan: Plan, info: PartInfo, source: fetch.ModelSource | None = None) -> Obj:
    """The model-server container for the part's runtime (vLLM, TensorRT-LLM's trtllm-serve, Triton)."""
    part = info.part
    runtime = part.runtime
    path = source.path if source is not None else fetch.model_dir(plan)
    env: list[Obj] = [{"name": "HOME", "value": "/tmp"}, {"name": "XDG_CACHE_HOME", "value": "/tmp/cache"}]
    ports = [{"name": "http", "containerPort": SERVE_PORT}]
    if runtime == "vllm":
        kw = engine_args.engine_kwargs(plan, part, path)
        command = ["vllm", "serve"]
        args = [*engine_args.cli_args(kw), "--host", "0.0.0.0", "--port", str(SERVE_PORT)]
        env += [{"name": "HF_HUB_OFFLINE", "value": "1"}]  # the weights are local: never reach out at start
    elif runtime == "tensorrt-llm":
        e = part.engine
        if e is None:
            raise ArtifactError(f"part {info.key} runs tensorrt-llm without engine settings",
                                fix="re-run mlplan plan with this version of mlplan")
        command = ["trtllm-serve"]
        args = [path, "--host", "0.0.0.0", "--port", str(SERVE_PORT), "--backend", "pytorch",
                "--tp_size", str(part.tensor_parallel), "--pp_size", str(part.pipeline_parallel),
                "--max_batch_size", str(e.max_num_seqs), "--max_num_tokens", str(e.max_num_batched_tokens),
                "--max_seq_len", str(e.max_model_len),
                "--kv_cache_free_gpu_memory_fraction", str(e.gpu_memory_utilization)]
        if part.expert_parallel > 1:
            args += ["--ep_size", str(part.expert_parallel)]
        env += [{"name": "HF_HUB_OFFLINE", "value": "1"}]
    else:
        command = ["tritonserver"]
        args = [f"--model-repository={TRITON_REPOSITORY}", f"--http-port={SERVE_PORT}", f"--grpc-port={GRPC_PORT}",
                f"--metrics-port={METRICS_PORT}", "--strict-readiness=true", "--exit-on-error=true"]
        ports += [{"name": "grpc", "containerPort": GRPC_PORT}, {"name": "metrics", "containerPort": METRICS_PORT}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"},
              {"name": fetch.MODELS_VOLUME, "mountPath": fetch.MODELS_MOUNT, "readOnly": True}]
    if gpus_per_pod(part) > 1:
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})  # NCCL needs shared memory across TP ranks
    # Large models take minutes to load: a startup probe holds liveness off until the server is up.
    load_s = max(120, int(weights_bytes(part) / nodes_per_replica(part) / (500 * 2**20)))
    http_get = {"path": HEALTH_PATH[runtime if runtime in HEALTH_PATH else "triton"], "port": "http"}
    return {
        "name": "server",
        "image": engine_image(part),
        "imagePullPolicy": pull_policy(part),
        "command": command,
        "args": args,
        "env": env,
        "ports": ports,
        "resources": pod_resources(part),
        "securityContext": container_security(),
        "volumeMounts": mounts,
        "startupProbe": {"httpGet": http_get, "periodSeconds": 10, "failureThreshold": math.ceil(load_s / 10)},
        "readinessProbe": {"httpGet": http_get, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": http_get, "periodSeconds": 15, "failureThreshold": 4},
    }


def init_containers(plan: Plan, info: PartInfo, source: fetch.ModelSource) -> list[Obj]:
    """What fills the ``models`` volume before the server starts: Triton's repository files from their ConfigMap,
    then the weights from their source (nothing to fetch for a bundled Triton model)."""
    part = info.part
    out: list[Obj] = []
    fetch_args: dict[str, Any] = {"engine_image": engine_image(part), "pull_policy": pull_policy(part),
                                  "region": part.region, "uid": RUN_AS_USER}
    if part.runtime == "triton":
        name = triton_model_name(plan)
        model_dir = f"{TRITON_REPOSITORY}/{name}"
        script = (f"mkdir -p {model_dir}/1 && cp /repository/config.pbtxt {model_dir}/config.pbtxt && "
                  f"cp /repository/model.py {model_dir}/1/model.py && "
                  f"if [ -f /repository/model.onnx ]; then cp /repository/model.onnx {model_dir}/1/model.onnx; fi")
        out.append({"name": "stage-repository", "image": engine_image(part), "imagePullPolicy": pull_policy(part),
                    "command": ["sh", "-c", script],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                  "limits": {"cpu": "100m", "memory": "128Mi"}},
                    "securityContext": container_security(),
                    "volumeMounts": [{"name": TRITON_CONFIG_VOLUME, "mountPath": "/repository", "readOnly": True},
                                     {"name": fetch.MODELS_VOLUME, "mountPath": fetch.MODELS_MOUNT}]})
        if source.kind == "bundled":
            return out
        out.append(fetch.fetch_container(source, file_name="model.onnx", **fetch_args))
        return out
    out.append(fetch.fetch_container(source, **fetch_args))
    return out


def volumes(plan: Plan, info: PartInfo, source: fetch.ModelSource) -> list[Obj]:
    part = info.part
    vols = fetch.model_volumes(source)
    if part.runtime == "triton":
        vols.append({"name": TRITON_CONFIG_VOLUME, "configMap": {"name": triton_repository_name(info)}})
    if gpus_per_pod(part) > 1:
        # shared memory for NCCL; memory-backed, so it counts against the pod's memory limit: a quarter of it
        mem = pod_resources(part)["limits"]["memory"]
        from stacks.manifests.base import quantity

        size = max(1, min(16, int(quantity(mem) / GIB / 4)))
        vols.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{size}Gi"}})
    return vols


def scheduling(info: PartInfo, ctx: Context) -> Obj:
    """Node selection (the part's accelerator pool) and the tolerations of its taints."""
    part = info.part
    out: Obj = {"nodeSelector": hardware.node_selector(part)}
    tol = hardware.tolerations(part) if gpus_per_pod(part) else []
    tol += [dict(t) for t in ctx.extra_tolerations if dict(t) not in tol]
    if tol:
        out["tolerations"] = tol
    return out


def pod_template(plan: Plan, info: PartInfo, ctx: Context) -> Obj:
    source = model_source(plan, info, ctx)
    spec: Obj = {
        "serviceAccountName": info.app,
        # workload identity comes from the token the cloud's webhook projects (IRSA, AKS) or the GKE metadata
        # server, not from this
        "automountServiceAccountToken": False,
        "securityContext": pod_security(),
        "initContainers": init_containers(plan, info, source),
        "containers": [server_container(plan, info, source)],
        "volumes": volumes(plan, info, source),
        "terminationGracePeriodSeconds": 60,
        **scheduling(info, ctx),
    }
    if info.part.placement != "edge":
        # spread replicas over nodes so one node failure does not take the service down
        spec["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                              "whenUnsatisfiable": "ScheduleAnyway",
                                              "labelSelector": {"matchLabels": selector(info)}}]
    return {"metadata": {"labels": {**labels(info), **ctx.pod_labels}}, "spec": spec}


def triton_repository(plan: Plan, info: PartInfo) -> Obj:
    """The Triton model repository's files as a ConfigMap (config.pbtxt, the python-backend model.py, and the
    ONNX file of a builtin model, small enough for a ConfigMap's 1 MiB)."""
    import base64

    from serving.triton import RUNTIME_MODEL_PY, build_model_config, to_text

    cm: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(triton_repository_name(info), info),
               "data": {"config.pbtxt": to_text(build_model_config(plan)),
                        "model.py": RUNTIME_MODEL_PY.read_text(encoding="utf-8")}}
    if _bundled(plan):
        from serving.model.demo import build_bytes

        cm["binaryData"] = {"model.onnx": base64.b64encode(build_bytes()).decode()}
    return cm


def workload(plan: Plan, info: PartInfo, ctx: Context) -> Obj:
    """A DaemonSet on an edge fleet (one server per device), else a Deployment of ``replicas`` pods."""
    part = info.part
    if part.runtime == "tensorrt-llm" and nodes_per_replica(part) > 1:
        raise ArtifactError(
            f"part {info.key}: a TensorRT-LLM replica spanning {nodes_per_replica(part)} nodes needs an MPI world "
            "across pods, which the stock TensorRT-LLM image cannot form (no SSH daemon, no launcher agent)",
            fix="use runtime vllm (multi-node replicas run on one Ray cluster), or an instance with enough GPUs "
                "per node for one replica")
    tmpl = pod_template(plan, info, ctx)
    if part.placement == "edge":
        return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta(info.app, info),
                "spec": {"selector": {"matchLabels": selector(info)}, "template": tmpl,
                         "updateStrategy": {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": "10%"}}}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(info.app, info),
            "spec": {"replicas": part.replicas, "selector": {"matchLabels": selector(info)},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
                     "template": tmpl}}


def service_ports(part: Part) -> list[Obj]:
    ports = [{"name": "http", "port": SERVE_PORT, "targetPort": "http", "protocol": "TCP"}]
    if part.runtime == "triton":
        ports.append({"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"})
    return ports


def service(info: PartInfo, *, lb_annotations: dict[str, str] | None = None) -> Obj:
    """The serving Service: ClusterIP, or the part's way in (``type: LoadBalancer`` with ``lb_annotations``)."""
    md = meta(info.app, info)
    spec: Obj = {"type": "ClusterIP", "selector": selector(info), "ports": service_ports(info.part)}
    if lb_annotations is not None:
        md["annotations"] = dict(lb_annotations)
        md["labels"]["mlplan.dev/endpoint"] = "true"
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
