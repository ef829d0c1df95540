"""The optimizer: search every catalog option for a spec and return the cheapest plans that meet it.

``recommend(spec)`` returns a :class:`~planner.plan.Recommendation`: plans sorted by monthly cost (the top one is
the true minimum over all feasible candidates), the cost-vs-latency Pareto front marked, and one reason per
rejected option. No feasible plan raises :class:`~planner.errors.InfeasibleError` with the binding constraints
and the closest miss for each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from planner.catalog import Catalog
from planner.errors import InfeasibleError
from planner.models import resolve
from planner.optimizer import assemble
from planner.optimizer.options import OptionEvaluator
from planner.optimizer.search import Candidate, Hybrid, Rejections, search_inference
from planner.optimizer.training import TrainCandidate, search_training
from planner.plan import Plan, Recommendation, Rejected
from planner.privacy import check_names
from planner.specs import Spec

__all__ = ["pareto_front", "recommend"]

MAX_VARIANTS = 20
DTYPE_RANK = {"bf16": 0, "fp16": 1, "fp32": 2, "fp8": 3, "int8": 4, "int4": 5}


def _latency(c: Candidate | Hybrid | TrainCandidate) -> float:
    if isinstance(c, TrainCandidate):
        return c.time_s
    o = (c.parts[0] if isinstance(c, Hybrid) else c).option
    return o.ttft_s if o.ttft_s is not None else (o.latency_s or 0.0)


def _key(c: Candidate | Hybrid | TrainCandidate) -> tuple[object, ...]:
    """Sort key: cost, then higher precision (quality at no extra cost), then latency, then a stable id.

    Training: cost, then the smallest cluster (with a fixed MFU the cost of a run does not depend on the
    cluster size, and a smaller one is easier to get and fails less), then the least model parallelism (TP/PP
    add communication on the critical path), then the lowest ZeRO stage (stages 1-2 move the same bytes as plain
    data parallel, stage 3 1.5x: Rajbhandari et al. 2020, section 7).
    """
    if isinstance(c, TrainCandidate):
        return (round(c.monthly, 6), c.nodes, c.tp * c.pp, c.pp, c.zero, c.time_s, c.instance, c.region or "")
    first = c.parts[0] if isinstance(c, Hybrid) else c
    ident = tuple((p.instance, p.region or "", p.option.dtype, p.option.tp, p.option.pp, p.option.ep, p.purchase)
                  for p in (c.parts if isinstance(c, Hybrid) else (c,)))
    return (round(c.monthly, 6), DTYPE_RANK.get(first.option.dtype, 9), round(_latency(c), 9), ident)


def _family(c: Candidate | Hybrid | TrainCandidate) -> tuple[object, ...]:
    """Candidates that differ only by region (same price class) collapse to the cheapest one in the output."""
    if isinstance(c, TrainCandidate):
        return ("t", c.instance, c.nodes, c.tp, c.pp, c.zero, c.purchase)
    if isinstance(c, Hybrid):
        return ("h", *((p.instance, p.option.dtype, p.option.tp, p.option.pp, p.role) for p in c.parts))
    return ("c", c.placement, c.instance, c.option.dtype, c.option.tp, c.option.pp, c.purchase)


def _shape_key(c: Candidate | Hybrid | TrainCandidate) -> tuple[object, ...]:
    """What a reader compares: the hardware and its sharding, not the tie-broken details. Options with the same
    key differ only in precision at the same cost, or are the same shape in a pricier instance size (or, for
    training, the same run on more nodes at the same cost): they are listed as the kept plan's variants."""
    if isinstance(c, TrainCandidate):
        return ("t", c.provider, c.accelerator, c.gpus_per_node, c.tp, c.pp, c.purchase)
    parts = c.parts if isinstance(c, Hybrid) else (c,)
    return ("s", *((p.placement, p.provider, p.accelerator, p.gpus_per_node, p.option.tp, p.option.pp, p.option.ep,
                    p.replicas, p.nodes, p.purchase, p.role) for p in parts))


def _variant(c: Candidate | Hybrid | TrainCandidate) -> str:
    if isinstance(c, TrainCandidate):
        return (f"{c.nodes} x {c.instance} {c.provider}/{c.region} ZeRO-{c.zero}: {c.time_s / 3600:.1f} h, "
                f"${c.monthly:,.0f}")
    parts = c.parts if isinstance(c, Hybrid) else (c,)
    return " + ".join(f"{p.instance} {p.provider}/{p.region or 'fleet'} {p.option.dtype}" for p in parts) + \
        f": ${c.monthly:,.0f}/month"


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Mask of points not dominated in (cost, latency): no other point is <= in both and < in one."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    mask = [False] * len(points)
    best_lat = math.inf
    for i in order:
        lat = points[i][1]
        if lat < best_lat:
            mask[i] = True
            best_lat = lat
    return mask


