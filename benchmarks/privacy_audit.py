"""Privacy audit: for every plan mlplan offers, the share of traffic that could reach a shared cloud or a region
outside residency. Goal: exactly 0.

Over every example spec and N random restricted, air-gapped and confidential specs (seeded), each offered plan's
parts are checked against the catalog itself (not the geography the plan claims):

- ``shared``: traffic of the spec's data class on a cloud part where that class may not be: any cloud for
  air-gapped data; a cloud part without dedicated tenancy for restricted data. Requests marked public (a hybrid's
  ``marked-public`` side) carry public data and are not counted.
- ``residency``: traffic of any class on a cloud part whose region is outside ``allowed_regions`` (by region id or
  the catalog's geography), or on an on-prem site of another geography.

Usage: ``python benchmarks/privacy_audit.py [N] [--seed S]``; prints a table and exits 1 if any share is above 0.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner.catalog import Catalog  # noqa: E402
from planner.errors import InfeasibleError  # noqa: E402
from planner.optimizer import recommend  # noqa: E402
from planner.plan import Plan  # noqa: E402
from planner.specs import Spec, read_yaml, spec_from_data  # noqa: E402

PRESETS = ("llama-3-8b", "mistral-7b", "llama-3.2-3b", "qwen3-8b", "phi-3-mini", "qwen3-30b-a3b")
GEOGRAPHIES = ("eu", "us", "uk", "apac", "ca")


def random_spec(rng: random.Random, cat: Catalog, i: int) -> dict[str, Any]:
    regions = sorted({r.region for r in cat.regions.values()})
    privacy = rng.choice(("restricted", "air-gapped", "confidential"))
    allowed: list[str] | None = None
    if rng.random() < 0.8:
        allowed = rng.sample(GEOGRAPHIES, rng.randint(1, 2)) if rng.random() < 0.7 else rng.sample(regions, 3)
    split = rng.choice(("none", "sensitive", "local"))
    workload: dict[str, Any] = {"kind": "inference", "requests_per_s": round(rng.uniform(0.5, 40), 2),
                                "input_tokens": rng.choice((256, 1024, 2048)), "output_tokens": rng.choice((64, 256)),
                                "peak_to_average": rng.choice((1.0, 1.5, 2.0))}
    if split == "sensitive":
        workload["sensitive_traffic_fraction"] = round(rng.uniform(0.1, 0.9), 2)
    elif split == "local":
        workload["local_traffic_fraction"] = round(rng.uniform(0.1, 0.9), 2)
    constraints: dict[str, Any] = {"privacy": privacy, "dedicated_tenancy": rng.random() < 0.6,
                                   "ttft_s": rng.choice((0.5, 1.0, 2.0)), "tpot_s": rng.choice((0.05, 0.1)),
                                   "placements": rng.sample(["cloud", "on-prem", "edge", "hybrid"], rng.randint(1, 4))}
    if allowed is not None:
        constraints["allowed_regions"] = allowed
    return {"name": f"audit-{i}", "model": {"preset": rng.choice(PRESETS)}, "workload": workload,
            "constraints": constraints}


def leaks(plan: Plan, spec: Spec, cat: Catalog) -> tuple[float, float]:
    """(shared-cloud share, outside-residency share) of the plan's traffic."""
    c = spec.constraints
    names = {a.lower() for a in c.allowed_regions} if c.allowed_regions is not None else None
    shared = outside = 0.0
    for p in plan.parts:
        if p.placement == "cloud":
            receives_class = p.routing != "marked-public"
            dedicated = p.tenancy == "dedicated"
            if receives_class and (c.privacy == "air-gapped" or (c.privacy == "restricted" and not dedicated)):
                shared += p.traffic_fraction
            geography = cat.region(p.provider, p.region or "").geography  # the catalog's, not the plan's claim
            if names is not None and not ({(p.region or "").lower(), geography,
                                           f"{p.provider}:{p.region}".lower()} & names):
                outside += p.traffic_fraction
        elif p.placement == "on-prem" and names is not None:
            site = next((s for s in cat.onprem_servers if s.sku == p.instance), None)
            geo = site.geography if site is not None else "any"
            if geo != "any" and geo not in names and (p.region or "").lower() not in names:
                outside += p.traffic_fraction
    return shared, outside


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=500, help="random specs (default 500)")
    ap.add_argument("--seed", type=int, default=20261130)
    args = ap.parse_args()
    base = Catalog.load()
    rng = random.Random(args.seed)
    specs: list[tuple[str, Spec, Catalog]] = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        if path.name.endswith(".catalog.yaml"):
            continue
        data = read_yaml(path)
        if data.get("catalog_overlay"):
            data["catalog_overlay"] = str(path.parent / data["catalog_overlay"])
        spec = spec_from_data(data, source=path.name)
        specs.append((f"example {path.stem}", spec, Catalog.load(spec.catalog_overlay)))
    for i in range(args.n):
        specs.append(("random", spec_from_data(random_spec(rng, base, i)), base))
    counts: Counter[str] = Counter()
    worst: list[str] = []
    plans = hybrids = 0
    t0 = time.perf_counter()
    for label, spec, cat in specs:
        try:
            rec = recommend(spec, cat, top=10)
        except InfeasibleError:
            counts[f"{label}: infeasible"] += 1
            continue
        for plan in rec.plans:
            plans += 1
            hybrids += plan.placement == "hybrid"
            shared, outside = leaks(plan, spec, cat)
            key = f"{spec.constraints.privacy}"
            counts[f"plans {key}"] += 1
            if shared or outside:
                counts[f"LEAK {key}"] += 1
                worst.append(f"{spec.name} {plan.id}: shared {shared:.0%}, outside residency {outside:.0%}")
    elapsed = time.perf_counter() - t0
    print(f"privacy audit: {len(specs)} specs ({args.n} random, seed {args.seed}), {plans} offered plans "
          f"({hybrids} hybrid), {elapsed:.0f} s")
    print(f"{'outcome':<32} {'count':>7}")
    for k, v in sorted(counts.items()):
        print(f"{k:<32} {v:>7}")
    print(f"{'plans with any leak':<32} {len(worst):>7}")
    for w in worst[:20]:
        print("  " + w)
    return 1 if worst else 0


if __name__ == "__main__":
    raise SystemExit(main())
