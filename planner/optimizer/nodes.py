"""A node as the Kubernetes scheduler sees it: capacity from the catalog, allocatable after the kubelet's reserves.

Pods are sized against ``allocatable`` (what the kubelet leaves for pods), never against the instance's nominal
vCPU and memory: a 4-vCPU node cannot run a pod that asks for 4 CPUs. Each provider reserves differently:

- **EKS** (Amazon Linux 2023 / nodeadm, as the EKS AMI has done since its bootstrap.sh): kube-reserved memory
  = 255 MiB + 11 MiB x max pods; kube-reserved CPU = 6% of the first core + 1% of the second + 0.5% of the next
  two + 0.25% of every core above four; eviction threshold ``memory.available`` 100 MiB. Source:
  https://github.com/awslabs/amazon-eks-ami (templates/al2023 nodeadm kubelet config; al2 bootstrap.sh
  ``get_cpu_millicores_to_reserve`` / ``get_memory_mebibytes_to_reserve``).
- **GKE**: memory 25% of the first 4 GiB, 20% of the next 4, 10% of the next 8, 6% of the next 112, 2% above
  128 GiB (255 MiB below 1 GiB); CPU as EKS; eviction 100 MiB. Source:
  https://cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes#memory_and_cpu_reservations
- **AKS** (Kubernetes 1.29+): memory 20 MiB x max pods + 50 MiB; CPU by core count (1: 60m, 2: 100m, 4: 140m,
  8: 180m, 16: 260m, 32: 420m, 64: 740m); eviction 100 MiB. Source:
  https://learn.microsoft.com/azure/aks/node-resource-reservations
- **on-prem and edge clusters** (kubeadm, k3s): no reserves are configured by default, but the node still runs
  its OS, container runtime and kubelet; mlplan assumes the EKS rule there, and says so on the plan.
"""

from __future__ import annotations

import math

from planner.plan import NodeShape, SystemPool

MAX_PODS = 110
"""The kubelet's default ``maxPods`` (https://kubernetes.io/docs/reference/config-api/kubelet-config.v1beta1/);
EKS caps it per instance by ENIs, up to 110 for most sizes without prefix delegation."""
EVICTION_MIB = 100
AKS_CPU_RESERVE_M = ((1, 60), (2, 100), (4, 140), (8, 180), (16, 260), (32, 420), (64, 740))

UNSPECIFIED_VCPU_PER_ACCELERATOR = 16
UNSPECIFIED_MEMORY_GIB_PER_ACCELERATOR = 128
"""An on-prem or edge row without ``vcpu`` / ``ram_gib``: assume 16 vCPU and 128 GiB per accelerator, below
what GPU servers ship with (NVIDIA DGX H100: 224 threads and 2 TiB for 8 GPUs, i.e. 28 / 256 per GPU), so pods
sized against it fit the real server. The node shape names the assumption."""


def _cpu_reserve_tiered(cores: int) -> float:
    """Millicores: 6% of core 1, 1% of core 2, 0.5% of cores 3-4, 0.25% above (EKS and GKE)."""
    m = 0.0
    for i in range(cores):
        m += 60.0 if i == 0 else 10.0 if i == 1 else 5.0 if i < 4 else 2.5
    return m


def _gke_memory_reserve_mib(memory_mib: int) -> float:
    gib = memory_mib / 1024.0
    if gib < 1:
        return 255.0
    tiers = ((4.0, 0.25), (4.0, 0.20), (8.0, 0.10), (112.0, 0.06), (math.inf, 0.02))
    left, reserved = gib, 0.0
    for size, frac in tiers:
        take = min(left, size)
        reserved += take * frac
        left -= take
        if left <= 0:
            break
    return reserved * 1024.0


def _aks_cpu_reserve(cores: int) -> float:
    m = AKS_CPU_RESERVE_M[0][1]
    for n, reserve in AKS_CPU_RESERVE_M:
        if cores >= n:
            m = reserve
    return float(m)


def reserves(provider: str, vcpu: int, memory_mib: int, max_pods: int = MAX_PODS) -> tuple[float, float, str]:
    """(reserved millicores, reserved MiB incl. eviction threshold, rule name) for a node of ``provider``."""
    if provider == "gcp":
        return _cpu_reserve_tiered(vcpu), _gke_memory_reserve_mib(memory_mib) + EVICTION_MIB, "gke"
    if provider == "azure":
        return _aks_cpu_reserve(vcpu), 20.0 * max_pods + 50.0 + EVICTION_MIB, "aks"
    rule = "eks" if provider == "aws" else "eks-rule-assumed"
    return _cpu_reserve_tiered(vcpu), 255.0 + 11.0 * max_pods + EVICTION_MIB, rule


