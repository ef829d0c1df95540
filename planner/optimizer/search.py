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
from planner.catalog.schema import Accelerator, EdgeDevice, Instance
from planner.optimizer import costs
from planner.optimizer.options import Miss, OptionEvaluator, ReplicaOption, allowed_dtypes
from planner.optimizer.privacy import cloud_privacy_reason, onprem_privacy_reason
from planner.specs import Constraints, Spec

LAN_RTT_S = 0.002  # users on the same campus as an on-prem cluster (typical LAN RTT, documented assumption)
MAX_PIPELINE_NODES = 8


@dataclass(frozen=True, slots=True)
class Candidate:
    placement: str  # cloud, on-prem, edge
    provider: str
    region: str | None
    instance: str
    accelerator: str
    gpus_per_node: int
    option: ReplicaOption
    replicas: int
    nodes: int
    purchase: str
    cost: costs.CostBreakdown
    rtt_s: float
    dedicated: bool = False
    runtime_hint: str = ""
    traffic_fraction: float = 1.0
    role: str = "primary"

    @property
    def monthly(self) -> float:
        return self.cost.total


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


def runtime_for(c: Constraints, acc_or_dev: Accelerator | EdgeDevice, is_llm: bool) -> str:
    """The serving runtime for this hardware: firmware on MCUs, Triton on Jetsons, Ray on other edge devices and
    CPUs, else the spec's preference, else vLLM for LLMs and Triton for other models."""
    pref = c.runtime
    if isinstance(acc_or_dev, EdgeDevice):
        if acc_or_dev.kind == "mcu":
            return "firmware"
        return "triton" if acc_or_dev.kind == "jetson" else "ray"
    if pref is not None:
        return pref
    if acc_or_dev.vendor == "cpu":
        return "ray"
    return "vllm" if is_llm else "triton"


def user_zone(spec: Spec) -> str | None:
    return spec.constraints.users_location


