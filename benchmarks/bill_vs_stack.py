"""For every example, the billable resources its stack creates against the cost lines of its bill.

    .venv/bin/python benchmarks/bill_vs_stack.py [--no-providers] [--factories] [--markdown] [--types]

Each example's chosen plan (and, unless ``--no-providers``, its best plan on each cloud it may use) is run through
its Pulumi program under Pulumi's mocks (GKE / AKS parts through the GCP / Azure components where the program does
not build them yet); every recorded resource is mapped by ``planner.optimizer.bill.resource_kinds`` to the cost
kinds it implies or to a free entry. Columns: resources recorded, how many are free, the billable resource types,
the cost kinds the bill has, and the goal columns: **missing** (a billable resource whose kind the bill lacks) and
**unmapped** (a type no rule covers), both 0. ``billed only`` lists kinds billed with no resource implying them
in today's stack (traffic lines, and resources the stack is expected to grow: system pools, serving load
balancers, model-cache volumes). ``--types`` also prints every resource type seen with its rule.
Exit status 1 if anything is missing or unmapped.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.optimizer.bill import Free, parts_of, resource_kinds
from tests import billcheck


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--no-providers", action="store_true", help="only each example's chosen plan")
    ap.add_argument("--factories", action="store_true", help="also every factory plan of tests/stacks/conftest.py")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--types", action="store_true", help="also print every resource type seen and its rule")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # pulumi-aws / pulumi-gcp import-time aliases
    t0 = time.perf_counter()
    rows: list[list[str]] = []
    bad = 0
    seen: dict[str, set[str]] = defaultdict(set)
    for case in billcheck.cases(providers=not args.no_providers, factories=args.factories):
        result, resources = billcheck.check(case.plan)
        targets = [p.target for p in case.plan.parts]
        rules = [(r, resource_kinds(r, parts_of(r["name"], case.plan.parts)[0].target)) for r in resources]
        billable = sorted({r["type"].split(":")[-1] for r, rule in rules if isinstance(rule, tuple) and rule})
        for r, rule in rules:
            seen[r["type"]].add("FREE: " + rule.reason if isinstance(rule, Free)
                                else "UNMAPPED" if rule is None else ", ".join(rule) or "-")
        billed = sorted(set().union(*result.billed.values()))
        only = sorted(set().union(*result.billed_not_created().values()))
        n_free = sum(isinstance(rule, Free) for _, rule in rules)
        bad += len(result.missing) + len(result.unmapped)
        rows.append([case.label, "+".join(targets), str(len(resources)), str(n_free),
                     " ".join(billable) or "-", str(len(billed)),
                     str(len(result.missing)) + ("" if not result.missing else " (" + ", ".join(
                         sorted({f"{f.type.split(':')[-1]}:{f.kind}" for f in result.missing})) + ")"),
                     str(len(result.unmapped)) + ("" if not result.unmapped else " (" + ", ".join(
                         sorted({f.type for f in result.unmapped})) + ")"),
                     " ".join(only) or "-", f"{case.plan.cost.monthly_usd:,.0f}"])
    head = ["case", "target", "resources", "free", "billable resource types", "cost kinds", "missing",
            "unmapped", "billed only", "USD/month"]
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        for r in (head, *rows):
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    if args.types:
        print()
        for typ in sorted(seen):
            print(f"{typ}: {' / '.join(sorted(seen[typ]))}")
    print(f"\n{len(rows)} plans, {bad} billable resource(s) missing or unmapped (goal 0); "
          f"{time.perf_counter() - t0:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
