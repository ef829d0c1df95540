"""The plan: a plain, serialisable value that the optimizer returns and every emitter reads.

Emitters (``stacks/``, ``serving/``) read a :class:`Plan` (from ``plan.yaml``) and never call back into the
optimizer; anything they need (batching, replica bounds, security posture, model I/O) is decided here, once.

``Plan.model_dump(mode="json")`` is what ``recommend --json`` prints per plan and what ``plan.yaml`` stores.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from planner.specs import ModelKind, TensorSpec

PlacementKind = Literal["cloud", "on-prem", "edge", "hybrid"]
Runtime = Literal["ray", "triton", "vllm", "tensorrt-llm", "firmware"]
Target = Literal["aws-ec2", "aws-eks", "gcp-gke", "azure-aks", "kubeconfig", "edge-fleet", "firmware", "local"]
"""How a part becomes infrastructure (decided by the planner, read by every emitter):

- ``aws-ec2``: one node, one replica, one GPU on AWS: a single EC2 instance running the serving container;
- ``aws-eks`` / ``gcp-gke`` / ``azure-aks``: a managed Kubernetes cluster the stack creates;
- ``kubeconfig``: an existing on-prem cluster reached through a kubeconfig;
- ``edge-fleet``: a k3s-style fleet of edge devices, pods pinned by node labels;
- ``firmware``: a microcontroller firmware build plan, no IaC;
- ``local``: served on this machine by ``mlplan deploy`` (no IaC)."""
KUBERNETES_TARGETS: tuple[Target, ...] = ("aws-eks", "gcp-gke", "azure-aks", "kubeconfig", "edge-fleet")
Routing = Literal["all", "marked-public", "not-marked-public", "local-sites", "not-local"]
"""Which requests a part receives. A hybrid router is an allow-list: ``marked-public`` parts get only requests
positively marked public; the privacy-safe ``not-marked-public`` part gets every other request (untagged ones
included). ``local-sites`` / ``not-local``: an edge fleet serves the requests of its own sites, the cloud the rest
(those requests carry the spec's data class)."""


class Value(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Predicted(Value):
    """Predicted figures for one replica set of the plan, as served (network RTT and the runtime's serving time
    included in TTFT and latency).

    Latencies are percentiles over requests at the planned load: the plan's peak rate (``planned_rps`` =
    ``requests_per_s`` x ``peak_to_average``) arriving as the spec's traffic (Poisson, or bursty) on the plan's
    replicas with the plan's engine and batching settings, simulated (:mod:`planner.simulator`). The single
    figures ``ttft_s`` / ``tpot_s`` / ``latency_s`` are the p50s."""

    ttft_s: float | None = Field(default=None, description="time to first token, p50 at the planned load")
    tpot_s: float | None = Field(default=None, description="time per output token, p50 at the planned load")
    throughput_tokens_per_s: float | None = None
    latency_s: float | None = Field(default=None, description="end-to-end per request (LLMs: to the last token), "
                                                               "p50 at the planned load")
    ttft_p50_s: float | None = None
    ttft_p90_s: float | None = None
    ttft_p99_s: float | None = None
    tpot_p50_s: float | None = None
    tpot_p90_s: float | None = None
    tpot_p99_s: float | None = None
    latency_p50_s: float | None = None
    latency_p90_s: float | None = None
    latency_p99_s: float | None = None
    planned_rps: float | None = Field(default=None, description="the total request rate the percentiles are at "
                                                                "(the planned peak)")
    max_rps_within_slo: float | None = Field(
        default=None, description="load headroom: the highest total request rate at which every latency SLO still "
                                  "holds at the spec's percentile (None without a latency SLO)")
    throughput_rps: float = Field(description="requests/s the whole plan sustains at the planning utilization "
                                              "(saturated throughput x planning_utilization)")
    max_batch: int | None = None
    network_rtt_s: float = 0.0
    memory_per_gpu_bytes: int
    memory_capacity_per_gpu_bytes: int
    memory_headroom: float = Field(description="1 - used/capacity per GPU")
    energy_j_per_request: float | None = None
    training_time_s: float | None = None


CostGroup = Literal["compute", "platform", "network", "storage"]
COST_GROUPS: tuple[CostGroup, ...] = ("compute", "platform", "network", "storage")


class CostLine(Value):
    """One line of the bill (see :mod:`planner.optimizer.bill`): what is billed, with its quantities and unit
    price, in ``item``; ``group`` for PLAN.md's subtotals; ``part`` the part it bills; ``kind`` the cost rule
    (``instances``, ``k8s_control_plane``, ``nat_gateway`` ...) that ties the line to the resources the stack
    creates; ``source`` the unit price's origin (a catalog row's source, or the assumption that set it)."""

    item: str
    usd_per_month: float
    group: CostGroup = "compute"
    kind: str | None = None
    part: str | None = Field(default=None, description="key of the part the line bills (Part.names.key)")
    source: str = ""


class Cost(Value):
    monthly_usd: float
    lines: tuple[CostLine, ...]
    assumptions: dict[str, float | str]
    not_billed: tuple[str, ...] = Field(default=(), description="what the bill leaves out (cloud plans)")

    def groups(self) -> list[tuple[CostGroup, tuple[CostLine, ...], float]]:
        """(group, its lines, subtotal) for every group that has lines, in :data:`COST_GROUPS` order."""
        out: list[tuple[CostGroup, tuple[CostLine, ...], float]] = []
        for g in COST_GROUPS:
            lines = tuple(x for x in self.lines if x.group == g)
            if lines:
                out.append((g, lines, round(sum(x.usd_per_month for x in lines), 2)))
        return out


class ModelRef(Value):
    """What the emitters need to know about the model (from the spec, resolved)."""

    name: str
    hf_id: str | None = Field(default=None, description="the full Hugging Face id (org/name) the engine fetches")
    kind: ModelKind
    family: str
    params: int
    artifact: str | None = Field(default=None, description="path or s3:// URI of the weights / ONNX file")
    inputs: tuple[TensorSpec, ...] | None = None
    outputs: tuple[TensorSpec, ...] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    max_context: int | None = None


class Serving(Value):
    """Serving settings decided by the planner, applied verbatim by the Ray Serve / KubeRay / Triton builders."""

    runtime: Runtime
    max_batch_size: int = Field(ge=1)
    preferred_batch_sizes: tuple[int, ...]
    max_queue_delay_us: int = Field(ge=0, description="dynamic batcher wait (Triton max_queue_delay_microseconds, "
                                                       "Ray Serve batch_wait_timeout_s), chosen by simulation; 0 "
                                                       "for LLMs (continuous batching admits at the next step)")
    max_ongoing_requests: int = Field(ge=1, description="per replica (Ray Serve max_ongoing_requests); the "
                                                        "simulation holds requests over it at the router")
    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    target_ongoing_requests: float = Field(gt=0)
    route_prefix: str = "/"


class Engine(Value):
    """LLM engine settings the planner decided for a part (vLLM / TensorRT-LLM), consistent with the estimator's
    memory accounting; emitters pass them verbatim (``--max-num-seqs`` ...). See :mod:`planner.optimizer.engine`."""

    max_num_seqs: int = Field(ge=1, description="sequences decoding together (the SLO-bound batch)")
    max_num_batched_tokens: int = Field(ge=1, description="tokens per scheduler step (chunked-prefill budget)")
    max_model_len: int = Field(ge=1, description="longest sequence (prompt + output) a request may have")
    gpu_memory_utilization: float = Field(gt=0, le=1, description="fraction of each GPU's memory the engine takes")
    kv_cache_dtype: str = Field(description="auto (the model's activation dtype) or fp8")
    quantization: str | None = Field(default=None, description="the engine's quantization method, None for none")
    enable_expert_parallel: bool = False
    checkpoint: str = Field(description="which weights the engine loads: the model's own, or the quantized "
                                        "checkpoint the plan's dtype needs")


class Security(Value):
    privacy: str
    allowed_regions: tuple[str, ...] | None
    encryption_at_rest: bool
    private_networking: bool
    dedicated_tenancy: bool
    deny_by_default_network: bool


class Training(Value):
    data_parallel: int
    zero_stage: int
    activation_checkpointing: bool
    model_states_bytes_per_gpu: int
    time_s: float
    federated: bool = False
    entrypoint: str | None = Field(default=None, description="the user's training command (workload.entrypoint); "
                                                             "None: the emitted job refuses to start and says why")


class NodeShape(Value):
    """One node of a part as the scheduler sees it: capacity from the catalog row, allocatable after the
    kubelet's reserves (see :mod:`planner.optimizer.nodes` for the formula and its source)."""

    vcpu: int = Field(ge=1)
    memory_mib: int = Field(ge=1)
    accelerators: int = Field(ge=0, description="accelerators per node (0 on CPU-only nodes)")
    allocatable_cpu_millicores: int = Field(ge=1)
    allocatable_memory_mib: int = Field(ge=1)
    max_pods: int = Field(ge=1)
    reserves: str = Field(description="which reserve rule gave the allocatable figures")

    def replica_vcpu(self, accelerators: int) -> int:
        """Hardware threads a replica of ``accelerators`` accelerators gets: its share of the node's (on a CPU
        host they also run the serving runtime's own work)."""
        return max(1, self.vcpu * accelerators // max(1, self.accelerators))


class RateOverhead(Value):
    """The runtime's per-request time measured at ``rate_rps`` per replica (one row of a calibration)."""

    rate_rps: float = Field(gt=0)
    p50_s: float = Field(ge=0)
    p99_s: float = Field(ge=0)
    cpu_s: float | None = Field(default=None, ge=0, description="the runtime's CPU per request at that rate, above "
                                                                "its idle background (None: not measured)")


class RuntimeCost(Value):
    """What the serving runtime adds to each request on a part's hosts, as the planner sized the part with it: the
    host's own measured figures (catalog ``serving_calibrations``, written by ``mlplan calibrate``) or the
    calibration defaults (``planner.estimator.calibration``). ``source`` says which."""

    overhead_s: float = Field(ge=0, description="median per-request time beyond the model (HTTP, routing), on an "
                                                "idle server")
    overhead_p99_s: float = Field(ge=0, description="that time at the 99th percentile (equal to the median where "
                                                    "the runtime's jitter was not measured)")
    cpu_s_per_request: float = Field(ge=0, description="CPU work per request of the runtime's processes; it runs "
                                                       "on the model's cores on a CPU host")
    cpu_processes: int = Field(ge=1, description="request-path processes that work is split between")
    front_share: float = Field(default=0.0, ge=0, le=1, description="the share of that work in a front process "
                                                                   "each request passes before the replica (Ray "
                                                                   "Serve's proxy); 0: none")
    background_cores: float = Field(default=0.0, ge=0, description="cores the runtime's processes take while "
                                                                   "idle, beside the request path on a CPU host")
    source: str
    by_rate: tuple[RateOverhead, ...] = Field(
        default=(), description="the overhead measured at each request rate per replica, increasing (empty: the "
                                "same at every load): a busy server answers faster than one that was idle")
    cpu_states: tuple[Annotated[float, Field(gt=0)], ...] = Field(
        default=(), description="the host's speed states: each a factor on every CPU figure here, equally likely, "
                                "mean 1 (the spread of the calibration's runs of one rate, which this host's "
                                "speed moved between); empty: one speed")

    def scaled(self, k: float) -> RuntimeCost:
        """These figures on a host ``k`` times slower: every CPU figure (per request, per rate, the idle
        background) times ``k``; the speed states stay as they are, around the new figures."""
        rows = tuple(r.model_copy(update={"cpu_s": None if r.cpu_s is None else r.cpu_s * k}) for r in self.by_rate)
        return self.model_copy(update={"cpu_s_per_request": self.cpu_s_per_request * k, "by_rate": rows,
                                       "background_cores": self.background_cores * k})

    def states(self) -> tuple[RuntimeCost, ...]:
        """One figure set per speed state (:attr:`cpu_states`, each :meth:`scaled` by its factor, with no states
        of its own), or these figures alone: a simulation of a host whose speed moves pools one run per state."""
        if len(self.cpu_states) < 2:
            return (self,)
        return tuple(self.scaled(k).model_copy(update={"cpu_states": ()}) for k in self.cpu_states)

    def overhead_mean(self, rate_rps: float) -> float:
        """The mean overhead at ``rate_rps`` per replica (:func:`planner.estimator.overhead.tail_mean` of the
        figures at that rate)."""
        from planner.estimator.overhead import at_rate, tail_mean

        if not self.by_rate:
            return tail_mean(self.overhead_s, self.overhead_p99_s)
        return tail_mean(*at_rate([(r.rate_rps, r.p50_s, r.p99_s) for r in self.by_rate], rate_rps))

    def overhead_at(self, percentile: float, rate_rps: float | None = None) -> float:
        """The overhead at ``percentile`` (:func:`planner.estimator.overhead.tail_quantile` through the median and
        the p99). With ``rate_rps`` (Poisson arrivals per replica), the figures measured at that rate
        (:func:`planner.estimator.overhead.at_rate`); without, the largest of any measured rate (what the planner
        sizes with: it holds at every rate). Added to a simulated latency's percentile (the model's time and the
        runtime's are independent: the sum of the two percentiles is usually a little above the percentile of the
        sum, and exact where one of the two does not vary)."""
        from planner.estimator.overhead import at_rate, tail_quantile  # here: importing the plan stays cheap

        if not self.by_rate:
            return tail_quantile(self.overhead_s, self.overhead_p99_s, percentile)
        rows = [(r.rate_rps, r.p50_s, r.p99_s) for r in self.by_rate]
        if rate_rps is None or rate_rps <= 0:
            return max(tail_quantile(a, b, percentile) for _, a, b in rows)
        return tail_quantile(*at_rate(rows, rate_rps), percentile)

    def _cpu_rows(self) -> list[tuple[float, float]]:
        """(rate per replica, CPU per request) of the rows that measured it"""
        return [(r.rate_rps, r.cpu_s) for r in self.by_rate if r.cpu_s is not None]

    def cpu_at(self, rate_rps: float) -> float:
        """The runtime's CPU per request at ``rate_rps`` per replica: the measured rows' figure there
        (:func:`planner.estimator.overhead.cpu_at_rate`), never below the request's own (``cpu_s_per_request``);
        that figure alone without rows."""
        from planner.estimator.overhead import cpu_at_rate

        rows = self._cpu_rows()
        return max(self.cpu_s_per_request, cpu_at_rate(rows, rate_rps)) if rows else self.cpu_s_per_request

    def busy_cores(self, rate_rps: float) -> float:
        """Cores the runtime's processes keep busy beside the request path at ``rate_rps`` per replica: the idle
        background plus the work the measured CPU per request at that rate has beyond the request's own
        (:func:`planner.estimator.overhead.beside_path_cores`; ``cpu_s_per_request`` is the top rate's, the least)."""
        from planner.estimator.overhead import beside_path_cores

        return self.background_cores + beside_path_cores(self._cpu_rows(), self.cpu_s_per_request, rate_rps)

    def peak_busy_cores(self) -> float:
        """The most :meth:`busy_cores` comes to at any rate
        (:func:`planner.estimator.overhead.peak_beside_path_cores`)."""
        from planner.estimator.overhead import peak_beside_path_cores

        return self.background_cores + peak_beside_path_cores(self._cpu_rows(), self.cpu_s_per_request)


class SystemPool(Value):
    """The untainted node pool a managed cluster runs CoreDNS, operators and the Ray head on."""

    machine: str
    nodes: int = Field(ge=1)
    disk_gib: int = Field(ge=1)
    source: str


class Device(Value):
    """Accelerator facts the emitters need, from the catalog row: who makes it, the Kubernetes device-plugin
    resource that schedules it, the GPU product label GPU Feature Discovery puts on nodes, Ray's accelerator type."""

    vendor: str
    resource: str | None = Field(description="e.g. nvidia.com/gpu, amd.com/gpu; None on CPUs and MCUs")
    gpu_product: str | None = None
    ray_type: str | None = None
    name: str | None = Field(default=None, description="the device's name (edge devices)")
    storage_bytes: int | None = Field(default=None, description="flash / storage for the weights (edge devices)")
    memory_bytes: int | None = Field(default=None, description="memory the model may use (edge devices)")
    edge_runtime: str | None = Field(default=None, description="the device's inference runtime (tflite-micro ...)")
    int8_only: bool = False


class PartNames(Value):
    """Every name the emitters give this part's resources, unique per spec (two specs serving one model on one
    cluster never share a namespace, object, bucket or role)."""

    key: str = Field(description="the part's key in the plan folder (k8s/<key>.yaml) and in resource names")
    namespace: str
    app: str = Field(description="Deployment / Service / ServiceAccount / RayService name")
    resource_prefix: str = Field(description="prefix of the cloud resources (VPC, cluster, key ...)")
    bucket: str | None = Field(default=None, description="the model bucket the stack creates (cloud parts)")
    role: str | None = Field(default=None, description="the serving IAM role / identity (cloud parts)")
    storage_account: str | None = Field(default=None, description="the Azure storage account holding the model "
                                                                  "container (Azure parts; 3-24 lowercase "
                                                                  "alphanumerics, globally unique)")


class Part(Value):
    """One side of a plan. A non-hybrid plan has exactly one part; a hybrid plan has two or more."""

    role: str = Field(description="primary, burst, fallback, sensitive, training, inference ...")
    placement: Literal["cloud", "on-prem", "edge"]
    provider: str = Field(description="aws, gcp, azure, onprem, edge")
    region: str | None = Field(description="cloud region, on-prem site, or None for an edge fleet")
    geography: str | None = Field(description="the region's or site's geography from the catalog (us, eu, uk, "
                                              "apac ...); 'any' for an on-prem site of unknown geography")
    instance: str = Field(description="instance type, server SKU, or edge device id")
    accelerator: str
    accelerator_count: int = Field(description="accelerators per replica")
    gpus_per_node: int
    nodes: int = Field(description="nodes in this part, all replicas together")
    tensor_parallel: int
    pipeline_parallel: int
    replicas: int
    dtype: str
    purchase: Literal["on-demand", "spot", "owned", "buy"]
    traffic_fraction: float = Field(ge=0, le=1)
    expert_parallel: int = Field(default=1, ge=1, description="MoE: experts sharded over this many of a "
                                                                  "replica's GPUs (vLLM --enable-expert-parallel)")
    runtime: Runtime
    monthly_cost_usd: float
    target: Target
    routing: Routing = "all"
    data_class: str = Field(description="the most sensitive data class this part receives")
    tenancy: Literal["dedicated", "shared", "owned"] = Field(
        description="dedicated: single-tenant cloud hosts; shared: multi-tenant cloud; owned: on-prem or edge")
    node: NodeShape
    device: Device
    runtime_cost: RuntimeCost
    weights_bytes: int = Field(ge=0, description="the model's weight bytes in this part's dtype, all of them")
    names: PartNames
    engine: Engine | None = Field(default=None, description="LLM engine settings (vLLM / TensorRT-LLM parts)")
    model_volume_gib: int = Field(default=1, ge=1, description="the volume each serving pod fetches the model into")
    node_disk_gib: int = Field(default=100, ge=1, description="root volume of each accelerator node")
    system_pool: SystemPool | None = Field(default=None, description="managed clusters: the system node pool")


class Names(Value):
    """Plan-wide names (the Pulumi project and stack)."""

    project: str
    stack: str


class Plan(Value):
    rank: int = Field(ge=1)
    id: str = Field(description="stable id, e.g. cloud-aws-eu-west-1-g6e.xlarge-l40s-fp8-tp1")
    workload: Literal["inference", "training"]
    placement: PlacementKind
    provider: str
    region: str | None
    instance: str
    accelerator: str
    accelerator_count: int
    gpus_per_node: int
    nodes: int
    tensor_parallel: int
    pipeline_parallel: int
    replicas: int
    dtype: str
    purchase: Literal["on-demand", "spot", "owned", "buy"]
    monthly_cost_usd: float
    cost: Cost
    predicted: Predicted
    rationale: str
    pareto: bool = False
    parts: tuple[Part, ...]
    model: ModelRef
    serving: Serving
    security: Security
    names: Names
    training: Training | None = None
    notes: tuple[str, ...] = ()
    variants: tuple[str, ...] = Field(
        default=(), description="options collapsed into this plan: the same hardware and sharding at the same cost "
                                "in another precision, in a pricier instance size, or (training) on more nodes")


class Rejected(Value):
    """One rejected option class and why, e.g. ``l4: weights 140 GB > 24 GB even at int4``."""

    option: str
    constraint: Literal["memory", "latency", "throughput", "privacy", "residency", "budget", "placement",
                        "precision", "provider", "hardware", "capacity", "training-time"]
    reason: str


class Recommendation(Value):
    spec_name: str
    catalog_version: str
    candidates_searched: int
    plans: tuple[Plan, ...]
    rejected: tuple[Rejected, ...]
