"""``mlplan plan SPEC --out DIR`` writes the reviewable plan folder; ``mlplan diff OLD NEW`` summarises a change.

Both import the stack emitter (``stacks/``) lazily, inside the command, so ``mlplan --help`` stays fast.
``plan`` prints one progress line per step on stderr (in a terminal, or with ``--progress``): the elapsed time and
the step the writer (:func:`stacks.writer.write_plan_folder`) reports through its ``say`` callback.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

if TYPE_CHECKING:
    from planner.plan import Plan
    from stacks.preview import PreviewWorker

#: What a progress line says for each step the writer reports (unknown steps print as they are named).
STEP_TEXT = {
    "recommend": "recommend: search the catalog for plans",
    "serving artifacts": "serving artifacts",
    "manifests": "manifests",
    "preview": "preview: run the Pulumi program under mocks (offline)",
    "charts": "charts",
    "PLAN.md": "PLAN.md",
}


class Progress:
    """One line per step on ``stream``: ``[  1.2 s] manifests``, the time since the command started."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.t0 = time.perf_counter()

    def __call__(self, step: str) -> None:
        if self.stream is None:
            return
        self.stream.write(f"[{time.perf_counter() - self.t0:5.1f} s] {STEP_TEXT.get(step, step)}\n")
        self.stream.flush()


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
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress",
                                                  help="print each step with its elapsed time on stderr "
                                                       "[default: when stderr is a terminal]",
                                                  show_default=False)] = None,
) -> None:
    """Write DIR: plan.yaml, PLAN.md, infra/ (Pulumi), serving/, k8s/ or firmware/.

    Deterministic (re-running gives byte-identical files) and atomic (a failure leaves DIR as it was). DIR must
    be new, empty, or a plan folder mlplan wrote; mlplan refuses any other folder (the current directory, a
    repository root, a folder holding the spec or a file mlplan did not write) and changes nothing. An existing
    DIR/.mlplan/ deploy state is kept.
    """
    show = sys.stderr.isatty() if progress is None else progress
    say = Progress(sys.stderr if show else None)
    from stacks.preview import PreviewWorker

    # the preview's subprocess imports the Pulumi SDK (most of its time) on the other core while this one
    # recommends and writes; it is handed the folder when the writer gets there, and ended if never needed
    worker = PreviewWorker() if preview else None
    try:
        written, p = _plan(spec, out, plan_index, catalog, worker, say)
    finally:
        if worker is not None:
            worker.close()
    say("done")
    from planner.report import fmt_usd

    typer.echo(f"wrote {out}: {len(written)} files; plan {p.id}, {fmt_usd(p.monthly_cost_usd)}/month "
               f"(see {out / 'PLAN.md'})")


def _plan(spec: Path, out: Path, plan_index: int, catalog: Path | None, worker: PreviewWorker | None,
          say: Progress) -> tuple[list[Path], Plan]:
    """Recommend for ``spec`` and write the folder of the ``plan_index``-th plan, previewed by ``worker`` (None:
    no preview); the written paths and the plan."""
    from planner.catalog import Catalog
    from planner.optimizer import recommend
    from planner.specs import load_spec
    from stacks.layout import has_iac
    from stacks.preview import plan_stacks, spec_stacks
    from stacks.writer import write_plan_folder

    s = load_spec(spec)
    if worker is not None:  # the SDK modules a plan for this spec may need, loaded while this process recommends
        worker.warm(spec_stacks(s))
    overlay = catalog or s.catalog_overlay
    say("recommend")
    cat = Catalog.load(overlay)
    rec = recommend(s, cat, top=max(10, plan_index + 4))
    if worker is not None and plan_index < len(rec.plans):
        if not has_iac(rec.plans[plan_index]):
            worker.close()  # no stack to preview: free the other core now
        else:  # now only the plan's own
            worker.warm(plan_stacks(rec.plans[plan_index]))
    inputs = [p for p in (spec, overlay, s.model.hf_config) if p is not None]
    written = write_plan_folder(s, rec, out, plan_index=plan_index, catalog=cat,
                                preview=worker if worker is not None else False, inputs=inputs, say=say)
    return written, rec.plans[plan_index]  # write_plan_folder refused an out-of-range plan_index already


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