def node_shape(provider: str, vcpu: int | None, memory_gib: float | None, accelerators: int) -> NodeShape:
    """Capacity and allocatable of one node. ``vcpu`` / ``memory_gib`` None: the per-accelerator assumption."""
    assumed = vcpu is None or memory_gib is None
    v = vcpu if vcpu is not None else UNSPECIFIED_VCPU_PER_ACCELERATOR * max(1, accelerators)
    mem = memory_gib if memory_gib is not None else UNSPECIFIED_MEMORY_GIB_PER_ACCELERATOR * max(1, accelerators)
    memory_mib = int(mem * 1024)
    cpu_res, mem_res, rule = reserves(provider, v, memory_mib)
    note = rule + ("; capacity assumed: 16 vCPU and 128 GiB per accelerator (set vcpu/ram_gib on the catalog row)"
                   if assumed else "")
    return NodeShape(
        vcpu=v, memory_mib=memory_mib, accelerators=accelerators,
        allocatable_cpu_millicores=max(1, int(v * 1000 - math.ceil(cpu_res))),
        allocatable_memory_mib=max(1, int(memory_mib - math.ceil(mem_res))),
        max_pods=MAX_PODS, reserves=note,
    )


GIB = 2**30
MODEL_VOLUME_FACTOR = 1.1
"""A model volume holds the weights with 10% to spare (tokenizer, configs, a partial download), plus 1 GiB."""
IMAGE_DISK_GIB = 100
"""Root-volume room for the container images of a GPU node (vLLM / Triton images are 10-20 GB compressed, and the
kubelet garbage-collects images only above 85% disk use: https://kubernetes.io/docs/concepts/architecture/garbage-collection/)."""
MAX_DISK_GIB = 16_000
"""gp3 / pd-balanced / Premium SSD limit of one volume."""

SYSTEM_POOLS: dict[str, SystemPool] = {
    "aws-eks": SystemPool(machine="m7i.xlarge", nodes=2, disk_gib=50, source=(
        "2 x m7i.xlarge (4 vCPU, 16 GiB: the Ray head's 2 CPUs and the operators fit after the kubelet's reserves), "
        "in two zones; 50 GiB root volumes (the Ray head image alone is several GB; EKS's 20 GiB default is tight)")),
    "gcp-gke": SystemPool(machine="e2-standard-4", nodes=3, disk_gib=100, source=(
        "e2-standard-4 (4 vCPU, 16 GB), one node in each of 3 of the region's zones, 100 GB boot disk (GKE default)")),
    "azure-aks": SystemPool(machine="Standard_D4s_v5", nodes=2, disk_gib=128, source=(
        "2 x Standard_D4s_v5 (4 vCPU, 16 GiB), AKS system pool minimum of 2 for availability, 128 GiB OS disk "
        "(AKS default)")),
}
"""The system pool each managed-cluster target creates next to the accelerator pool. The stacks create exactly
this (from ``Part.system_pool``) and the bill prices it (the catalog's ``system_node`` row per provider)."""


def model_volume_gib(weights_bytes: float) -> int:
    """The volume a serving pod fetches the model into: 1.1 x the weight bytes, in whole GiB, plus 1 GiB."""
    return math.ceil(weights_bytes * MODEL_VOLUME_FACTOR / GIB) + 1


def node_disk_gib(weights_bytes: float, *, gpus_per_replica: int, gpus_per_node: int, has_device: bool) -> int:
    """Root volume of an accelerator node: the images, plus for each serving pod on the node its model volume and
    the page cache's copy while loading (twice the volume), capped at one volume's limit."""
    nodes_per_replica = max(1, math.ceil(max(1, gpus_per_replica) / max(1, gpus_per_node)))
    gpus_per_pod = max(1, gpus_per_replica) // nodes_per_replica if has_device else 0
    pods_per_node = max(1, gpus_per_node // max(1, gpus_per_pod))
    return int(min(MAX_DISK_GIB, IMAGE_DISK_GIB + 2 * model_volume_gib(weights_bytes) * pods_per_node))