class Search:
    def __init__(self, spec: Spec, catalog: Catalog, ev: OptionEvaluator) -> None:
        self.spec = spec
        self.cat = catalog
        self.ev = ev
        self.rej = Rejections()
        self.searched = 0
        self.near: list[tuple[str, Candidate | Hybrid]] = []
        self.util = spec.assumptions.planning_utilization

    # ------------------------------------------------------------------------------------------ helpers
    def rtt_for_region(self, provider: str, region: str) -> float:
        z = user_zone(self.spec)
        if z is None:
            return 0.0
        reg = self.cat.region(provider, region)
        try:
            return self.cat.rtt_ms(z, reg.zone) / 1000.0
        except Exception:
            return 0.0

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

    # --------------------------------------------------------------------------------------------- cloud
    def cloud(self, rps: float, *, privacy_check: bool = True, role: str = "primary",
              fraction: float = 1.0) -> list[Candidate]:
        c = self.spec.constraints
        out: list[Candidate] = []
        for inst in self.cat.instances:
            label = f"{inst.instance} {inst.provider}/{inst.region}"
            if c.providers is not None and inst.provider not in c.providers:
                self.rej.add(label, "provider", f"{label}: provider {inst.provider} not in {', '.join(c.providers)}")
                continue
            region = self.cat.region(inst.provider, inst.region)
            if privacy_check:
                why = cloud_privacy_reason(inst, region, c)
                if why is not None:
                    self.rej.add(label, "residency" if "residency" in why else "privacy", why)
                    continue
            elif c.allowed_regions is not None:
                why = cloud_privacy_reason(inst, region, c.model_copy(update={"privacy": "internal"}))
                if why is not None:
                    self.rej.add(label, "residency", why)
                    continue
            dedicated = privacy_check and c.privacy == "restricted"
            out.extend(self._size_cloud(inst, rps, dedicated, role, fraction))
        return out

    def _sized(self, acc: Accelerator, gpus_per_node: int, rps: float, rtt: float,
               label: str) -> Iterator[tuple[ReplicaOption, int, int]]:
        """Every replica shape that meets the SLOs on nodes of ``gpus_per_node`` x ``acc``, sized for ``rps``:
        (option, replicas, nodes). Misses are recorded as rejections."""
        dtypes = allowed_dtypes(self.spec.constraints, acc)
        if not dtypes:
            self.rej.add(acc.id, "precision", f"{acc.id}: none of {', '.join(self.spec.constraints.precisions)} "
                         f"is supported (it runs {', '.join(acc.tflops)})")
            return
        for dtype in dtypes:
            for tp, pp in shapes(gpus_per_node, acc):
                if not self.ev.arch.is_llm and (tp, pp) != (1, 1):
                    continue
                self.searched += 1
                opt = self.ev.gpu(acc, dtype, tp, pp, rtt)
                if isinstance(opt, Miss):
                    self.rej.miss(acc.id if opt.constraint == "memory" else label, opt)
                    continue
                per_node = self._fits_node(opt, gpus_per_node)
                if per_node is not None:
                    replicas = replicas_for(rps, opt, self.util)
                    yield opt, replicas, self._nodes(replicas, per_node)

    def _size_cloud(self, inst: Instance, rps: float, dedicated: bool, role: str,
                    fraction: float) -> Iterator[Candidate]:
        acc = self.cat.accelerator(inst.accelerator)
        label = f"{inst.instance} {inst.provider}/{inst.region}"
        rtt = self.rtt_for_region(inst.provider, inst.region)
        prices = [("on-demand", inst.on_demand_usd_per_h)]
        if self.spec.constraints.allow_spot and inst.spot_usd_per_h is not None and not dedicated:
            prices.append(("spot", inst.spot_usd_per_h))
        for opt, replicas, nodes in self._sized(acc, inst.accelerator_count, rps, rtt, label):
            for purchase, price in prices:
                cost = costs.cloud_monthly(price, nodes, self.spec.assumptions, dedicated=dedicated)
                cand = Candidate("cloud", inst.provider, inst.region, inst.instance, acc.id,
                                 inst.accelerator_count, opt, replicas, nodes, purchase, cost, rtt,
                                 dedicated=dedicated, role=role, traffic_fraction=fraction)
                if self._budget_ok(cand, f"{label} {opt.dtype} tp{opt.tp}"):
                    yield cand

    # ------------------------------------------------------------------------------------------- on-prem
    def onprem(self, rps: float, *, role: str = "primary", fraction: float = 1.0) -> list[Candidate]:
        c, a = self.spec.constraints, self.spec.assumptions
        out: list[Candidate] = []
        for srv in self.cat.onprem_servers:
            owned = srv.available is not None
            label = f"{srv.sku} ({'owned' if owned else 'buy'})"
            if c.onprem_owned_only and not owned:
                self.rej.add(label, "placement", f"{srv.sku}: would have to be bought (onprem_owned_only)")
                continue
            why = onprem_privacy_reason(srv, c)
            if why is not None:
                self.rej.add(label, "residency", why)
                continue
            acc = self.cat.accelerator(srv.accelerator)
            for opt, replicas, nodes in self._sized(acc, srv.accelerator_count, rps, LAN_RTT_S, label):
                if srv.available is not None and nodes > srv.available:
                    self.rej.add(label, "capacity", f"{srv.sku}: needs {nodes} servers, {srv.available} on hand")
                    continue
                cost = costs.onprem_monthly(srv.capex_usd, srv.power_w, nodes, a)
                cand = Candidate("on-prem", "onprem", srv.site, srv.sku, acc.id, srv.accelerator_count, opt,
                                 replicas, nodes, "owned" if owned else "buy", cost, LAN_RTT_S, role=role,
                                 traffic_fraction=fraction)
                if self._budget_ok(cand, f"{label} {opt.dtype} tp{opt.tp}"):
                    out.append(cand)
        return out

    # ---------------------------------------------------------------------------------------------- edge
    def edge(self, rps: float, *, role: str = "primary", fraction: float = 1.0) -> list[Candidate]:
        c, a, w = self.spec.constraints, self.spec.assumptions, self.spec.workload
        assert w.kind == "inference"
        out: list[Candidate] = []
        for dev in self.cat.edge_devices.values():
            dtypes = allowed_dtypes(c, dev)
            if not dtypes:
                self.rej.add(dev.id, "precision", f"{dev.id}: runs int8 only; the spec allows "
                             f"{', '.join(c.precisions)} with accuracy loss '{c.max_accuracy_loss}'")
                continue
            for dtype in dtypes:
                self.searched += 1
                opt = self.ev.gpu(dev, dtype, 1, 1, 0.0)
                if isinstance(opt, Miss):
                    self.rej.miss(dev.id, opt)
                    continue
                devices = max(w.fleet_size or 1, replicas_for(rps, opt, a.edge_average_utilization))
                cost = costs.edge_monthly(dev.price_usd, dev.power_w, devices, a)
                cand = Candidate("edge", "edge", None, dev.id, dev.id, 1, opt, devices, devices, "buy", cost, 0.0,
                                 role=role, traffic_fraction=fraction)
                if self._budget_ok(cand, f"{dev.id} {dtype}"):
                    out.append(cand)
        return out

    # -------------------------------------------------------------------------------------------- hybrid
    def hybrids(self, rps: float) -> list[Hybrid]:
        """(a) sensitive share on-prem/edge + rest in cloud; (b) local share on edge + cloud fallback."""
        w, c = self.spec.workload, self.spec.constraints
        assert w.kind == "inference"
        out: list[Hybrid] = []
        if c.privacy == "air-gapped" or ("cloud" not in c.placements and "hybrid" not in c.placements):
            return out
        splits: list[tuple[str, float, str]] = []
        if 0 < w.sensitive_traffic_fraction < 1:
            splits.append(("sensitive", w.sensitive_traffic_fraction, "burst"))
        if 0 < w.local_traffic_fraction < 1:
            splits.append(("local", w.local_traffic_fraction, "fallback"))
        for local_role, share, cloud_role in splits:
            local = self.onprem(rps * share, role=local_role, fraction=share) if local_role == "sensitive" else []
            local += self.edge(rps * share, role=local_role, fraction=share)
            # the non-sensitive remainder may use any cloud region the residency rules allow
            remote = self.cloud(rps * (1 - share), privacy_check=False, role=cloud_role, fraction=1 - share)
            if not local or not remote:
                continue
            best_local = min(local, key=lambda x: x.monthly)
            best_remote = min(remote, key=lambda x: x.monthly)
            h = Hybrid((best_local, best_remote))
            if self._budget_ok(h, f"hybrid {best_local.instance}+{best_remote.instance}"):
                out.append(h)
        return out


def search_inference(spec: Spec, catalog: Catalog, ev: OptionEvaluator) -> SearchResult:
    s = Search(spec, catalog, ev)
    rps = required_rps(spec)
    placements = set(spec.constraints.placements)
    found: list[Candidate | Hybrid] = []
    if "cloud" in placements:
        found.extend(s.cloud(rps))
    else:
        s.rej.add("cloud", "placement", "cloud: not in the spec's allowed placements")
    if "on-prem" in placements:
        found.extend(s.onprem(rps))
    else:
        s.rej.add("on-prem", "placement", "on-prem: not in the spec's allowed placements")
    if "edge" in placements:
        found.extend(s.edge(rps))
    else:
        s.rej.add("edge", "placement", "edge: not in the spec's allowed placements")
    if "hybrid" in placements:
        found.extend(s.hybrids(rps))
    return SearchResult(found, s.rej, s.searched, s.near)

