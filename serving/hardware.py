"""Where a part's pods run and how large they may be, read from the plan: the one place the RayService builder
(:mod:`serving.kuberay`) and the Kubernetes manifests (:mod:`stacks.manifests`) take node selectors, tolerations
and pod sizes from, so the two always agree with the node groups the stacks create.

Accelerator facts come from ``Part.device`` (decided by the planner from the catalog row); node capacity from
``Part.node`` (the catalog's vCPU and memory less the kubelet's reserves, :mod:`planner.optimizer.nodes`).

Cluster shape (created by the AWS/GCP/Azure stacks; on an on-prem cluster, the operator's to label):

- a **system** pool, untainted, labelled ``mlplan.dev/pool: system``: CoreDNS, the operators, the Ray head,
  the TLS front door and the hybrid router;
- an **accelerator** pool, labelled ``mlplan.dev/pool: accelerators`` and ``mlplan.dev/accelerator: <id>``,
  tainted ``<device-plugin resource>:NoSchedule`` on GPU nodes: only pods that request the accelerator
  tolerate the taint.

Label names: NVIDIA GPU Feature Discovery (``nvidia.com/gpu.product``, https://github.com/NVIDIA/gpu-feature-
discovery); the kubelet's well-known ``node.kubernetes.io/instance-type`` (https://kubernetes.io/docs/reference/
labels-annotations-taints/#nodekubernetesioinstance-type).

Pure and import-cheap.
"""

from __future__ import annotations

from planner.plan import Part, Plan

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
ACCELERATOR_LABEL = "mlplan.dev/accelerator"  # on every accelerator node the stacks create; on-prem: yours to set
POOL_LABEL = "mlplan.dev/pool"
SYSTEM_POOL = "system"
ACCELERATOR_POOL = "accelerators"
EDGE_ROLE_LABEL = "node-role.kubernetes.io/edge"
EDGE_DEVICE_LABEL = "mlplan.dev/device"
CLOUD_CLUSTER_TARGETS = ("aws-eks", "gcp-gke", "azure-aks")

#: What the DaemonSets of a node ask for, kept free of the serving pods' budget: kube-proxy (100m), the CNI
#: (aws-node 25m / GKE netd and Dataplane V2 / AKS cilium and azure-cns, 100-200m), the device plugin, log and
#: metrics agents (GKE fluentbit + gke-metrics-agent about 150m / 250 MiB). Sources: the EKS, GKE and AKS add-on
#: manifests' resource requests; 500m and 1 GiB cover each of them with room to spare.
DAEMONSET_CPU_M = 500
DAEMONSET_MEMORY_MIB = 1024


def _part(p: Part | Plan) -> Part:
    return p.parts[0] if isinstance(p, Plan) else p


def device_resource(part: Part | Plan) -> str:
    """The pod resource that schedules the part's accelerator (only for parts that use one)."""
    resource = _part(part).device.resource
    if resource is None:
        raise ValueError(f"accelerator {_part(part).accelerator} has no device-plugin resource")
    return resource


def uses_gpu(part: Part | Plan) -> bool:
    """The part runs on accelerators with a device-plugin resource and at least one per node."""
    p = _part(part)
    return p.device.resource is not None and p.gpus_per_node > 0


def node_selector(part: Part) -> dict[str, str]:
    """The labels a pod of ``part`` selects its node by (the accelerator pool of the part's cluster).

    Cloud clusters the stacks create: the pool and instance-type labels every node of that pool carries.
    On-prem: GPU Feature Discovery's product label when the catalog knows it, else ``mlplan.dev/accelerator``
    (which you put on the nodes). Edge fleets: the edge role and the device id."""
    if part.placement == "edge":
        return {EDGE_ROLE_LABEL: "true", EDGE_DEVICE_LABEL: part.instance}
    if part.target in CLOUD_CLUSTER_TARGETS:
        return {POOL_LABEL: ACCELERATOR_POOL, INSTANCE_TYPE_LABEL: part.instance}
    product = part.device.gpu_product if uses_gpu(part) else None
    return {GPU_PRODUCT_LABEL: product} if product else {ACCELERATOR_LABEL: part.accelerator}


def tolerations(part: Part) -> list[dict[str, str]]:
    """The tolerations a pod that requests the part's accelerator needs (the GPU pool's taint); none otherwise."""
    if not uses_gpu(part):
        return []
    return [{"key": device_resource(part), "operator": "Exists", "effect": "NoSchedule"}]


def gpu_taint_key(part: Part) -> str | None:
    """The taint key of the part's accelerator nodes (the device-plugin resource), None on CPU-only parts."""
    return device_resource(part) if uses_gpu(part) else None


def pods_per_node(part: Part, gpus_per_pod: int) -> int:
    """Serving pods that share one node: the node's GPUs over each pod's (one pod per node on CPU parts)."""
    if gpus_per_pod <= 0 or part.gpus_per_node <= 0:
        return 1
    return max(1, part.gpus_per_node // gpus_per_pod)


def pod_budget(part: Part, pods: int = 1) -> tuple[int, int]:
    """(millicores, MiB) one of ``pods`` pods on a node of ``part`` may request: the node's allocatable less the
    DaemonSets' share (:data:`DAEMONSET_CPU_M`, :data:`DAEMONSET_MEMORY_MIB`), split evenly, rounded down to
    whole hundreds of millicores and whole GiB so requests stay readable."""
    n = part.node
    cpu = (n.allocatable_cpu_millicores - DAEMONSET_CPU_M) // max(1, pods)
    mem = (n.allocatable_memory_mib - DAEMONSET_MEMORY_MIB) // max(1, pods)
    cpu = max(100, cpu // 100 * 100)
    mem = max(256, mem // 1024 * 1024 if mem >= 1024 else mem // 256 * 256)
    return cpu, mem


def cpu_quantity(millicores: int) -> str:
    """A Kubernetes CPU quantity: whole cores as ``4``, else millicores as ``3500m``."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def memory_quantity(mib: int) -> str:
    """A Kubernetes memory quantity: whole GiB as ``16Gi``, else ``1536Mi``."""
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"
