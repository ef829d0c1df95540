"""Enumerate every option of the catalog for an inference spec, size it for the load, and cost it.

The search space (all of it is searched; nothing is pruned before costing):

- cloud: every instance row (provider x region x type), on-demand and, where allowed, spot;
- on-prem: every server SKU (bought) and every inventory row (owned, capped at ``available``);
- edge: every edge device, fleet sized from the load (and at least ``fleet_size``);
- sharding: tensor parallel over divisors of the GPUs per node within one interconnect domain; pipeline
  parallel across whole nodes when one node is not enough; data-parallel replicas for throughput;
- precision: every dtype the spec and its accuracy tolerance allow that the hardware runs;
- hybrid: (a) sensitive traffic on-prem or on the edge with the rest in the cloud; (b) an edge fleet for local
  traffic with cloud fallback for the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from planner.catalog import Catalog
from planner.catalog.schema import Accelerator, EdgeDevice, Instance, OnPremServer
from planner.estimator.shape import shape_of
from planner.optimizer import costs
from planner.optimizer.bill import Biller, CloudPart
from planner.optimizer.devices import device_of
from planner.optimizer.nodes import node_shape
from planner.optimizer.options import Miss, OptionEvaluator, ReplicaOption, allowed_dtypes
from planner.optimizer.runtimes import choose_runtime, runtime_cost, training_runtime
from planner.optimizer.slo import SloSizer
from planner.optimizer.targets import deploy_target
from planner.plan import Device, NodeShape, Routing, RuntimeCost, Target
from planner.privacy import PUBLIC, part_reason
from planner.specs import Spec

LAN_RTT_S = 0.002  # users on the same campus as an on-prem cluster (typical LAN RTT, documented assumption)
MAX_PIPELINE_NODES = 8
MAX_CLUSTER_NODES = 5000
"""Nodes of one part: Kubernetes supports clusters of up to 5,000 nodes
(https://kubernetes.io/docs/setup/best-practices/cluster-large/); a load that needs more is split."""
DEDICATED_PROVIDERS = ("aws",)
"""Where mlplan emits single-tenant capacity: EC2 dedicated tenancy. GKE sole-tenant node pools are not emitted, and
Azure Dedicated Hosts run none of the GPU sizes the catalog has (stacks/azure.py DEDICATED_HOST_SKUS)."""
MAX_FLEET_DEVICES = 100_000
"""Devices of one edge fleet (a planning cap: the largest published retail / camera fleets are of this order)."""


@dataclass(frozen=True, slots=True)
class Side:
    """Where a part runs and what it may receive: everything about a candidate that is not its sizing."""

    placement: str  # cloud, on-prem, edge
    provider: str
    region: str | None
    geography: str | None
    instance: str
    accelerator: str
    gpus_per_node: int
    node: NodeShape
    device: Device
    runtime: str
    runtime_cost: RuntimeCost
    """what the runtime adds to each request on this side's hosts (measured there, or the defaults)"""
    data_class: str
    routing: Routing
    tenancy: str  # dedicated, shared, owned
    role: str = "primary"
    traffic_fraction: float = 1.0


@dataclass(frozen=True, slots=True)
class Candidate:
    side: Side
    option: ReplicaOption
    replicas: int
    nodes: int
    purchase: str
    cost: costs.CostBreakdown
    rtt_s: float
    target: Target

    @property
    def monthly(self) -> float:
        return self.cost.total

    # the side's fields, read everywhere a candidate is
    @property
    def placement(self) -> str:
        return self.side.placement

    @property
    def provider(self) -> str:
        return self.side.provider

    @property
    def region(self) -> str | None:
        return self.side.region

    @property
    def instance(self) -> str:
        return self.side.instance

    @property
    def accelerator(self) -> str:
        return self.side.accelerator

    @property
    def gpus_per_node(self) -> int:
        return self.side.gpus_per_node

    @property
    def role(self) -> str:
        return self.side.role

    @property
    def traffic_fraction(self) -> float:
        return self.side.traffic_fraction


@dataclass(frozen=True, slots=True)
class Hybrid:
    parts: tuple[Candidate, ...]

    @property
    def monthly(self) -> float:
        return sum(p.monthly for p in self.parts)


@dataclass
class Rejections:
    """Reasons collected during the search, one per option label and constraint (the first one seen)."""

    items: dict[tuple[str, str], str] = field(default_factory=dict)
    misses: list[tuple[Miss, str]] = field(default_factory=list)  # (miss, option label) for infeasibility reports

    def add(self, label: str, constraint: str, reason: str) -> None:
        self.items.setdefault((label, constraint), reason)

    def miss(self, label: str, m: Miss) -> None:
        self.add(label, m.constraint, m.reason)
        self.misses.append((m, label))


@dataclass
class SearchResult:
    candidates: list[Candidate | Hybrid]
    rejections: Rejections
    searched: int
    near_misses: list[tuple[str, Candidate | Hybrid]]  # (constraint, candidate) failing only that constraint


def required_rps(spec: Spec) -> float:
    w = spec.workload
    assert w.kind == "inference"
    need = w.requests_per_s * w.peak_to_average
    if spec.constraints.min_throughput_rps is not None:
        need = max(need, spec.constraints.min_throughput_rps)
    return need


def replicas_for(rps: float, option: ReplicaOption, utilization: float) -> int:
    """Data-parallel replicas so each runs at ``utilization`` of its saturated throughput."""
    return max(1, math.ceil(rps / (option.rps * utilization) - 1e-9))


def expert_parallel_degrees(tp: int, moe: bool, runtime: str) -> tuple[int, ...]:
    """EP degrees to try with ``tp``-way TP: 1 (experts split by TP), and for a MoE model on vLLM also ``tp``
    (vLLM ``--enable-expert-parallel`` shards whole experts over the TP group's GPUs: EP size = TP x DP;
    https://docs.vllm.ai/en/latest/serving/expert_parallel_deployment.html)."""
    return (1, tp) if moe and tp > 1 and runtime == "vllm" else (1,)


def shapes(gpus_per_node: int, acc: Accelerator) -> Iterator[tuple[int, int]]:
    """(tp, pp) shapes: TP over divisors of the node within one interconnect domain; then whole-node TP with
    PP over 2..MAX_PIPELINE_NODES nodes (Megatron-LM: TP inside a node, PP across nodes; Narayanan et al. 2021)."""
    domain = min(gpus_per_node, acc.interconnect.gpus_per_domain)
    for tp in range(1, gpus_per_node + 1):
        if gpus_per_node % tp == 0 and (tp == 1 or tp <= domain):
            yield tp, 1
    tp_full = domain if gpus_per_node % domain == 0 else 1
    if tp_full == gpus_per_node:
        for pp in (2, 4, 8):
            if pp <= MAX_PIPELINE_NODES:
                yield tp_full, pp


class Search:
    def __init__(self, spec: Spec, catalog: Catalog, ev: OptionEvaluator, sizer: SloSizer | None = None) -> None:
        self.spec = spec
        self.cat = catalog
        self.ev = ev
        self.sizer = sizer if sizer is not None or spec.workload.kind != "inference" else SloSizer(spec, ev)
        self.rej = Rejections()
        self.searched = 0
        self.near: list[tuple[str, Candidate | Hybrid]] = []
        self.util = spec.assumptions.planning_utilization
        self.training = spec.workload.kind == "training"
        self.bill = Biller(spec, catalog, ev.arch)
        self._costs: dict[tuple[str, str], RuntimeCost] = {}

    # ------------------------------------------------------------------------------------------ helpers
    def rtt_for_region(self, provider: str, region: str) -> float:
        """Users' round trip to a cloud region (0 when the spec names no ``users_location``). Unknown zones are
        refused when the spec is checked (:func:`planner.privacy.check_names`), so a miss here is a
        catalog error and propagates."""
        z = self.spec.constraints.users_location
        if z is None:
            return 0.0
        return self.cat.rtt_ms(z, self.cat.region(provider, region).zone) / 1000.0

    def _budget_ok(self, cand: Candidate | Hybrid, label: str) -> bool:
        b = self.spec.constraints.budget_usd_per_month
        if b is not None and cand.monthly > b:
            self.rej.add(label, "budget", f"{label}: ${cand.monthly:,.0f}/month > budget ${b:,.0f}")
            self.near.append(("budget", cand))
            return False
        return True

    def _fits_node(self, opt: ReplicaOption, gpus_per_node: int) -> tuple[int, int] | None:
        """(replicas per node, nodes per replica)."""
        if opt.gpus <= gpus_per_node:
            return gpus_per_node // opt.gpus, 1
        if opt.gpus % gpus_per_node == 0:
            return 0, opt.gpus // gpus_per_node
        return None

    def _nodes(self, replicas: int, per_node: tuple[int, int]) -> int:
        rpn, npr = per_node
        return math.ceil(replicas / rpn) if rpn else replicas * npr

    def runtime(self, hw: Accelerator | EdgeDevice, label: str) -> str | None:
        """The runtime that serves (or trains) this model on ``hw``, or None, recorded as a rejection
        (:mod:`planner.optimizer.runtimes`)."""
        if self.training:
            name, why = training_runtime(hw)
        else:
            name, why = choose_runtime(self.spec.constraints, hw, self.ev.arch.is_llm,
                                       has_artifact=self.spec.model.artifact is not None)
        if name is None:
            self.rej.add(hw.id, "hardware", f"{hw.id}: {why}")
        return name

    def size(self, hw: Accelerator | EdgeDevice, opt: ReplicaOption, side: Side, rtt: float, rps: float,
             utilization: float, floor: int = 1) -> tuple[ReplicaOption, int] | Miss:
        """Replicas for ``rps`` so the SLOs hold at the spec's percentile (:mod:`planner.optimizer.slo`: the
        tier reached so far for this shape; the optimizer raises the tiers of the candidates that can rank)."""
        assert self.sizer is not None
        return self.sizer.size(hw, opt, runtime=side.runtime, rtt_s=rtt, rps=rps, utilization=utilization,
                               floor=floor, host_vcpu=side.node.replica_vcpu(opt.gpus), serving=side.runtime_cost)

    def side_cost(self, host: str, runtime: str) -> RuntimeCost:
        """What ``runtime`` adds to each request on ``host``: its measured figures in the catalog, or the
        defaults (one value per host and runtime: it is part of the sizer's keys)."""
        key = (host, runtime)
        cost = self._costs.get(key)
        if cost is None:
            cost = self._costs[key] = runtime_cost(runtime, self.cat.serving_calibration(host, runtime))
        return cost

    def target(self, side: Side, opt: ReplicaOption, replicas: int, nodes: int) -> Target:
        return deploy_target(placement=side.placement, provider=side.provider, instance=side.instance,
                             runtime=side.runtime, nodes=nodes, replicas=replicas, gpus_per_replica=opt.gpus,
                             training=self.training)

    # --------------------------------------------------------------------------------------------- cloud
    def cloud_sides(self, *, data_class: str, routing: Routing = "all", role: str = "primary",
                    fraction: float = 1.0) -> list[tuple[Side, Instance]]:
        """Every cloud instance row that may receive ``data_class`` (privacy and residency checked per row)."""
        c = self.spec.constraints
        out: list[tuple[Side, Instance]] = []
        for inst in self.cat.instances:
            label = f"{inst.instance} {inst.provider}/{inst.region}"
            if c.providers is not None and inst.provider not in c.providers:
                self.rej.add(label, "provider", f"{label}: provider {inst.provider} not in {', '.join(c.providers)}")
                continue
            region = self.cat.region(inst.provider, inst.region)
            why = part_reason(placement="cloud", provider=inst.provider, region=inst.region,
                              geography=region.geography, label=label, data_class=data_class,
                              dedicated_capable=inst.dedicated and inst.provider in DEDICATED_PROVIDERS, c=c)
            if why is not None:
                self.rej.add(label, "residency" if "residency" in why else "privacy", why)
                continue
            acc = self.cat.accelerator(inst.accelerator)
            runtime = self.runtime(acc, label)
            if runtime is None:
                continue
            out.append((Side(
                placement="cloud", provider=inst.provider, region=inst.region, geography=region.geography,
                instance=inst.instance, accelerator=acc.id, gpus_per_node=inst.accelerator_count,
                node=node_shape(inst.provider, inst.vcpu, inst.ram_gib, inst.accelerator_count),
                device=device_of(acc), runtime=runtime, runtime_cost=self.side_cost(inst.instance, runtime),
                data_class=data_class, routing=routing,
                tenancy="dedicated" if data_class == "restricted" else "shared", role=role,
                traffic_fraction=fraction), inst))
        return out

    def cloud(self, rps: float, *, data_class: str, routing: Routing = "all", role: str = "primary",
              fraction: float = 1.0) -> list[Candidate]:
        out: list[Candidate] = []
        for side, inst in self.cloud_sides(data_class=data_class, routing=routing, role=role, fraction=fraction):
            out.extend(self._size_cloud(side, inst, rps))
        return out

    def _sized(self, acc: Accelerator, side: Side, rps: float, rtt: float,
               label: str) -> Iterator[tuple[ReplicaOption, int, int]]:
        """Every replica shape that meets the SLOs on the side's nodes, sized for ``rps``: (option, replicas,
        nodes). Misses are recorded as rejections."""
        dtypes = allowed_dtypes(self.spec.constraints, acc, self.ev.arch)
        if not dtypes:
            self.rej.add(acc.id, "precision", f"{acc.id}: none of {', '.join(self.spec.constraints.precisions)} "
                         f"is supported (it runs {', '.join(acc.tflops)})")
            return
        moe = self.ev.arch.is_llm and shape_of(self.ev.arch).expert_params > 0
        for dtype in dtypes:
            fits_one_node = False  # some shape inside one node holds the model in this dtype
            for tp, pp, ep in ((t, p, e) for t, p in shapes(side.gpus_per_node, acc)
                               for e in expert_parallel_degrees(t, moe, side.runtime)):
                if not self.ev.arch.is_llm and (tp, pp) != (1, 1):
                    continue
                if tp * pp > side.gpus_per_node and fits_one_node:
                    continue  # no pipeline across instances for a model that fits one node
                if tp * pp > side.gpus_per_node and side.runtime == "tensorrt-llm":
                    self.rej.add(label, "hardware", f"{label}: TensorRT-LLM replicas spanning nodes need an MPI "
                                 "launcher the serving image does not ship; use vllm for multi-node replicas")
                    continue
                self.searched += 1
                opt = self.ev.gpu(acc, dtype, tp, pp, rtt, side.runtime, ep, side.runtime_cost.overhead_s)
                if tp * pp <= side.gpus_per_node and not (isinstance(opt, Miss) and opt.constraint == "memory"):
                    fits_one_node = True
                if isinstance(opt, Miss):
                    self.rej.miss(acc.id if opt.constraint == "memory" else label, opt)
                    continue
                per_node = self._fits_node(opt, side.gpus_per_node)
                if per_node is not None:
                    sized = self.size(acc, opt, side, rtt, rps, self.util)
                    if isinstance(sized, Miss):
                        self.rej.miss(label, sized)
                        continue
                    opt, replicas = sized
                    nodes = self._nodes(replicas, per_node)
                    if nodes > MAX_CLUSTER_NODES:
                        self.rej.add(label, "capacity", f"{label}: {opt.dtype} tp{opt.tp} needs {nodes:,} nodes for "
                                     f"{rps:,.0f} req/s, over the {MAX_CLUSTER_NODES:,}-node cluster limit")
                        continue
                    yield opt, replicas, nodes

    def _size_cloud(self, side: Side, inst: Instance, rps: float) -> Iterator[Candidate]:
        acc = self.cat.accelerator(inst.accelerator)
        label = f"{inst.instance} {inst.provider}/{inst.region}"
        rtt = self.rtt_for_region(inst.provider, inst.region)
        dedicated = side.tenancy == "dedicated"
        prices = [("on-demand", inst.on_demand_usd_per_h)]
        if self.spec.constraints.allow_spot and inst.spot_usd_per_h is not None and not dedicated:
            prices.append(("spot", inst.spot_usd_per_h))
        for opt, replicas, nodes in self._sized(acc, side, rps, rtt, label):
            target = self.target(side, opt, replicas, nodes)
            for purchase, price in prices:
                cost = self.bill.cloud(CloudPart(
                    inst, target, nodes, replicas, opt.gpus, opt.dtype, purchase, price, side.tenancy,
                    side.data_class, side.routing, side.traffic_fraction, side.device.resource is not None))
                cand = Candidate(side, opt, replicas, nodes, purchase, cost, rtt, target)
                if self._budget_ok(cand, f"{label} {opt.dtype} tp{opt.tp}"):
                    yield cand

    # ------------------------------------------------------------------------------------------- on-prem
    def onprem_sides(self, *, data_class: str, routing: Routing = "all", role: str = "primary",
                     fraction: float = 1.0) -> list[tuple[Side, OnPremServer]]:
        """Every on-prem server (owned or to buy) that may receive ``data_class``."""
        c = self.spec.constraints
        out: list[tuple[Side, OnPremServer]] = []
        for srv in self.cat.onprem_servers:
            owned = srv.available is not None
            label = f"{srv.sku} ({'owned' if owned else 'buy'})"
            if c.onprem_owned_only and not owned:
                self.rej.add(label, "placement", f"{srv.sku}: would have to be bought (onprem_owned_only)")
                continue
            why = part_reason(placement="on-prem", provider="onprem", region=srv.site, geography=srv.geography,
                              label=srv.sku, data_class=data_class, dedicated_capable=True, c=c)
            if why is not None:
                self.rej.add(label, "residency", why)
                continue
            acc = self.cat.accelerator(srv.accelerator)
            runtime = self.runtime(acc, label)
            if runtime is None:
                continue
            out.append((Side(
                placement="on-prem", provider="onprem", region=srv.site, geography=srv.geography, instance=srv.sku,
                accelerator=acc.id, gpus_per_node=srv.accelerator_count,
                node=node_shape("onprem", srv.vcpu, srv.ram_gib, srv.accelerator_count), device=device_of(acc),
                runtime=runtime, runtime_cost=self.side_cost(srv.sku, runtime), data_class=data_class,
                routing=routing, tenancy="owned", role=role, traffic_fraction=fraction), srv))
        return out

    def onprem(self, rps: float, *, data_class: str, routing: Routing = "all", role: str = "primary",
               fraction: float = 1.0) -> list[Candidate]:
        out: list[Candidate] = []
        for side, srv in self.onprem_sides(data_class=data_class, routing=routing, role=role, fraction=fraction):
            owned = srv.available is not None
            label = f"{srv.sku} ({'owned' if owned else 'buy'})"
            acc = self.cat.accelerator(srv.accelerator)
            for opt, replicas, nodes in self._sized(acc, side, rps, LAN_RTT_S, label):
                if srv.available is not None and nodes > srv.available:
                    self.rej.add(label, "capacity", f"{srv.sku}: needs {nodes} servers, {srv.available} on hand")
                    continue
                cost = self.bill.onprem(srv, nodes, opt.dtype)
                cand = Candidate(side, opt, replicas, nodes, "owned" if owned else "buy", cost, LAN_RTT_S,
                                 self.target(side, opt, replicas, nodes))
                if self._budget_ok(cand, f"{label} {opt.dtype} tp{opt.tp}"):
                    out.append(cand)
        return out

    # ---------------------------------------------------------------------------------------------- edge
    def edge(self, rps: float, *, data_class: str, routing: Routing = "all", role: str = "primary",
             fraction: float = 1.0) -> list[Candidate]:
        c, a, w = self.spec.constraints, self.spec.assumptions, self.spec.workload
        assert w.kind == "inference"
        out: list[Candidate] = []
        for dev in self.cat.edge_devices.values():
            dtypes = allowed_dtypes(c, dev, self.ev.arch)
            if not dtypes:
                self.rej.add(dev.id, "precision", f"{dev.id}: runs int8 only; the spec allows "
                             f"{', '.join(c.precisions)} with accuracy loss '{c.max_accuracy_loss}'")
                continue
            runtime = self.runtime(dev, dev.id)
            if runtime is None:
                continue
            side = Side(placement="edge", provider="edge", region=None, geography=None, instance=dev.id,
                        accelerator=dev.id, gpus_per_node=1,
                        node=node_shape("edge", dev.cpu_cores, dev.ram_mib / 1024.0, 1), device=device_of(dev),
                        runtime=runtime, runtime_cost=self.side_cost(dev.id, runtime), data_class=data_class,
                        routing=routing, tenancy="owned", role=role, traffic_fraction=fraction)
            for dtype in dtypes:
                self.searched += 1
                opt = self.ev.gpu(dev, dtype, 1, 1, 0.0, runtime, 1, side.runtime_cost.overhead_s)
                if isinstance(opt, Miss):
                    self.rej.miss(dev.id, opt)
                    continue
                sized = self.size(dev, opt, side, 0.0, rps, a.edge_average_utilization, w.fleet_size or 1)
                if isinstance(sized, Miss):
                    self.rej.miss(dev.id, sized)
                    continue
                opt, devices = sized
                if devices > MAX_FLEET_DEVICES:
                    self.rej.add(dev.id, "capacity", f"{dev.id}: {dtype} needs {devices:,} devices for "
                                 f"{rps:,.0f} req/s, over the {MAX_FLEET_DEVICES:,}-device fleet cap")
                    continue
                cost = self.bill.edge(dev, devices, data_class)
                cand = Candidate(side, opt, devices, devices, "buy", cost, 0.0,
                                 self.target(side, opt, devices, devices))
                if self._budget_ok(cand, f"{dev.id} {dtype}"):
                    out.append(cand)
        return out

    # -------------------------------------------------------------------------------------------- hybrid
    def hybrids(self, rps: float) -> list[Hybrid]:
        """Two kinds of split, each part checked for the data it receives (see :mod:`privacy`):

        (a) ``sensitive_traffic_fraction``: the router sends only requests positively marked public to the
            cloud (``marked-public``, data class public); every other request, untagged ones included, stays
            on-prem or on the edge (``not-marked-public``, the spec's class), which is sized for that share;
        (b) ``local_traffic_fraction``: an edge fleet serves its own sites' requests and the cloud the rest:
            those carry the spec's data class, so the cloud side passes the spec's full privacy check.
        """
        w, c = self.spec.workload, self.spec.constraints
        assert w.kind == "inference"
        out: list[Hybrid] = []
        if c.privacy == "air-gapped" or ("cloud" not in c.placements and "hybrid" not in c.placements):
            return out
        if 0 < w.sensitive_traffic_fraction < 1:
            share = w.sensitive_traffic_fraction
            safe = dict(data_class=c.privacy, routing="not-marked-public", role="sensitive", fraction=share)
            local = self.onprem(rps * share, **safe) + self.edge(rps * share, **safe)  # type: ignore[arg-type]
            remote = self.cloud(rps * (1 - share), data_class=PUBLIC, routing="marked-public", role="burst",
                                fraction=1 - share)
            self._pair(local, remote, out)
        if 0 < w.local_traffic_fraction < 1:
            share = w.local_traffic_fraction
            local = self.edge(rps * share, data_class=c.privacy, routing="local-sites", role="local",
                              fraction=share)
            remote = self.cloud(rps * (1 - share), data_class=c.privacy, routing="not-local", role="fallback",
                                fraction=1 - share)
            self._pair(local, remote, out)
        return out

    def _pair(self, local: list[Candidate], remote: list[Candidate], out: list[Hybrid]) -> None:
        if not local or not remote:
            return
        best_local = min(local, key=lambda x: x.monthly)
        best_remote = min(remote, key=lambda x: x.monthly)
        h = Hybrid((best_local, best_remote))
        if self._budget_ok(h, f"hybrid {best_local.instance}+{best_remote.instance}"):
            out.append(h)


def search_inference(spec: Spec, catalog: Catalog, ev: OptionEvaluator, sizer: SloSizer | None = None
                     ) -> SearchResult:
    s = Search(spec, catalog, ev, sizer)
    rps = required_rps(spec)
    placements = set(spec.constraints.placements)
    data_class = spec.constraints.privacy
    found: list[Candidate | Hybrid] = []
    if "cloud" in placements:
        found.extend(s.cloud(rps, data_class=data_class))
    else:
        s.rej.add("cloud", "placement", "cloud: not in the spec's allowed placements")
    if "on-prem" in placements:
        found.extend(s.onprem(rps, data_class=data_class))
    else:
        s.rej.add("on-prem", "placement", "on-prem: not in the spec's allowed placements")
    if "edge" in placements:
        found.extend(s.edge(rps, data_class=data_class))
    else:
        s.rej.add("edge", "placement", "edge: not in the spec's allowed placements")
    if "hybrid" in placements:
        found.extend(s.hybrids(rps))
    return SearchResult(found, s.rej, s.searched, s.near)
