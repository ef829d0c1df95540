"""Render a :class:`~planner.plan.Recommendation` as JSON or Markdown (pure text, no terminal needed)."""

from __future__ import annotations

import json
from collections import defaultdict

from planner.markup import md
from planner.plan import Plan, Recommendation


def to_json(rec: Recommendation) -> str:
    data = rec.model_dump(mode="json")
    return json.dumps(
        {"spec": data["spec_name"], "catalog_version": data["catalog_version"],
         "candidates_searched": data["candidates_searched"], "plans": data["plans"], "rejected": data["rejected"]},
        indent=2, sort_keys=False,
    )


def fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 3600:
        return f"{x / 3600:.1f} h"
    return f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s"


def fmt_usd(x: float) -> str:
    return f"${x:,.0f}"


def shape(p: Plan) -> str:
    s = f"{p.replicas} x {p.accelerator_count} {p.accelerator}"
    s += f" TP{p.tensor_parallel}" + (f" PP{p.pipeline_parallel}" if p.pipeline_parallel > 1 else "")
    if p.training is not None:
        s = f"{p.nodes * p.gpus_per_node} {p.accelerator} DP{p.training.data_parallel} TP{p.tensor_parallel} " \
            f"PP{p.pipeline_parallel} ZeRO-{p.training.zero_stage}"
    return s


def where(p: Plan) -> str:
    if p.placement == "hybrid":
        return " + ".join(f"{x.placement}:{x.instance}" + (f"@{x.region}" if x.region else "") for x in p.parts)
    loc = f" {p.provider}/{p.region}" if p.placement == "cloud" else (f" {p.region}" if p.region else "")
    return f"{p.placement}{loc} {p.instance}" + (" (spot)" if p.purchase == "spot" else "")


def cost_summary(p: Plan) -> str:
    """``$5,063/month = compute $4,609 + platform $370 + network $60 + storage $25`` (one run for training)."""
    per = " per run" if p.training is not None else "/month"
    groups = " + ".join(f"{g} {fmt_usd(sub)}" for g, _, sub in p.cost.groups())
    return f"{fmt_usd(p.cost.monthly_usd)}{per} = {groups}"


def headline(p: Plan) -> str:
    pr = p.predicted
    if p.training is not None:
        return f"train {fmt_s(pr.training_time_s)}"
    if pr.ttft_s is not None:
        tput = f", {pr.throughput_tokens_per_s:,.0f} tok/s" if pr.throughput_tokens_per_s else ""
        return f"TTFT {fmt_s(pr.ttft_s)}, TPOT {fmt_s(pr.tpot_s)}{tput}"
    return f"latency {fmt_s(pr.latency_s)}, {pr.throughput_rps:,.1f} req/s"


def to_markdown(rec: Recommendation, *, max_plans: int = 5, max_rejected: int = 12) -> str:
    """A compact PR comment: the decision, the runners-up, and why options were rejected."""
    if not rec.plans:
        return f"### mlplan: {md(rec.spec_name)}\n\nNo feasible plan.\n"
    best = rec.plans[0]
    out = [
        f"### mlplan recommendation: {md(rec.spec_name)}",
        "",
        f"**Decision:** {md(where(best))}: {md(shape(best))}, {md(best.dtype)}, "
        f"**{fmt_usd(best.monthly_cost_usd)}/month**" + (" (per training run)" if best.training is not None else ""),
        "",
        f"{headline(best)}; memory headroom {best.predicted.memory_headroom:.0%}. {md(best.rationale)}.",
        "",
        "| # | where | shape | dtype | predicted | $/month | Pareto |",
        "|---|---|---|---|---|---:|:-:|",
    ]
    for p in rec.plans[:max_plans]:
        out.append(f"| {p.rank} | {md(where(p))} | {md(shape(p))} | {md(p.dtype)} | {headline(p)} | "
                   f"{fmt_usd(p.monthly_cost_usd)} | {'yes' if p.pareto else ''} |")
    out += ["", f"<details><summary>Cost breakdown (chosen plan): {cost_summary(best)}</summary>", ""]
    for group, lines, subtotal in best.cost.groups():
        out.append(f"- **{group}** {fmt_usd(subtotal)}")
        out += [f"  - {md(line.item)}: {fmt_usd(line.usd_per_month)}" for line in lines]
    out += ["", "</details>", ""]
    groups: dict[str, list[str]] = defaultdict(list)
    for r in rec.rejected:
        groups[r.constraint].append(f"{md(r.option)}: {md(r.reason)}")
    if groups:
        out += ["<details><summary>Rejected options</summary>", ""]
        for shown, constraint in enumerate(sorted(groups), start=1):
            reasons = groups[constraint]
            out.append(f"- **{constraint}** ({len(reasons)}): " + "; ".join(reasons[:3])
                       + (" ..." if len(reasons) > 3 else ""))
            if shown >= max_rejected:
                break
        out += ["", "</details>"]
    out.append(f"\n<sub>{rec.candidates_searched} candidates searched, catalog {md(rec.catalog_version)}</sub>")
    return "\n".join(out) + "\n"
