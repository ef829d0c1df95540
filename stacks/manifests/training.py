"""A training plan as a KubeRay RayJob: ``nodes`` GPU workers (one pod per node, all its GPUs), the user's
entrypoint, the DeepSpeed config of the plan's ZeRO decision, torn down when the job ends.

- **Image by vendor**: NVIDIA GPUs run Ray's CUDA image (``rayproject/ray:<ver>-py311-gpu``), AMD GPUs AMD's ROCm
  build of Ray (``rocm/ray``, https://rocm.docs.amd.com : "Ray on ROCm"). The head runs the same image (Ray
  versions must match across a cluster) on the system pool, sized like the serving head.
- **Entrypoint**: ``workload.entrypoint`` of the spec (your code, in that image or fetched by the command). Without
  one the RayJob is a template that refuses to start: ``suspend: true`` (KubeRay creates no cluster) and an
  entrypoint that exits with the reason.
- **Per-worker CPU and memory** from the node: the node's allocatable less its DaemonSets
  (:func:`serving.hardware.pod_budget`).
"""

from __future__ import annotations

import json
import shlex

from planner.plan import Plan
from serving import hardware
from serving.kuberay import HEAD_CPU, HEAD_MEMORY
from stacks.layout import PartInfo, gpus_per_pod
from stacks.manifests import access
from stacks.manifests.base import RAY_IMAGE_UID, Context, Obj, container_security, labels, meta, pod_security

#: Ray's CUDA image and AMD's ROCm build of Ray, pinned, with the Ray version each carries (a RayJob's rayVersion
#: must be the image's). Sources: https://hub.docker.com/r/rayproject/ray ; https://hub.docker.com/r/rocm/ray
TRAINING_IMAGES = {"nvidia": ("rayproject/ray:2.60.0-py311-gpu", "2.60.0"),
                   "amd": ("rocm/ray:ray-2.51.1_rocm7.0.0_ubuntu22.04_py3.12_pytorch2.9.0", "2.51.1")}
NO_ENTRYPOINT = ("mlplan: this training job has no entrypoint. Set workload.entrypoint in the spec (the command "
                 "that runs your training code, e.g. python train.py --deepspeed_config /etc/mlplan/ds_config.json) "
                 "and re-run mlplan plan; until then the RayJob stays suspended and starts no cluster")


def training_image(plan: Plan) -> tuple[str, str]:
    """(image, Ray version) for the plan's accelerator vendor."""
    vendor = plan.parts[0].device.vendor
    return TRAINING_IMAGES["amd" if vendor == "amd" else "nvidia"]


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
    """The DeepSpeed ConfigMap and the RayJob."""
    part = info.part
    t = plan.training
    assert t is not None
    gpn = part.gpus_per_node if gpus_per_pod(part) else 0
    name = f"{info.app}-train"
    lab = {**labels(info), "app.kubernetes.io/component": "training"}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(f"{name}-deepspeed", info, labels=lab),
          "data": {"ds_config.json": json.dumps(deepspeed_config(plan), indent=2, sort_keys=True)}}
    mounts = [{"name": "config", "mountPath": "/etc/mlplan", "readOnly": True},
              {"name": "dshm", "mountPath": "/dev/shm"}, {"name": "ray-tmp", "mountPath": "/tmp/ray"}]
    cpu_m, mem_mib = hardware.pod_budget(part, 1)
    shm_gib = max(1, min(64, mem_mib // 1024 // 4))
    vols = [{"name": "config", "configMap": {"name": f"{name}-deepspeed"}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm_gib}Gi"}},
            {"name": "ray-tmp", "emptyDir": {}}]
    sec = {k: v for k, v in container_security(RAY_IMAGE_UID).items()
           if k != "readOnlyRootFilesystem"}  # ray writes ~/
    image, ray_version = training_image(plan)

    def pod(container: Obj, gpu: bool) -> Obj:
        spec: Obj = {"serviceAccountName": info.app, "automountServiceAccountToken": False,
                     "securityContext": pod_security(RAY_IMAGE_UID), "containers": [container], "volumes": vols}
        if gpu:
            spec["nodeSelector"] = hardware.node_selector(part)
            tol = hardware.tolerations(part) + [dict(x) for x in ctx.extra_tolerations]
            if tol:
                spec["tolerations"] = tol
        elif access.system_selector(part):
            spec["nodeSelector"] = access.system_selector(part)
        return {"metadata": {"labels": {**lab, **ctx.pod_labels}}, "spec": spec}

    env = [{"name": "MLPLAN_DEEPSPEED_CONFIG", "value": "/etc/mlplan/ds_config.json"},
           {"name": "MLPLAN_MODEL", "value": plan.model.hf_id or plan.model.artifact or plan.model.name}]
    # the same health checks KubeRay injects by default (raylet on every pod, GCS on the head)
    raylet = "wget -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success"
    gcs = "wget -T 2 -q -O- http://localhost:8265/api/gcs_healthz | grep success"

    def probe(cmd: str, failures: int) -> Obj:
        return {"exec": {"command": ["bash", "-c", cmd]}, "initialDelaySeconds": 10, "periodSeconds": 5,
                "timeoutSeconds": 2, "failureThreshold": failures}

    head_res = {"cpu": HEAD_CPU, "memory": HEAD_MEMORY}
    head = {"name": "ray-head", "image": image, "imagePullPolicy": "IfNotPresent", "env": env,
            "ports": [{"containerPort": 6379, "name": "gcs-server"}, {"containerPort": 8265, "name": "dashboard"}],
            "resources": {"requests": head_res, "limits": head_res}, "securityContext": sec,
            "volumeMounts": mounts, "readinessProbe": probe(f"{raylet} && {gcs}", 10),
            "livenessProbe": probe(f"{raylet} && {gcs}", 120)}
    res: dict[str, str] = {"cpu": hardware.cpu_quantity(cpu_m), "memory": hardware.memory_quantity(mem_mib)}
    if gpn:
        res[hardware.device_resource(part)] = str(gpn)
    worker = {"name": "ray-worker", "image": image, "imagePullPolicy": "IfNotPresent", "env": env,
              "resources": {"requests": dict(res), "limits": dict(res)}, "securityContext": sec,
              "volumeMounts": mounts, "readinessProbe": probe(raylet, 10), "livenessProbe": probe(raylet, 120)}
    entry = t.entrypoint
    metadata = meta(name, info, labels=lab)
    if not entry:
        metadata["annotations"] = {"mlplan.dev/refuses-to-start": NO_ENTRYPOINT}
    spec: Obj = {
        "entrypoint": entry or f"echo {shlex.quote(NO_ENTRYPOINT)} >&2; exit 1",
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": 3600,
        "rayClusterSpec": {
            "rayVersion": ray_version,
            "headGroupSpec": {"rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
                              "template": pod(head, gpu=False)},
            "workerGroupSpecs": [{"groupName": "gpu-workers", "replicas": part.nodes, "minReplicas": part.nodes,
                                  "maxReplicas": part.nodes, "numOfHosts": 1,
                                  "rayStartParams": {"num-gpus": str(gpn)},
                                  "template": pod(worker, gpu=True)}],
        },
    }
    if not entry:
        spec["suspend"] = True  # a template: KubeRay creates no cluster until a real entrypoint replaces this one
    job = {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": metadata, "spec": spec}
    return [cm, job]
