"""Every offered plan can be written and read back: N random valid specs -> recommend -> plan --plan-index i for
each of the top plans -> load the folder (the one plan-folder reader). Goal: 0 failures.

The specs come from the same hypothesis strategy the tests use (tests/fuzz_strategies.valid_spec_data), drawn
with a fixed seed; the plan folders are written without the offline Pulumi preview (the manifests, serving
artifacts, PLAN.md and charts are all written; the preview adds seconds per plan and is covered by its own tests).

Usage: ``python benchmarks/plan_roundtrip.py [N] [--top K] [--seed S]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from planner.catalog import Catalog
    from planner.errors import MlplanError
    from tests.fuzz_strategies import valid_spec_data
    from tests.roundtrip import roundtrip

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=1000)
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20261130)
    args = ap.parse_args()
    cat = Catalog.load()
    rng = random.Random(args.seed)
    strategy = valid_spec_data()
    counts: Counter[str] = Counter()
    failures: list[str] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlplan-roundtrip-") as work:
        for i in range(args.n):
            data = draw(strategy, rng.getrandbits(64))
            try:
                out = roundtrip(data, top=args.top, catalog=cat, workdir=Path(work))
            except MlplanError as e:  # a spec the loader refuses (a preset's own constraint) is not an offered plan
                counts[f"refused: {type(e).__name__}"] += 1
                continue
            counts["infeasible" if out.infeasible else "feasible"] += 1
            counts["plans written"] += out.plans
            counts["plan failures"] += len(out.failures)
            failures += [f"spec {i}: {f}" for f in out.failures]
            if (i + 1) % 100 == 0:
                print(f"  {i + 1} specs, {counts['plans written']} plans, {len(failures)} failures, "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
    print(f"plan round trip: {args.n} random specs (seed {args.seed}), top {args.top} plans each, "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"{'outcome':<28} {'count':>7}")
    for k, v in sorted(counts.items()):
        print(f"{k:<28} {v:>7}")
    for f in failures[:30]:
        print("  " + f)
    return 1 if failures else 0


def draw(strategy: Any, seed: int) -> Any:
    """One value of a hypothesis strategy, reproducible from ``seed``."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as with_seed

    box: list[Any] = []

    @with_seed(seed)
    @settings(max_examples=1, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def pick(value: Any) -> None:
        box.append(value)

    pick()
    return box[-1]


if __name__ == "__main__":
    raise SystemExit(main())
