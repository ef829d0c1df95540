"""Accelerator facts the serving builders need, read from the plan (``Part.device``, decided by the planner
from the catalog row): the device-plugin resource, the GPU product label, Ray's accelerator type.

Label names: NVIDIA GPU Feature Discovery (``nvidia.com/gpu.product``),
https://github.com/NVIDIA/gpu-feature-discovery ;
cloud nodes carry the well-known ``node.kubernetes.io/instance-type`` (Kubernetes well-known labels).

Pure and import-cheap.
"""

from __future__ import annotations

from planner.plan import Part, Plan

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
ACCELERATOR_LABEL = "mlplan.dev/accelerator"  # the label an operator puts on nodes of GPU types GFD does not name


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
