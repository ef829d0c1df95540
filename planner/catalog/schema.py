"""Row types of the hardware catalog. Every row names its ``source`` (a datasheet, price page or paper)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CatalogDtype = Literal["fp32", "tf32", "fp16", "bf16", "fp8", "int8", "int4", "fp4"]
SpotBand = Literal["<5%", "5-10%", "10-15%", "15-20%", ">20%"]
"""AWS Spot Instance Advisor's 'frequency of interruption' bands (share of instances interrupted per month)."""
DEVICE_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "aws.amazon.com/neuron", "google.com/tpu", "habana.ai/gaudi")
Pos = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Source = Annotated[str, Field(min_length=3, description="datasheet, price page or paper these numbers come from")]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
"""Instance types, regions, zones and sites: identifier characters only, so they are safe in resource names,
file names, Markdown and terminal markup."""


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Interconnect(Row):
    kind: Literal["nvlink", "pcie", "infinity-fabric", "ici", "neuronlink", "ethernet", "none"]
    bandwidth_gbps: Pos = Field(description="GPU-to-GPU bandwidth per GPU, one direction, GB/s (1e9)")
    gpus_per_domain: int = Field(ge=1, description="accelerators that share this fabric: one NVLink domain (8 on HGX, "
                                                    "72 on GB200 NVL72), one TPU ICI slice, one Neuron ring")


class Accelerator(Row):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    vendor: Literal["nvidia", "amd", "intel", "google", "aws", "cpu"]
    name: str
    memory_gib: Pos
    bandwidth_gbps: Pos = Field(description="memory bandwidth, GB/s (1e9)")
    tflops: dict[CatalogDtype, Pos] = Field(description="peak dense TFLOPS (TOPS for int) per dtype, no sparsity")
    sparse_tflops: dict[CatalogDtype, Pos] = Field(
        default_factory=dict,
        description="peak with 2:4 structured sparsity, where the datasheet gives it (not planned on)")
    tdp_w: Pos
    interconnect: Interconnect
    pcie_gbps: Pos = Field(default=32.0, description="host link, GB/s one direction")
    usable_memory_mib: Pos | None = Field(
        default=None, description="memory the driver reports (nvidia-smi memory.total, rocminfo pool size, ...), MiB; "
                                  "planning uses this, memory_gib stays the marketed figure for display")
    usable_memory_source: str | None = Field(default=None, description="where usable_memory_mib comes from")
    gpu_product: str | None = Field(default=None, description="nvidia.com/gpu.product label value NVIDIA GPU Feature "
                                                              "Discovery sets on nodes with this GPU")
    ray_type: str | None = Field(default=None, description="ray.util.accelerators constant value (accelerator_type)")
    device_resource: str | None = Field(default=None, description="Kubernetes device-plugin resource name")
    names_source: str | None = Field(default=None, description="source of gpu_product / ray_type / device_resource")
    source: Source

    @model_validator(mode="after")
    def _consistent(self) -> Accelerator:
        if self.usable_memory_mib is not None:
            if not self.usable_memory_source or len(self.usable_memory_source) < 3:
                raise ValueError("usable_memory_mib needs usable_memory_source")
            if self.usable_memory_mib > self.memory_gib * 1024:
                raise ValueError(f"usable_memory_mib {self.usable_memory_mib:g} exceeds the sold "
                                 f"{self.memory_gib:g} GiB")
        if (self.gpu_product or self.ray_type or self.device_resource) and not self.names_source:
            raise ValueError("gpu_product / ray_type / device_resource need names_source")
        if self.device_resource is not None and self.device_resource not in DEVICE_RESOURCES:
            raise ValueError(f"device_resource {self.device_resource!r} is not one of {', '.join(DEVICE_RESOURCES)}")
        return self

    @property
    def memory_bytes(self) -> int:
        """Bytes planning can use: the driver-reported figure where the row has one, else the marketed size."""
        if self.usable_memory_mib is not None:
            return int(self.usable_memory_mib * 2**20)
        return self.memory_sold_bytes

    @property
    def memory_sold_bytes(self) -> int:
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
    dedicated_usd_per_h: Pos | None = Field(
        default=None, description="price on dedicated tenancy (AWS Dedicated Instances, GCP sole-tenant), where "
                                  "known; the bill adds the difference to the on-demand price")
    dedicated: bool = Field(default=True, description="offered on dedicated hosts / sole tenancy")
    network_gbps: Pos = Field(default=25.0, description="inter-node network, Gbit/s")
    source: Source = Field(description="shape: accelerators, vCPU, RAM, network")
    price_source: str | None = Field(default=None, description="where on_demand_usd_per_h comes from (this row's "
                                                                "own figure: region and family)")
    price_observed: date | None = Field(default=None, description="date the on-demand price was read")
    spot_observed: date | None = Field(default=None, description="date the spot price was observed (moves hourly)")
    spot_source: str | None = None
    spot_interruption: SpotBand | None = Field(default=None, description="AWS Spot Advisor frequency-of-interruption "
                                                                          "band; None = not known")
    spot_interruption_source: str | None = None
    spot_interruption_observed: date | None = None

    @model_validator(mode="after")
    def _spot(self) -> Instance:
        if self.spot_usd_per_h is not None and self.spot_observed is not None and not self.spot_source:
            raise ValueError("spot_observed needs spot_source")
        if self.spot_interruption is not None and not (self.spot_interruption_source and
                                                       self.spot_interruption_observed):
            raise ValueError("spot_interruption needs spot_interruption_source and spot_interruption_observed")
        return self

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.provider, self.instance, self.region)

    @property
    def family(self) -> str:
        """Price family: ``g6e`` of ``g6e.xlarge``, ``a3-highgpu`` of ``a3-highgpu-8g``, ``NC_A100_v4`` ..."""
        if self.provider == "aws":
            return self.instance.split(".")[0]
        if self.provider == "gcp":
            return re.sub(r"-\d+[a-z]*$", "", self.instance)
        return re.sub(r"^(Standard_[A-Z]+)\d+", r"\1", self.instance)

    def spot_risk(self) -> str:
        """One line a plan on spot shows: price date, and the interruption band or that it is unknown."""
        if self.spot_usd_per_h is None:
            return "no spot offering in the catalog"
        seen = f"spot ${self.spot_usd_per_h:g}/h observed {self.spot_observed}" if self.spot_observed else \
            f"spot ${self.spot_usd_per_h:g}/h (observation date not recorded)"
        if self.spot_interruption is None:
            return f"{seen}; interruption frequency unknown (no Spot Advisor data for this row): plan for restarts"
        return (f"{seen}; interruptions {self.spot_interruption} of instances per month "
                f"(AWS Spot Advisor, {self.spot_interruption_observed})")


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


