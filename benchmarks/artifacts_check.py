"""Print, over every example and N random recommended plans: pods checked, unschedulable pods, dangling references,
unfilled volumes, Service-port and probe mismatches, and what the plans leave to the user.

    .venv/bin/python benchmarks/artifacts_check.py [--random 200] [--seed 0] [--markdown]

Each plan's folder is written by the real writer (``preview=False``, charts skipped); its ``k8s/*.yaml`` are
judged against the cluster its Pulumi program creates (run under Pulumi's own mocks) by the checks of
``tests/stacks/scheduling.py`` (the same module the tests use). Random plans: specs drawn from
``tests.fuzz_strategies.valid_spec_data`` with a fixed seed, recommended by the real optimizer, the top plan of each
feasible spec. A plan the emitters refuse with
a typed error (a TensorRT-LLM replica spanning nodes, a sole-tenant GKE pool) is counted as refused with its
reason. Goal: 0 unschedulable, 0 dangling, 0 unfilled. Exit status 1 otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _check(spec: Any, rec: Any, cat: Any, work: Path, name: str) -> tuple[Any, str | None]:
    from planner.errors import MlplanError
    from stacks import manifests
    from stacks.writer import write_plan_folder
    from tests.security.audit import mock_run
    from tests.stacks import scheduling

    plan = rec.plans[0]
    folder = work / name
    try:
        write_plan_folder(spec, rec, folder, catalog=cat, preview=False)
        resources = mock_run(plan)
    except MlplanError as e:
        return None, f"{type(e).__name__}: {e.message}"
    except Exception as e:  # the Pulumi mock runtime wraps the program's own errors
        return None, f"{type(e).__name__}: {str(e).splitlines()[-1] if str(e) else ''}"
    rendered = scheduling.read_folder(folder)
    rep = scheduling.check(plan, rendered, scheduling.cluster_model(plan, resources),
                           manifests.user_provided(plan, rendered))
    shutil.rmtree(folder, ignore_errors=True)
    return rep, None


def random_specs(n_specs: int, seed: int) -> list[dict[str, Any]]:
    """``n_specs`` spec documents drawn from the fuzz strategy, deterministically for ``seed``."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    from tests.fuzz_strategies import valid_spec_data

    out: list[dict[str, Any]] = []

    @hseed(seed)
    @settings(max_examples=n_specs, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(data=valid_spec_data())
    def draw(data: dict[str, Any]) -> None:
        out.append(data)

    draw()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--random", type=int, default=200, help="random recommended plans to check (default 200)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # pulumi-aws / pulumi-gcp import-time aliases
    from stacks import writer

    writer._charts = lambda *a, **k: []  # the SVG charts are not under test here, and take most of a write
    from planner.catalog import Catalog
    from planner.errors import InfeasibleError, SpecError
    from planner.optimizer import recommend
    from planner.specs import load_spec, spec_from_data
    from tests.security.audit import example_specs

    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="mlplan-artifacts-"))
    rows: list[tuple[str, Any, str | None]] = []
    try:
        for path in example_specs():
            spec = load_spec(path)
            cat = Catalog.load(spec.catalog_overlay)
            rep, why = _check(spec, recommend(spec, cat, top=1), cat, work, path.stem)
            rows.append((f"example {path.stem}", rep, why))
        checked, drawn = 0, 0
        for data in random_specs(args.random * 6, args.seed):
            if checked >= args.random:
                break
            drawn += 1
            try:
                spec = spec_from_data(data, source="spec")
                cat = Catalog.load(spec.catalog_overlay)
                rec = recommend(spec, cat, top=1)
            except (InfeasibleError, SpecError):
                continue
            checked += 1
            rep, why = _check(spec, rec, cat, work, f"random-{checked}")
            rows.append((f"random {checked}: {rec.plans[0].id}", rep, why))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = [r for _, r, _ in rows if r is not None]
    refused = Counter(str(why) for _, r, why in rows if r is None)
    totals = {k: sum(len(getattr(r, k)) for r in ok) for k in ("unschedulable", "dangling", "unfilled", "ports",
                                                             "probes")}
    pods = sum(r.pods for r in ok)
    inputs = sum(r.user_inputs for r in ok)
    sep = " | " if args.markdown else "  "
    header = ["plans", "pods", "unschedulable", "dangling refs", "unfilled volumes", "port mismatches",
              "probe mismatches", "user inputs", "refused"]
    values = [len(rows), pods, totals["unschedulable"], totals["dangling"], totals["unfilled"], totals["ports"],
              totals["probes"], inputs, sum(refused.values())]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---:|" * len(header))
        print("| " + " | ".join(map(str, values)) + " |")
    else:
        widths = [max(len(h), len(str(v))) for h, v in zip(header, values, strict=True)]
        print(sep.join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
        print(sep.join(str(v).rjust(w) for v, w in zip(values, widths, strict=True)))
    print(f"\n{sum(1 for n, _, _ in rows if n.startswith('example'))} examples, "
          f"{sum(1 for n, _, _ in rows if n.startswith('random'))} random plans (seed {args.seed}), "
          f"{time.perf_counter() - t0:.0f} s")
    for why, n in refused.most_common():
        print(f"refused x{n}: {why}")
    for name, rep, _ in rows:
        if rep is not None and rep.problems():
            print(f"{name}:")
            for p in rep.problems():
                print(f"    {p}")
    return 1 if any(totals[k] for k in ("unschedulable", "dangling", "unfilled")) else 0


if __name__ == "__main__":
    raise SystemExit(main())
