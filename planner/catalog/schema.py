"""Row types of the hardware catalog. Every row names its ``source`` (a datasheet, price page or paper)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CatalogDtype = Literal["fp32", "tf32", "fp16", "bf16", "fp8", "int8", "int4"]
Pos = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Source = Annotated[str, Field(min_length=3, description="datasheet, price page or paper these numbers come from")]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
"""Instance types, regions, zones and sites: identifier characters only, so they are safe in resource names,
file names, Markdown and terminal markup."""


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Interconnect(Row):
    kind: Literal["nvlink", "pcie", "infinity-fabric", "none"]
    bandwidth_gbps: Pos = Field(description="GPU-to-GPU bandwidth per GPU, one direction, GB/s (1e9)")
    gpus_per_domain: int = Field(ge=1, description="GPUs that share this fabric (one NVLink domain / node)")


class Accelerator(Row):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    vendor: Literal["nvidia", "amd", "intel", "google", "aws", "cpu"]
    name: str
    memory_gib: Pos
    bandwidth_gbps: Pos = Field(description="memory bandwidth, GB/s (1e9)")
    tflops: dict[CatalogDtype, Pos] = Field(description="peak dense TFLOPS (TOPS for int) per dtype, no sparsity")
    tdp_w: Pos
    interconnect: Interconnect
    pcie_gbps: Pos = Field(default=32.0, description="host link, GB/s one direction")
    source: Source

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * 2**30)

    def supports(self, dtype: str) -> bool:
        return dtype in self.tflops


class EdgeDevice(Row):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    kind: Literal["jetson", "sbc", "tpu", "mcu"]
    ram_mib: Pos = Field(description="memory usable by the model (unified RAM, or SRAM on an MCU)")
    storage_mib: Pos = Field(description="flash / storage for the weights")
    bandwidth_gbps: Pos = Field(description="memory bandwidth, GB/s")
    tops: dict[CatalogDtype, Pos] = Field(description="peak dense TOPS per dtype (fp32 on MCUs is GOPS/1000)")
    power_w: Pos
    price_usd: Pos
    runtime: str = Field(description="inference runtime: tensorrt, onnxruntime, tflite, edgetpu, tflite-micro, ...")
    int8_only: bool = False
    cpu_cores: int | None = Field(default=None, ge=1, description="CPU cores of the board (node sizing)")
    source: Source

    @property
    def ram_bytes(self) -> int:
        return int(self.ram_mib * 2**20)

    @property
    def storage_bytes(self) -> int:
        return int(self.storage_mib * 2**20)


class Instance(Row):
    """A cloud instance type in one region, with its prices."""

    provider: Literal["aws", "gcp", "azure"]
    instance: Name
    region: Name
    accelerator: str
    accelerator_count: int = Field(ge=1)
    vcpu: int = Field(ge=1)
    ram_gib: Pos
    on_demand_usd_per_h: Pos
    spot_usd_per_h: Pos | None = None
    dedicated: bool = Field(default=True, description="offered on dedicated hosts / sole tenancy")
    network_gbps: Pos = Field(default=25.0, description="inter-node network, Gbit/s")
    source: Source

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.provider, self.instance, self.region)


class OnPremServer(Row):
    """A server SKU one can buy (``available`` None) or a server one already owns (``available`` = count)."""

    sku: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    site: Name = Field(default="datacenter", description="site or location label, used for residency")
    geography: str = Field(default="any", description="us, eu, apac ... or any (where you would buy it)")
    accelerator: str
    accelerator_count: int = Field(ge=1)
    capex_usd: NonNeg
    power_w: Pos = Field(description="whole-server power under load")
    network_gbps: Pos = 100.0
    available: int | None = Field(default=None, ge=0, description="servers on hand; None = can be bought")
    vcpu: int | None = Field(default=None, ge=1, description="hardware threads (node sizing); None: assumed")
    ram_gib: Pos | None = Field(default=None, description="host memory, GiB (node sizing); None: assumed")
    source: Source


class Region(Row):
    provider: Literal["aws", "gcp", "azure"]
    region: Name
    geography: Literal["us", "ca", "sa", "eu", "uk", "me", "af", "apac", "cn"]
    zone: Name = Field(description="network zone used by the RTT table, e.g. us-east, eu-west")
    source: Source


class RttTable(Row):
    zones: list[str]
    rtt_ms: dict[str, dict[str, NonNeg]] = Field(description="round trip ms between zones (upper triangle is enough)")
    source: Source

    @model_validator(mode="after")
    def _known(self) -> RttTable:
        for a, row in self.rtt_ms.items():
            for b in [a, *row]:
                if b not in self.zones:
                    raise ValueError(f"rtt_ms names unknown zone {b!r}")
        return self
