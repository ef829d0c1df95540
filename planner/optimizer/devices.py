"""Accelerator facts the emitters need, resolved once by the planner and carried on each part (``Part.device``).

Sources:
- Kubernetes device-plugin resources: NVIDIA k8s-device-plugin (``nvidia.com/gpu``), ROCm k8s-device-plugin
  (``amd.com/gpu``), AWS Neuron device plugin (``aws.amazon.com/neuron``), Intel Gaudi device plugin
  (``habana.ai/gaudi``), GKE TPUs (``google.com/tpu``).
- GPU product labels: NVIDIA GPU Feature Discovery (``nvidia.com/gpu.product``: the product name NVML reports
  with spaces replaced by ``-``), https://github.com/NVIDIA/gpu-feature-discovery .
- Ray accelerator types: ``ray.util.accelerators`` constants (Ray 2.60).
"""

from __future__ import annotations

from planner.catalog.schema import Accelerator, EdgeDevice
from planner.plan import Device

_RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu", "aws": "aws.amazon.com/neuron",
             "intel": "habana.ai/gaudi", "google": "google.com/tpu"}

# accelerator id -> (GPU Feature Discovery product label, Ray accelerator type)
_NAMES: dict[str, tuple[str | None, str | None]] = {
    "t4": ("Tesla-T4", "T4"),
    "v100": ("Tesla-V100-SXM2-16GB", "V100"),
    "a10g": ("NVIDIA-A10G", "A10G"),
    "l4": ("NVIDIA-L4", "L4"),
    "l40s": ("NVIDIA-L40S", "L40S"),
    "l40": ("NVIDIA-L40", "L40"),
    "a100-40gb": ("NVIDIA-A100-SXM4-40GB", "A100-40G"),
    "a100-80gb": ("NVIDIA-A100-SXM4-80GB", "A100-80G"),
    "a100-80gb-pcie": ("NVIDIA-A100-80GB-PCIe", "A100-80G"),
    "h100-sxm": ("NVIDIA-H100-80GB-HBM3", "H100"),
    "h100-pcie": ("NVIDIA-H100-PCIe", "H100"),
    "h100-nvl": ("NVIDIA-H100-NVL", "H100"),
    "h200": ("NVIDIA-H200", "H200"),
    "b200": ("NVIDIA-B200", "B200"),
    "rtx-6000-ada": ("NVIDIA-RTX-6000-Ada-Generation", None),
    "rtx-4090": ("NVIDIA-GeForce-RTX-4090", None),
    "mi300x": (None, "AMD-Instinct-MI300X-OAM"),
}


def device_of(hw: Accelerator | EdgeDevice) -> Device:
    """The :class:`~planner.plan.Device` of a catalog accelerator or edge device."""
    if isinstance(hw, EdgeDevice):
        if hw.kind == "jetson":
            return Device(vendor="nvidia", resource="nvidia.com/gpu", gpu_product="Orin", ray_type=None)
        return Device(vendor="arm" if hw.kind == "mcu" else "cpu", resource=None)
    if hw.vendor == "cpu":
        return Device(vendor="cpu", resource=None)
    product, ray = _NAMES.get(hw.id, (None, None))
    return Device(vendor=hw.vendor, resource=_RESOURCE.get(hw.vendor), gpu_product=product, ray_type=ray)
