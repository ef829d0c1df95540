"""Training search: data parallel with a ZeRO/FSDP stage, plus tensor/pipeline parallel when the model states
do not fit (Rajbhandari et al. 2020; Narayanan et al. 2021). Cost is one run: node-hours x price."""

from __future__ import annotations

from dataclasses import dataclass

from planner.catalog import Catalog
from planner.catalog.schema import Accelerator, Instance, OnPremServer
from planner.estimator import estimate_training
from planner.optimizer import costs
from planner.optimizer.bill import CloudPart
from planner.optimizer.options import OptionEvaluator, dtype_supported
from planner.optimizer.search import Rejections, Search, Side, shapes
from planner.optimizer.targets import deploy_target
from planner.plan import Target
from planner.specs import Spec, TrainingWorkload

NODE_COUNTS = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass(frozen=True, slots=True)
class TrainCandidate:
    side: Side
    nodes: int
    tp: int
    pp: int
    dp: int
    zero: int
    dtype: str
    time_s: float
    model_states_bytes_per_gpu: int
    total_bytes_per_gpu: int
    capacity_bytes_per_gpu: int
    purchase: str
    cost: costs.CostBreakdown
    checkpointing: bool
    target: Target

    @property
    def monthly(self) -> float:
        return self.cost.total

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


def training_tokens(w: TrainingWorkload, seq_len: int) -> float:
    """Tokens to process: tokens x epochs, or samples x epochs x sequence length."""
    per_epoch = w.tokens if w.tokens is not None else (w.samples or 0.0) * seq_len
    return per_epoch * w.epochs


def search_training(spec: Spec, cat: Catalog, ev: OptionEvaluator) -> tuple[list[TrainCandidate], Rejections, int]:
    w = spec.workload
    assert isinstance(w, TrainingWorkload)
    c, a = spec.constraints, spec.assumptions
    rej = Rejections()
    out: list[TrainCandidate] = []
    searched = 0
    limit_s = (w.target_wall_time_h * 3600.0) if w.target_wall_time_h else c.max_training_days * 86400.0
    tokens = training_tokens(w, w.sequence_length)
    zeros = (w.zero_stage,) if w.zero_stage is not None else (0, 1, 2, 3)
    dtype = w.mixed_precision
    memo: dict[tuple[str, int, int, int, int], tuple[float, int, int, bool]] = {}

    def evaluate(acc: Accelerator, gpus: int, zero: int, tp: int, pp: int) -> tuple[float, int, int, bool]:
        key = (acc.id, gpus, zero, tp, pp)
        if key not in memo:
            e = estimate_training(ev.arch, ev.profile_of(acc), gpus=gpus, dtype=dtype, optimizer=w.optimizer,
                                  zero_stage=zero, tp=tp, pp=pp, micro_batch_size=w.micro_batch_size,
                                  sequence_length=w.sequence_length,
                                  activation_checkpointing=w.activation_checkpointing, tokens=tokens,
                                  mfu=a.training_mfu)
            memo[key] = (e.time_s, e.model_states_bytes_per_gpu, e.total_bytes_per_gpu, e.fits)
        return memo[key]

    search = Search(spec, cat, ev)
    search.rej = rej
    # (side, catalog row, accelerator, prices, servers on hand)
    sites: list[tuple[Side, Instance | OnPremServer, Accelerator, list[tuple[str, float]], int | None]] = []
    if "cloud" in c.placements:
        for side, inst in search.cloud_sides(data_class=c.privacy, role="training"):
            prices = [("on-demand", inst.on_demand_usd_per_h)]
            if c.allow_spot and inst.spot_usd_per_h is not None and side.tenancy != "dedicated":
                prices.append(("spot", inst.spot_usd_per_h))
            sites.append((side, inst, cat.accelerator(inst.accelerator), prices, None))
    if "on-prem" in c.placements:
        for side, srv in search.onprem_sides(data_class=c.privacy, role="training"):
            # on-prem cost of a run: the TCO of the servers for the run's duration
            sites.append((side, srv, cat.accelerator(srv.accelerator),
                          [("owned" if srv.available is not None else "buy", 0.0)], srv.available))

    def run_cost(side: Side, row: Instance | OnPremServer, target: Target, nodes: int, gpus_per_replica: int,
                 purchase: str, price: float, hours: float) -> costs.CostBreakdown:
        """The full bill of one run: the cluster and everything it creates, for the run's hours."""
        if isinstance(row, OnPremServer):
            return search.bill.onprem(row, nodes, dtype, hours=hours)
        return search.bill.cloud(CloudPart(row, target, nodes, 1, gpus_per_replica, dtype, purchase, price,
                                           side.tenancy, side.data_class, side.routing, 1.0,
                                           side.device.resource is not None), hours=hours, training=True)

    for side, row, acc, prices, cap in sites:
        name, region, g = side.instance, side.region, side.gpus_per_node
        label = f"{name} {side.provider}/{region}"
        if not dtype_supported(acc, dtype):
            rej.add(acc.id, "precision", f"{acc.id}: no {dtype} support for mixed-precision training")
            continue
        best_miss: str | None = None
        for nodes in NODE_COUNTS:
            if cap is not None and nodes > cap:
                break
            gpus = nodes * g
            # shapes in order of preference (least model parallelism, then lowest ZeRO stage): the first that fits
            # is this cluster size's plan; the others cost the same and would only be noise in the ranking
            shapes_here = sorted(
                ((tp, pp, zero) for tp, pp1 in shapes(g, acc) if pp1 == 1 for pp in (1, 2, 4, 8)
                 if pp <= nodes and gpus % (tp * pp) == 0 for zero in zeros),
                key=lambda s: (s[0] * s[1], s[1], s[2]),
            )
            for tp, pp, zero in shapes_here:
                searched += 1
                t, states, total, fits = evaluate(acc, gpus, zero, tp, pp)
                if not fits:
                    best_miss = best_miss or (f"{acc.id}: model states {states / 1e9:.1f} GB + activations "
                                              f"do not fit {acc.memory_gib:g} GiB even at {gpus} GPUs")
                    continue
                if t > limit_s:
                    best_miss = f"{label}: {t / 3600:.0f} h at {gpus} GPUs > limit {limit_s / 3600:.0f} h"
                    continue
                target = deploy_target(placement=side.placement, provider=side.provider, instance=name,
                                       runtime=side.runtime, nodes=nodes, replicas=1, gpus_per_replica=gpus,
                                       training=True)
                for purchase, price in prices:
                    cost = run_cost(side, row, target, nodes, tp * pp, purchase, price, t / 3600.0)
                    out.append(TrainCandidate(side, nodes, tp, pp, gpus // (tp * pp), zero, dtype, t, states,
                                              total, acc.memory_bytes, purchase, cost,
                                              w.activation_checkpointing, target))
                break
        if best_miss and not any(x.instance == name and x.region == region for x in out):
            rej.add(label, "training-time" if "limit" in best_miss else "memory", best_miss)
    b = c.budget_usd_per_month
    if b is not None:
        over = [x for x in out if x.monthly > b]
        for x in over:
            rej.add(f"{x.instance} {x.provider}/{x.region}", "budget",
                    f"{x.instance}: run costs ${x.monthly:,.0f} > budget ${b:,.0f}")
        out = [x for x in out if x.monthly <= b]
    return out, rej, searched