class RateOverheadRow(Row):
    """The runtime's per-request time measured at ``rate_rps`` per replica."""

    rate_rps: Pos
    p50_ms: NonNeg
    p99_ms: NonNeg
    cpu_ms: NonNeg | None = Field(default=None, description="the runtime's CPU per request at that rate, above its "
                                                            "idle background (absent in rows written before "
                                                            "2026-12-02)")

    @model_validator(mode="after")
    def _tail(self) -> RateOverheadRow:
        if self.p99_ms < self.p50_ms:
            raise ValueError(f"p99_ms {self.p99_ms} is below p50_ms {self.p50_ms}")
        return self


class ServingCalibration(Row):
    """What one serving runtime adds to each request on one host, measured there (``mlplan calibrate``): the
    planner uses these figures in place of the calibration defaults for parts on that host
    (:func:`planner.optimizer.runtimes.runtime_cost`)."""

    host: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      description="the on-prem server sku or cloud instance type the figures were measured on")
    runtime: Literal["ray", "triton", "vllm", "tensorrt-llm"]
    overhead_ms: NonNeg = Field(description="median per-request time beyond the model and the runtime's CPU work "
                                            "(HTTP, routing, hand-offs between the runtime's processes)")
    overhead_p99_ms: NonNeg = Field(description="the same time at the 99th percentile (the runtime's own jitter)")
    cpu_ms_per_request: NonNeg = Field(description="CPU time per request of all the runtime's processes above "
                                                   "their idle background, at load")
    by_rate: list[RateOverheadRow] = Field(
        default_factory=list, description="the overhead at each request rate, rate_rps increasing (a server that "
                                          "was idle answers slower than a busy one: planner.estimator.overhead)")
    front_share: float | None = Field(
        default=None, ge=0, le=1, description="the share of cpu_ms_per_request spent in the runtime's front process "
                                             "ahead of the replica (Ray Serve's proxy); absent: the default share")
    background_cores: NonNeg = Field(default=0.0, description="cores the runtime's processes take while idle "
                                                              "(Ray's GCS, raylet, agents), which the request "
                                                              "path's processes share the host with")
    cpu_states: list[Annotated[float, Field(gt=0.2, lt=5.0)]] = Field(
        default_factory=list, description="the host's speed states while it was measured: factors on every CPU "
                                          "figure, equally likely, mean 1 (from the spread of the CPU per "
                                          "request between the runs of one rate); absent: one speed")
    measured: date
    source: Source = Field(description="how and where the figures were measured")

    @model_validator(mode="after")
    def _tail(self) -> ServingCalibration:
        if self.overhead_p99_ms < self.overhead_ms:
            raise ValueError(f"overhead_p99_ms {self.overhead_p99_ms} is below overhead_ms {self.overhead_ms}")
        rates = [r.rate_rps for r in self.by_rate]
        if rates != sorted(set(rates)):
            raise ValueError(f"by_rate rows must have increasing rate_rps, not {rates}")
        return self

    @property
    def key(self) -> tuple[str, str]:
        return (self.host, self.runtime)


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


ServiceUnit = Literal["hour", "gb", "gb_month", "month", "10k_requests", "lcu_hour", "device_month", "server_month"]


class ServicePrice(Row):
    """A platform price the bill needs next to the instances: control planes, NAT, load balancers, volumes,
    object storage, KMS, egress, tenancy fees, edge connectivity, on-prem network and storage.

    ``region`` ``*`` is the provider-wide price, used where no row names the region. Key: (provider, region, item).
    """

    provider: Literal["aws", "gcp", "azure", "onprem", "edge"]
    region: str = Field(default="*", pattern=r"^(\*|[a-z0-9-]+)$")
    item: str = Field(pattern=r"^[a-z0-9_]+$")
    usd: NonNeg
    unit: ServiceUnit
    note: str = ""
    source: Source

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.provider, self.region, self.item)
