"""The optimizer: search every catalog option for a spec and return the cheapest plans that meet it.

``recommend(spec)`` returns a :class:`~planner.plan.Recommendation`: plans sorted by monthly cost (the top one is
the true minimum over all feasible candidates), the cost-vs-latency Pareto front marked, and one reason per
rejected option. No feasible plan raises :class:`~planner.errors.InfeasibleError` with the binding constraints
and the closest miss for each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from planner.catalog import Catalog
from planner.errors import InfeasibleError
from planner.models import resolve
from planner.optimizer import assemble
from planner.optimizer.costs import CostBreakdown
from planner.optimizer.options import OptionEvaluator
from planner.optimizer.search import Candidate, Hybrid, Rejections, SearchResult, search_inference
from planner.optimizer.slo import LoadFigures, SloSizer
from planner.optimizer.training import TrainCandidate, search_training
from planner.plan import Plan, Recommendation, Rejected
from planner.privacy import check_names
from planner.specs import Spec

__all__ = ["pareto_front", "recommend"]

MAX_VARIANTS = 20
MAX_PASSES = 12
"""Search passes that refine replica counts (each follows at least one refinement)."""
MAX_REFINEMENTS = 60
"""Refinements between two search passes (each raises at least one shown plan's shape one tier)."""
DTYPE_RANK = {"bf16": 0, "fp16": 1, "fp32": 2, "fp8": 3, "int8": 4, "int4": 5}


def _latency(c: Candidate | Hybrid | TrainCandidate) -> float:
    """The latency a plan is ranked and put on the Pareto front by: the simulated p50 TTFT (LLMs) or end-to-end
    latency at the planned load once known, else the idle figure (a lower bound on it)."""
    if isinstance(c, TrainCandidate):
        return c.time_s
    o = (c.parts[0] if isinstance(c, Hybrid) else c).option
    load: LoadFigures | None = o.load
    if load is not None:
        return load.ttft[0] if load.ttft is not None else load.latency[0]
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


def _rank(found: list[Candidate | Hybrid | TrainCandidate], top: int
          ) -> tuple[list[Candidate | Hybrid | TrainCandidate], list[bool], dict[tuple[object, ...], list[str]]]:
    """Sort, collapse families and same-shape variants, and keep the top plans plus the Pareto front:
    (chosen, on the front, variants per shape key)."""
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
    return chosen, chosen_front, kept


def _parts(c: Candidate | Hybrid | TrainCandidate) -> tuple[Candidate, ...]:
    if isinstance(c, TrainCandidate):
        return ()
    return c.parts if isinstance(c, Hybrid) else (c,)


def _search_sized(spec: Spec, cat: Catalog, ev: OptionEvaluator, top: int) -> tuple[SearchResult, SloSizer]:
    """The inference search, refined until every plan that ranks is sized by simulation.

    Each candidate is sized at the tier its shape has reached (:mod:`planner.optimizer.slo`: 0 utilization,
    1 closed-form bound, 2 simulated), each a lower bound on the replica count of the next, so a candidate's cost
    can only rise as it is refined. The shapes of the plans that would be shown (the top plans and the Pareto
    front) that are not simulated yet go up one tier (all tier-0 ones first: they cost no simulation), and the
    ranking is redone: with each candidate's cost rescaled by its new node count between searches, and with the
    real costs from a new search pass once no shown plan is left to refine. It stops when a search pass shows only
    simulated plans: any candidate left unsimulated already costs at least as much as the last shown plan by its
    lower bound, so the ranking is the one a simulation of every candidate would give."""
    sizer = SloSizer(spec, ev)
    res = search_inference(spec, cat, ev, sizer)
    for _ in range(MAX_PASSES):
        cands: list[Candidate | Hybrid | TrainCandidate] = list(res.candidates)
        refined = False
        for _ in range(MAX_REFINEMENTS):
            if not cands:
                break
            chosen, _, _ = _rank(cands, top)
            pending = {p.option.sizing_key for c in chosen for p in _parts(c) if p.option.tier < 2}
            if not pending:
                break
            if any(sizer.tier(k) == 0 for k in pending):
                # every candidate whose bound is below the dearest plan shown will be compared: bound them all now
                # (no simulation), rather than a few per ranking
                limit = max(c.monthly for c in chosen)
                pending = {p.option.sizing_key for c in cands if c.monthly <= limit for p in _parts(c)
                           if p.option.tier == 0}
            for k in sorted(pending, key=repr):
                sizer.promote(k)
            refined = True
            cands = [r for c in cands if (r := _resized(c, sizer)) is not None]
        if not refined:
            break
        res = search_inference(spec, cat, ev, sizer)
    else:  # out of passes (never seen on the examples): the ranking may be off, but every shown plan is simulated
        chosen, _, _ = _rank(list(res.candidates), top)
        for k in sorted({p.option.sizing_key for c in chosen for p in _parts(c) if p.option.tier < 2}, key=repr):
            while sizer.tier(k) < 2 and sizer.current(k) is not None:
                sizer.promote(k)
        res = search_inference(spec, cat, ev, sizer)
    return res, sizer


def _resized(c: Candidate | Hybrid | TrainCandidate, sizer: SloSizer
             ) -> Candidate | Hybrid | TrainCandidate | None:
    """The candidate at its sizing's current replica count, its cost scaled by the node count (an estimate used
    only to decide what to refine next; a search pass gives the real cost)."""
    if isinstance(c, TrainCandidate):
        return c
    if isinstance(c, Hybrid):
        parts = [_resized(p, sizer) for p in c.parts]
        return None if any(p is None for p in parts) else Hybrid(tuple(p for p in parts if isinstance(p, Candidate)))
    key = c.option.sizing_key
    if key is None:
        return c
    now = sizer.current(key)
    if now is None:
        return None
    opt, n = now
    if n == c.replicas:
        return replace(c, option=opt)
    g, per = c.side.gpus_per_node, opt.gpus
    nodes = n if c.placement == "edge" else math.ceil(n / (g // per)) if per <= g else n * (per // g)
    scale = nodes / max(1, c.nodes)
    return replace(c, option=opt, replicas=n, nodes=nodes,
                   cost=CostBreakdown(c.cost.total * scale, c.cost.lines))


def _with_load(c: Candidate, sizer: SloSizer) -> Candidate:
    """The candidate with its option's figures at the planned load (simulated now if they were not)."""
    key = c.option.sizing_key
    if key is None:
        return c
    sizer.figures(key)
    return replace(c, option=sizer.option(key))


def recommend(spec: Spec, catalog: Catalog | None = None, *, top: int = 10) -> Recommendation:
    cat = catalog if catalog is not None else Catalog.load(spec.catalog_overlay)
    check_names(spec.constraints, cat)
    arch = resolve(spec.model)
    ev = OptionEvaluator(arch, spec.workload, spec.constraints)  # type: ignore[arg-type]
    found: list[Candidate | Hybrid | TrainCandidate]
    sizer: SloSizer | None = None
    if spec.workload.kind == "training":
        tr, rej, searched = search_training(spec, cat, ev)
        found = list(tr)
        near: list[tuple[str, Candidate | Hybrid]] = []
    else:
        res, sizer = _search_sized(spec, cat, ev, top)
        found, rej, searched, near = list(res.candidates), res.rejections, res.searched, res.near_misses
    if not found:
        raise infeasible(spec, rej, near)
    chosen, chosen_front, kept = _rank(found, top)
    plans: list[Plan] = []
    for rank, (c, on_front) in enumerate(zip(chosen, chosen_front, strict=True), start=1):
        nxt = chosen[rank].monthly if rank < len(chosen) else None
        if isinstance(c, TrainCandidate):
            plan = assemble.training_plan(spec, arch, c, rank, on_front, nxt)
        else:
            assert sizer is not None
            loaded = (Hybrid(tuple(_with_load(p, sizer) for p in c.parts)) if isinstance(c, Hybrid)
                      else _with_load(c, sizer))
            headroom = _headroom(loaded, sizer)
            plan = assemble.inference_plan(spec, arch, loaded, rank, on_front, nxt, max_rps_within_slo=headroom)
        plans.append(plan.model_copy(update={"variants": tuple(kept[_shape_key(c)][:MAX_VARIANTS])}))
    return Recommendation(
        spec_name=spec.name, catalog_version=cat.version, candidates_searched=searched, plans=tuple(plans),
        rejected=_rejected(rej),
    )


def _headroom(c: Candidate | Hybrid, sizer: SloSizer) -> float | None:
    """The highest total request rate at which every part still meets the SLOs: each part's own headroom over
    the share of traffic it receives, the smallest of them (None when the spec has no latency SLO)."""
    out: float | None = None
    for p in _parts(c):
        key = p.option.sizing_key
        if key is None:
            return None
        h = sizer.max_rps_within_slo(key)
        if h is None:
            return None
        total = h / max(1e-12, p.side.traffic_fraction)
        out = total if out is None else min(out, total)
    return out


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
