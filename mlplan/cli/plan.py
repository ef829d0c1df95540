"""``mlplan plan SPEC --out DIR`` writes the reviewable plan folder; ``mlplan diff OLD NEW`` summarises a change.

Both import the stack emitter (``stacks/``) lazily, inside the command, so ``mlplan --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_cmd)
    app.command("diff")(diff_cmd)


def plan_cmd(
    spec: Annotated[Path, typer.Argument(help="spec YAML (model, workload, constraints)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="plan folder to write: new, empty, or one mlplan wrote "
                                                         "(replaced atomically)")],
    plan_index: Annotated[int, typer.Option("--plan-index", min=0, max=99,
                                            help="0 = the cheapest plan; N = the N-th runner-up")] = 0,
    catalog: Annotated[Path | None, typer.Option(help="catalog overlay YAML (inventory, prices)")] = None,
    preview: Annotated[bool, typer.Option("--preview/--no-preview",
                                          help="list the stack's resources via an offline Pulumi preview")] = True,
) -> None:
    """Write DIR: plan.yaml, PLAN.md, infra/ (Pulumi), serving/, k8s/ or firmware/.

    Deterministic (re-running gives byte-identical files) and atomic (a failure leaves DIR as it was). DIR must
    be new, empty, or a plan folder mlplan wrote; mlplan refuses any other folder (the current directory, a
    repository root, a folder holding the spec or a file mlplan did not write) and changes nothing. An existing
    DIR/.mlplan/ deploy state is kept.
    """
    from planner.catalog import Catalog
    from planner.optimizer import recommend
    from planner.report import fmt_usd
    from planner.specs import load_spec
    from stacks.writer import write_plan_folder

    s = load_spec(spec)
    overlay = catalog or s.catalog_overlay
    cat = Catalog.load(overlay)
    rec = recommend(s, cat, top=max(10, plan_index + 4))
    inputs = [p for p in (spec, overlay, s.model.hf_config) if p is not None]
    written = write_plan_folder(s, rec, out, plan_index=plan_index, catalog=cat, preview=preview, inputs=inputs)
    if plan_index >= len(rec.plans):  # pragma: no cover - write_plan_folder raised already
        return
    p = rec.plans[plan_index]
    typer.echo(f"wrote {out}: {len(written)} files; plan {p.id}, {fmt_usd(p.monthly_cost_usd)}/month "
               f"(see {out / 'PLAN.md'})")


def diff_cmd(
    old: Annotated[Path, typer.Argument(help="the old plan folder")],
    new: Annotated[Path, typer.Argument(help="the new plan folder")],
    markdown: Annotated[bool, typer.Option("--markdown", help="print raw Markdown (for a PR comment)")] = False,
) -> None:
    """Summarise what changed between two plan folders: placement, instance, sharding, dtype, predicted
    figures, monthly cost, resources added/removed and files changed."""
    from stacks.diff import diff_folders

    text = diff_folders(old, new)
    if markdown:
        typer.echo(text, nl=False)
        return
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(text))
