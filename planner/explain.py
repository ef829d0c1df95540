"""Answer "why not X?" for any catalog option: the binding constraint and the numbers behind it.

The answer reuses the optimizer, the same search and sizing ``recommend`` runs: the option's best plan is the
cheapest plan that uses it in some part, among the full catalog's plans, else among the plans of the catalog with
the option's own kind (cloud instances, on-prem servers or edge devices) narrowed to it and every other kind kept,
so a hybrid still finds its other sides. Where no plan uses it, the catalog narrowed to the option alone names the
binding constraints. The best the option can
do is then compared with the overall winner.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

from planner.catalog import Catalog
from planner.errors import CatalogError, InfeasibleError
from planner.optimizer import recommend
from planner.plan import Plan, Recommendation
from planner.specs import Spec


@dataclass(frozen=True)
class Explanation:
    option: str
    feasible: bool
    verdict: str
    reasons: tuple[str, ...]
    best_for_option: Plan | None
    winner: Plan | None


def narrow(cat: Catalog, option: str) -> Catalog:
    """The catalog restricted to one option; CatalogError if the option names nothing."""
    o = option.lower()
    inst = tuple(i for i in cat.instances if o in (i.instance.lower(), i.accelerator))
    srv = tuple(s for s in cat.onprem_servers if o in (s.sku, s.accelerator))
    edge = {k: v for k, v in cat.edge_devices.items() if k == o}
    if not (inst or srv or edge):
        raise CatalogError(f"option {option!r} is not an instance type, accelerator, on-prem SKU or edge device "
                           "in the catalog",
                           fix="list them with `mlplan catalog --kind instances|accelerators|onprem|edge`")
    return replace(cat, instances=inst, onprem_servers=srv, edge_devices=edge, version=f"{cat.version}/{option}")


SEARCHED = 50
"""Plans the search around an option returns, the first of which that uses the option is its best."""


def uses(plan: Plan, option: str) -> bool:
    """Whether some part of ``plan`` runs on ``option`` (an instance type, SKU, device or accelerator id)."""
    o = option.lower()
    return any(o in (p.instance.lower(), p.accelerator.lower()) for p in plan.parts)


def around(cat: Catalog, option: str) -> Catalog:
    """The catalog with the option's own kind narrowed to it and the other kinds kept (a hybrid's other sides)."""
    only = narrow(cat, option)
    return replace(cat, instances=only.instances or cat.instances,
                   onprem_servers=only.onprem_servers or cat.onprem_servers,
                   edge_devices=only.edge_devices or cat.edge_devices, version=only.version)


def explain(spec: Spec, option: str, catalog: Catalog | None = None) -> Explanation:
    cat = catalog if catalog is not None else Catalog.load(spec.catalog_overlay)
    only = narrow(cat, option)
    winner: Plan | None
    found: list[Plan] = []
    try:
        overall: Recommendation | None = recommend(spec, cat, top=SEARCHED)
        winner = overall.plans[0] if overall else None
        found = [p for p in overall.plans if uses(p, option)] if overall else []
    except InfeasibleError:
        winner = None
    if not found:
        with contextlib.suppress(InfeasibleError):
            found = [p for p in recommend(spec, around(cat, option), top=SEARCHED).plans if uses(p, option)]
    try:
        mine = found[0] if found else recommend(spec, only, top=1).plans[0]
    except InfeasibleError as e:
        # placements the spec excludes are about other options, not this one
        reasons = tuple(b for b in e.binding if not b.startswith("placement:")) or tuple(e.binding)
        return Explanation(option, False, f"{option} cannot meet the spec", reasons, None, winner)
    if winner is None or winner.id == mine.id or mine.monthly_cost_usd <= winner.monthly_cost_usd:
        return Explanation(option, True, f"{option} is the recommended option", (mine.rationale,), mine, winner)
    delta = mine.monthly_cost_usd - winner.monthly_cost_usd
    reason = (f"cost: its best plan ({mine.replicas} x {mine.accelerator_count} {mine.accelerator}, {mine.dtype}, "
              f"{mine.nodes} node(s)) costs ${mine.monthly_cost_usd:,.0f}/month; the winner {winner.instance} "
              f"({winner.accelerator}, {winner.dtype}) costs ${winner.monthly_cost_usd:,.0f}/month "
              f"(${delta:,.0f} less, {delta / mine.monthly_cost_usd:.0%})")
    return Explanation(option, True, f"{option} is feasible but not the cheapest", (reason,), mine, winner)