def recommend(spec: Spec, catalog: Catalog | None = None, *, top: int = 10) -> Recommendation:
    cat = catalog if catalog is not None else Catalog.load(spec.catalog_overlay)
    check_names(spec.constraints, cat)
    arch = resolve(spec.model)
    ev = OptionEvaluator(arch, spec.workload, spec.constraints)  # type: ignore[arg-type]
    found: list[Candidate | Hybrid | TrainCandidate]
    if spec.workload.kind == "training":
        tr, rej, searched = search_training(spec, cat, ev)
        found = list(tr)
        near: list[tuple[str, Candidate | Hybrid]] = []
    else:
        res = search_inference(spec, cat, ev)
        found, rej, searched, near = list(res.candidates), res.rejections, res.searched, res.near_misses
    if not found:
        raise infeasible(spec, rej, near)
    found.sort(key=_key)
    seen: set[tuple[object, ...]] = set()
    kept: dict[tuple[object, ...], list[str]] = {}  # shape key -> the variants collapsed into its plan
    distinct: list[Candidate | Hybrid | TrainCandidate] = []
    for c in found:
        f = _family(c)
        if f in seen:
            continue
        seen.add(f)
        shape_key = _shape_key(c)
        if shape_key in kept:
            kept[shape_key].append(_variant(c))
            continue
        kept[shape_key] = []
        distinct.append(c)
    front = pareto_front([(c.monthly, _latency(c)) for c in distinct])
    chosen = [c for i, c in enumerate(distinct) if i < top or front[i]]
    chosen_front = [front[i] for i, c in enumerate(distinct) if i < top or front[i]]
    plans: list[Plan] = []
    for rank, (c, on_front) in enumerate(zip(chosen, chosen_front, strict=True), start=1):
        nxt = chosen[rank].monthly if rank < len(chosen) else None
        if isinstance(c, TrainCandidate):
            plan = assemble.training_plan(spec, arch, c, rank, on_front, nxt)
        else:
            plan = assemble.inference_plan(spec, arch, c, rank, on_front, nxt)
        plans.append(plan.model_copy(update={"variants": tuple(kept[_shape_key(c)][:MAX_VARIANTS])}))
    return Recommendation(
        spec_name=spec.name, catalog_version=cat.version, candidates_searched=searched, plans=tuple(plans),
        rejected=_rejected(rej),
    )


def _rejected(rej: Rejections) -> tuple[Rejected, ...]:
    return tuple(
        Rejected(option=label, constraint=constraint, reason=reason.removeprefix(f"{label}: "))
        for (label, constraint), reason in sorted(rej.items.items())
    )


def infeasible(spec: Spec, rej: Rejections, near: list[tuple[str, Candidate | Hybrid]]) -> InfeasibleError:
    """Name each binding constraint with its closest miss."""
    c = spec.constraints
    binding: list[str] = []
    budget = [x for k, x in near if k == "budget"]
    if budget and c.budget_usd_per_month is not None:
        best = min(budget, key=lambda x: x.monthly)
        first = best.parts[0] if isinstance(best, Hybrid) else best
        binding.append(f"budget: the cheapest option meeting every other constraint ({first.instance}, "
                       f"{first.option.dtype}) costs ${best.monthly:,.0f}/month, "
                       f"budget is ${c.budget_usd_per_month:,.0f}")
    by_kind: dict[str, list[tuple[float, float, str, str]]] = {}
    for m, label in rej.misses:
        ratio = m.value / m.limit if m.limit else math.inf
        by_kind.setdefault(m.constraint, []).append((ratio, m.value, label, m.reason))
    if "latency" in by_kind:
        ratio, _, _, reason = min(by_kind["latency"])
        binding.append(f"latency: closest miss {reason} ({ratio:.2f}x the SLO)")
    if "memory" in by_kind and not budget and "latency" not in by_kind:
        ratio, _, _, reason = min(by_kind["memory"])
        binding.append(f"memory: closest miss {reason}")
    privacy = sum(1 for (_, k) in rej.items if k in ("privacy", "residency"))
    if privacy:
        binding.append(f"privacy/residency: {privacy} cloud/on-prem options excluded by privacy '{c.privacy}'"
                       + (f" and regions {', '.join(c.allowed_regions)}" if c.allowed_regions else ""))
    for k in ("precision", "capacity", "training-time", "placement"):
        reasons = sorted(r for (_, kind), r in rej.items.items() if kind == k)
        if reasons:
            binding.append(f"{k}: {reasons[0]}" + (f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""))
    if not binding:
        binding.append("no option in the catalog matches the spec's placements and providers")
    fixes = {
        "budget": "raise budget_usd_per_month", "latency": "relax ttft_s/tpot_s/latency_s or allow fp8/int8",
        "memory": "allow int8/int4 (max_accuracy_loss: moderate) or larger GPUs",
        "privacy/residency": "allow more regions or dedicated tenancy", "precision": "allow more precisions",
        "capacity": "add servers to the inventory", "training-time": "raise target_wall_time_h",
        "placement": "allow more placements",
    }
    fix = "; ".join(dict.fromkeys(fixes[b.split(":")[0]] for b in binding if b.split(":")[0] in fixes))
    return InfeasibleError("no plan meets every constraint: " + " | ".join(binding), binding=binding,
                           fix=fix or "relax the constraints")
