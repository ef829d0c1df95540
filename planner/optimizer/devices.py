"""Accelerator facts the emitters need, read from the catalog row once by the planner and carried on each part
(``Part.device``): the Kubernetes device-plugin resource, the GPU Feature Discovery product label and Ray's
accelerator type (each row names its source in ``names_source``)."""

from __future__ import annotations

from planner.catalog.schema import Accelerator, EdgeDevice
from planner.plan import Device


def device_of(hw: Accelerator | EdgeDevice) -> Device:
    """The :class:`~planner.plan.Device` of a catalog accelerator or edge device. Jetsons expose their integrated
    GPU through NVIDIA's device plugin (JetPack's k8s plugin), labelled ``Orin`` by GFD; other edge devices
    (SBCs, Coral, MCUs) schedule no device."""
    if isinstance(hw, EdgeDevice):
        edge = dict(name=hw.name, storage_bytes=hw.storage_bytes, memory_bytes=hw.ram_bytes, edge_runtime=hw.runtime,
                    int8_only=hw.int8_only)
        if hw.kind == "jetson":
            return Device(vendor="nvidia", resource="nvidia.com/gpu", gpu_product="Orin", ray_type=None, **edge)
        return Device(vendor="arm" if hw.kind == "mcu" else "cpu", resource=None, **edge)
    return Device(vendor=hw.vendor, resource=hw.device_resource, gpu_product=hw.gpu_product, ray_type=hw.ray_type)
