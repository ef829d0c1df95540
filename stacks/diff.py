"""``mlplan diff OLD_DIR NEW_DIR``: a short Markdown summary of what changed between two plan folders.

Compares the plans (placement, where, instance, sharding, dtype, runtime, predicted figures, monthly cost),
the resources of the offline preview recorded in ``PLAN.md``, and which generated files changed, so the
summary can be posted as the PR comment next to the file diff. Pure: reads files, no Pulumi.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from planner.plan import Plan
from planner.report import fmt_s, fmt_usd
from stacks.folder import load_folder, read_marker
from stacks.planmd import PREVIEW_SKIPPED

RESOURCES_HEADING = "## Resources the stack will create"


def resources_of(folder: Path) -> list[str] | None:
    """Resource lines (top level, ``type name``) from PLAN.md's offline-preview block; None if no IaC;
    ``[PREVIEW_SKIPPED]`` if the folder was written with ``--no-preview``."""
    try:
        text = (folder / "PLAN.md").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    if RESOURCES_HEADING not in text:
        return None
    section = text.split(RESOURCES_HEADING, 1)[1]
    if "```" not in section.split("\n## ", 1)[0]:
        return None
    block = section.split("```", 2)[1]
    if PREVIEW_SKIPPED in block:
        return [PREVIEW_SKIPPED]
    out = []
    for line in block.strip("\n").splitlines():
        if not line.strip() or line.startswith("("):
            continue
        out.append(line.strip() if not line.startswith(" ") else f"  {line.strip()}")
    return out


def _top(lines: list[str]) -> list[str]:
    """Top-level resources as ``type name``, and Kubernetes objects as ``Kind ns/name`` (without regions)."""
    out = []
    for line in lines:
        if line.startswith("  "):
            out.append(f"k8s {line.strip()}")
        else:
            out.append(line.split(" (", 1)[0])
    return out


def _files(folder: Path) -> dict[str, str]:
    """sha256 of every file mlplan wrote, from the folder's marker (verified when the folder was loaded)."""
    marker = read_marker(folder)
    return dict(marker["files"]) if marker else {}


def _shape(p: Plan) -> str:
    return f"TP{p.tensor_parallel} x PP{p.pipeline_parallel}, {p.replicas} replica(s), {p.nodes} node(s)"


def _where(p: Plan) -> str:
    return " + ".join(f"{x.placement} {x.provider}/{x.region or 'fleet'}" for x in p.parts)


FIELDS: list[tuple[str, Any]] = [
    ("placement", lambda p: p.placement),
    ("where", _where),
    ("instance", lambda p: " + ".join(f"{x.instance} x {x.nodes}" for x in p.parts)),
    ("accelerator", lambda p: f"{p.accelerator} x {p.accelerator_count}/replica"),
    ("sharding", _shape),
    ("dtype", lambda p: p.dtype),
    ("runtime", lambda p: p.serving.runtime),
    ("purchase", lambda p: p.purchase),
    ("privacy", lambda p: p.security.privacy),
]

FIGURES: list[tuple[str, Any, Any]] = [
    ("TTFT", lambda p: p.predicted.ttft_s, fmt_s),
    ("TPOT", lambda p: p.predicted.tpot_s, fmt_s),
    ("latency", lambda p: p.predicted.latency_s, fmt_s),
    ("throughput (tokens/s)", lambda p: p.predicted.throughput_tokens_per_s, lambda v: f"{v:,.0f}"),
    ("throughput (req/s)", lambda p: p.predicted.throughput_rps, lambda v: f"{v:,.1f}"),
    ("memory headroom", lambda p: p.predicted.memory_headroom, lambda v: f"{v:.0%}"),
    ("training time", lambda p: p.predicted.training_time_s, lambda v: f"{v / 3600:,.1f} h"),
]


def diff_folders(old_dir: str | Path, new_dir: str | Path) -> str:
    """The Markdown summary of the change from ``old_dir`` to ``new_dir``."""
    old_dir, new_dir = Path(old_dir), Path(new_dir)
    a: Plan = load_folder(old_dir).plan
    b: Plan = load_folder(new_dir).plan
    out = [f"### mlplan diff: `{a.id}` -> `{b.id}`" if a.id != b.id else f"### mlplan diff: `{b.id}`", ""]

    delta = b.monthly_cost_usd - a.monthly_cost_usd
    pct = f" ({delta / a.monthly_cost_usd:+.1%})" if a.monthly_cost_usd else ""
    cost = (f"**Monthly cost:** {fmt_usd(a.monthly_cost_usd)} -> {fmt_usd(b.monthly_cost_usd)} "
            f"({'+' if delta >= 0 else '-'}{fmt_usd(abs(delta))}{pct})" if abs(delta) >= 0.005
            else f"**Monthly cost:** unchanged, {fmt_usd(b.monthly_cost_usd)}")
    out += [cost, ""]

    rows = [(name, f(a), f(b)) for name, f in FIELDS if f(a) != f(b)]
    for name, f, fmt in FIGURES:
        x, y = f(a), f(b)
        if x != y:
            rows.append((name, "-" if x is None else fmt(x), "-" if y is None else fmt(y)))
    if rows:
        out += ["| | old | new |", "|---|---|---|"] + [f"| {n} | {x} | {y} |" for n, x, y in rows] + [""]
    else:
        out += ["Plan unchanged (placement, sharding, dtype and predicted figures are the same).", ""]

    ra, rb = resources_of(old_dir), resources_of(new_dir)
    skipped = [name for name, r in (("old", ra), ("new", rb)) if r == [PREVIEW_SKIPPED]]
    if ra is None and rb is None:
        out += ["**Resources:** no IaC in either folder.", ""]
    elif skipped:
        out += [f"**Resources:** not compared: the {' and '.join(skipped)} folder was written with `--no-preview`, "
                "so it lists no resources (re-plan both with the preview to compare them).", ""]
    else:
        sa, sb = set(_top(ra or [])), set(_top(rb or []))
        added, removed = sorted(sb - sa), sorted(sa - sb)
        if not added and not removed:
            out += [f"**Resources:** unchanged ({len(sb)})."]
        else:
            out += [f"**Resources:** {len(added)} added, {len(removed)} removed, {len(sa & sb)} kept."]
            out += [f"- `+ {r}`" for r in added[:40]] + [f"- `- {r}`" for r in removed[:40]]
            if len(added) > 40 or len(removed) > 40:
                out.append("- ...")
        out.append("")

    fa, fb = _files(old_dir), _files(new_dir)
    changed = sorted(k for k in fa.keys() & fb.keys() if fa[k] != fb[k])
    f_added, f_removed = sorted(fb.keys() - fa.keys()), sorted(fa.keys() - fb.keys())
    if changed or f_added or f_removed:
        parts = [f"changed {', '.join(f'`{f}`' for f in changed)}" if changed else "",
                 f"added {', '.join(f'`{f}`' for f in f_added)}" if f_added else "",
                 f"removed {', '.join(f'`{f}`' for f in f_removed)}" if f_removed else ""]
        out += ["**Files:** " + "; ".join(x for x in parts if x) + "."]
    else:
        out += ["**Files:** identical."]
    out.append("")
    return "\n".join(out)
