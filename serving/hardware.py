"""Names the serving layer needs for an accelerator id of the catalog: Ray's accelerator type and node labels.

Sources:
- Ray accelerator types: ``ray.util.accelerators`` constants (Ray 2.60), used as ``accelerator_type`` in
  ``ray_actor_options`` / ``LLMConfig`` and as the ``accelerator_type:<T>`` custom resource Ray nodes advertise.
- Kubernetes GPU product labels: NVIDIA GPU Feature Discovery (``nvidia.com/gpu.product``, the product name
  with spaces replaced by ``-``, as reported by NVML), https://github.com/NVIDIA/gpu-feature-discovery .
- Cloud nodes carry the well-known label ``node.kubernetes.io/instance-type`` (Kubernetes well-known labels).

Pure and import-cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.plan import Part, Plan

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
ACCELERATOR_LABEL = "mlplan.dev/accelerator"  # fallback label an operator puts on nodes of unknown GPU types
GPU_RESOURCE = "nvidia.com/gpu"
# device-plugin resource names of other vendors, by accelerator id prefix
_DEVICE_RESOURCES = (("mi", "amd.com/gpu"), ("inf", "aws.amazon.com/neuron"), ("trn", "aws.amazon.com/neuron"),
                     ("gaudi", "habana.ai/gaudi"))


def device_resource(accelerator: str) -> str:
    """The pod resource name for ``accelerator`` (``nvidia.com/gpu`` unless another vendor's plugin applies)."""
    for prefix, resource in _DEVICE_RESOURCES:
        if accelerator.startswith(prefix):
            return resource
    return GPU_RESOURCE


@dataclass(frozen=True)
class AcceleratorNames:
    ray_type: str | None
    gpu_product: str | None


_NAMES: dict[str, AcceleratorNames] = {
    "t4": AcceleratorNames("T4", "Tesla-T4"),
    "v100": AcceleratorNames("V100", "Tesla-V100-SXM2-16GB"),
    "a10g": AcceleratorNames("A10G", "NVIDIA-A10G"),
    "l4": AcceleratorNames("L4", "NVIDIA-L4"),
    "l40s": AcceleratorNames("L40S", "NVIDIA-L40S"),
    "a100-40gb": AcceleratorNames("A100-40G", "NVIDIA-A100-SXM4-40GB"),
    "a100-80gb": AcceleratorNames("A100-80G", "NVIDIA-A100-SXM4-80GB"),
    "h100-sxm": AcceleratorNames("H100", "NVIDIA-H100-80GB-HBM3"),
    "h100-pcie": AcceleratorNames("H100", "NVIDIA-H100-PCIe"),
    "h200": AcceleratorNames("H200", "NVIDIA-H200"),
    "b200": AcceleratorNames("B200", "NVIDIA-B200"),
    "jetson-orin-nano": AcceleratorNames(None, "Orin"),
    "jetson-orin-nx": AcceleratorNames(None, "Orin"),
    "jetson-agx-orin": AcceleratorNames(None, "Orin"),
}


def names(accelerator: str) -> AcceleratorNames:
    """Ray type and GPU product label of a catalog accelerator id (``None`` where not known)."""
    return _NAMES.get(accelerator, AcceleratorNames(None, None))


def is_cpu(accelerator: str) -> bool:
    """True for CPU-only targets (``cpu-x86``, ``cpu-arm``, ...): serve on KIND_CPU, request no GPUs."""
    return accelerator == "cpu" or accelerator.startswith("cpu-")


def uses_gpu(part: Part | Plan) -> bool:
    """The part runs on GPUs: a non-CPU accelerator and at least one GPU per node."""
    return not is_cpu(part.accelerator) and part.gpus_per_node > 0
