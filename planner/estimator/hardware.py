"""The hardware view the estimator needs: a flat, fast :class:`HardwareProfile` built from a catalog row.

Units are SI: bytes, bytes/s, FLOP/s (TOPS for integer dtypes), watts. Catalog rows give GiB for memory (as
datasheets do: "80 GB" HBM is 80 GiB) and GB/s (1e9) for bandwidth. The profile's memory is the *usable* memory the
driver reports (``Accelerator.usable_memory_mib``, e.g. 23,034 MiB on an L4 sold as 24 GB), not the marketed size:
a plan with 10% headroom on the marketed figure would really have ~3% on an L4.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.catalog.schema import Accelerator, EdgeDevice
from planner.estimator import calibration as cal
from planner.estimator.dtypes import compute_dtype


@dataclass(frozen=True, slots=True)
class HardwareProfile:
    """One accelerator (GPU, NPU, CPU socket or edge device) as the roofline model sees it."""

    id: str
    memory_bytes: int
    bandwidth_bytes_per_s: float
    flops_per_s: dict[str, float]
    power_w: float
    interconnect_bytes_per_s: float = 0.0
    gpus_per_domain: int = 1
    internode_bytes_per_s: float = cal.INTERNODE_BYTES_PER_S
    kind: str = "gpu"
    """gpu, cpu, or the edge device kind (jetson, sbc, tpu, mcu)."""
    _compute: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def compute_dtype(self, dtype: str) -> str:
        """The math dtype weights of ``dtype`` execute in here (see :func:`dtypes.compute_dtype`)."""
        c = self._compute.get(dtype)
        if c is None:
            c = self._compute[dtype] = compute_dtype(dtype, self.flops_per_s)
        return c

    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s for weights of ``dtype``."""
        return self.flops_per_s[self.compute_dtype(dtype)]

    def link_bytes_per_s(self, gpus: int) -> float:
        """Per-GPU collective bandwidth for a group of ``gpus``: NVLink/fabric inside one domain, else network."""
        if gpus <= self.gpus_per_domain and self.interconnect_bytes_per_s > 0:
            return self.interconnect_bytes_per_s
        return self.internode_bytes_per_s


def usable_memory_bytes(hw: Accelerator) -> int:
    """Driver-reported memory of one accelerator (the marketed size only for rows that lack the figure)."""
    if hw.usable_memory_mib is not None:
        return int(hw.usable_memory_mib * 2**20)
    return int(hw.memory_gib * 2**30)


def profile(hw: Accelerator | EdgeDevice) -> HardwareProfile:
    """Build a :class:`HardwareProfile` from a catalog accelerator or edge device row."""
    if isinstance(hw, Accelerator):
        link = hw.interconnect.bandwidth_gbps if hw.interconnect.kind != "none" else hw.pcie_gbps
        return HardwareProfile(
            id=hw.id,
            memory_bytes=usable_memory_bytes(hw),
            bandwidth_bytes_per_s=hw.bandwidth_gbps * 1e9,
            flops_per_s={k: v * 1e12 for k, v in hw.tflops.items()},
            power_w=hw.tdp_w,
            interconnect_bytes_per_s=link * 1e9,
            gpus_per_domain=hw.interconnect.gpus_per_domain,
            kind="cpu" if hw.vendor == "cpu" else "gpu",
        )
    return HardwareProfile(
        id=hw.id,
        memory_bytes=hw.ram_bytes,
        bandwidth_bytes_per_s=hw.bandwidth_gbps * 1e9,
        flops_per_s={k: v * 1e12 for k, v in hw.tops.items()},
        power_w=hw.power_w,
        interconnect_bytes_per_s=0.0,
        gpus_per_domain=1,
        kind=hw.kind,
    )
