"""``mlplan recommend SPEC``: the cheapest plans that meet every constraint, and why the rest lost."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from planner.errors import InfeasibleError


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend_cmd)


def recommend_cmd(
    spec: Annotated[Path, typer.Argument(help="spec YAML (model, workload, constraints)")],
    json_out: Annotated[bool, typer.Option("--json", help="print {plans, rejected} as JSON")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="print a PR comment in Markdown")] = False,
    top: Annotated[int, typer.Option(min=1, max=100, help="plans to list (plus the Pareto front)")] = 10,
    catalog: Annotated[Path | None, typer.Option(help="catalog overlay YAML (inventory, prices)")] = None,
    variants: Annotated[bool, typer.Option("--variants", help="also list the options collapsed into each plan "
                                                              "(same hardware: another precision at the same "
                                                              "cost, a pricier size, more nodes)")] = False,
) -> None:
    """Recommend where and how to run the model: placement, sharding, precision and cost.

    Exit code 3 when no plan meets every constraint; the binding constraints are printed with their closest miss.
    """
    from planner.catalog import Catalog
    from planner.optimizer import recommend
    from planner.report import to_json, to_markdown
    from planner.specs import load_spec

    s = load_spec(spec)
    cat = Catalog.load(catalog or s.catalog_overlay)
    t0 = time.perf_counter()
    try:
        rec = recommend(s, cat, top=top)
    except InfeasibleError as err:
        if json_out:
            import json

            print(json.dumps({"plans": [], "rejected": [], "infeasible": err.binding, "fix": err.fix}, indent=2))
        raise
    elapsed = time.perf_counter() - t0
    if json_out:
        print(to_json(rec))
    elif markdown:
        print(to_markdown(rec), end="")
    else:
        _table(rec, elapsed, variants)


def _table(rec: object, elapsed: float, variants: bool = False) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from planner.plan import Recommendation
    from planner.report import cost_summary, fmt_s, fmt_usd, shape, where

    assert isinstance(rec, Recommendation)
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 180)
    t = Table(title=f"mlplan: {rec.spec_name}", title_justify="left")
    for col in ("#", "where", "shape", "dtype", "TTFT / latency p50 | p99", "TPOT p50 | p99", "tput",
                "holds", "memory", "$/month", "P"):
        t.add_column(col, justify="right" if col in ("$/month", "#", "memory", "holds") else "left")
    for p in rec.plans:
        pr = p.predicted
        if pr.training_time_s is not None:
            lat, tpot = fmt_s(pr.training_time_s), "-"
        elif pr.ttft_s is not None:
            lat, tpot = _pair(pr.ttft_p50_s, pr.ttft_p99_s), _pair(pr.tpot_p50_s, pr.tpot_p99_s)
        else:
            lat, tpot = _pair(pr.latency_p50_s, pr.latency_p99_s), "-"
        tput = (f"{pr.throughput_tokens_per_s:,.0f} tok/s" if pr.throughput_tokens_per_s
                else f"{pr.throughput_rps:,.1f} req/s" if pr.throughput_rps else "-")
        holds = f"{pr.max_rps_within_slo:,.3g} req/s" if pr.max_rps_within_slo is not None else "-"
        t.add_row(str(p.rank), escape(where(p)), escape(shape(p)), p.dtype, lat, tpot, tput, holds,
                  f"{pr.memory_headroom:.0%}", fmt_usd(p.monthly_cost_usd), "*" if p.pareto else "")
    console.print(t)
    collapsed = sum(len(p.variants) for p in rec.plans)
    if variants:
        for p in rec.plans:
            for v in p.variants:
                console.print(f"  #{p.rank} also: {escape(v)}")
    elif collapsed:
        console.print(f"[dim]{collapsed} near-duplicate option(s) collapsed into the rows above (--variants lists "
                      "them)[/dim]")
    best = rec.plans[0]
    console.print(f"[bold]Chosen:[/bold] {escape(best.rationale)}")
    console.print(f"[bold]Cost:[/bold] {escape(cost_summary(best))}")
    for group, lines, _ in best.cost.groups():
        console.print(f"  {group}: " + escape("; ".join(f"{c.item} = {fmt_usd(c.usd_per_month)}" for c in lines)))
    by: dict[str, int] = {}
    for r in rec.rejected:
        by[r.constraint] = by.get(r.constraint, 0) + 1
    if rec.rejected:
        console.print("Rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items()))
                      + " (see --json or --markdown for every reason)")
    if best.predicted.planned_rps is not None:
        console.print(f"[dim]latencies: p50 | p99 over requests at the planned peak of "
                      f"{best.predicted.planned_rps:,.3g} req/s, simulated with each plan's replicas and engine "
                      "settings; holds = the highest rate at which the SLOs still hold; memory = headroom per "
                      "accelerator[/dim]")
    console.print(f"[dim]{rec.candidates_searched} candidates searched in {elapsed * 1e3:.0f} ms; "
                  f"catalog {escape(rec.catalog_version)}; * = cost/latency Pareto front[/dim]")


def _pair(p50: float | None, p99: float | None) -> str:
    from planner.report import fmt_s

    if p50 is None:
        return "-"
    return f"{fmt_s(p50)} | {fmt_s(p99)}"
