"""Pictures for the pull request: the cost-vs-latency chart of the candidates and the placement diagram.

``mlplan plan`` writes them beside ``PLAN.md`` (which embeds them) through :func:`write_charts`. Both are SVG
rendered by matplotlib (imported lazily inside the functions; the SVG backend is driven through a bare
``Figure``, so no GUI backend and no pyplot global state are touched) and are byte-for-byte deterministic, so
a re-plan diffs cleanly in review:

* ``svg.hashsalt`` is fixed, so clip-path and other generated ids do not depend on a random salt;
* ``svg.fonttype = "none"``: text stays ``<text>`` (labels are searchable and diffable, no glyph paths);
* ``metadata={"Date": None, "Creator": ...}``: no timestamp and no library version in the file;
* a fixed figure size and dpi; every element id we set (``gid``) is derived from the plan id.

Reading a chart: each point is a candidate plan; x is its latency (TTFT for LLMs, end-to-end latency for other
models, wall-clock time for training runs), y its monthly cost. The Pareto front (plans no other candidate
beats on both) is highlighted and joined as a staircase; the chosen plan is a star with its short label.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planner.errors import InputError
from planner.plan import Part, Plan

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COST_LATENCY_SVG = "cost-latency.svg"
PLACEMENT_SVG = "placement.svg"

#: Fixed salt for matplotlib's SVG id hashing: the same figure gives the same bytes on every run.
SVG_HASHSALT = "mlplan"
#: Written as the SVG's dc:creator instead of matplotlib's default (which carries its version).
SVG_CREATOR = "mlplan (matplotlib)"

#: Log scale on an axis when its values span more than this factor (brief: "log scale when it spans > 10x").
LOG_SPAN_X = 10.0
#: The cost axis goes logarithmic only for a wide spread, since a linear $ axis reads more naturally.
LOG_SPAN_Y = 30.0

_PLACEMENT_COLOURS = {"cloud": "#1f77b4", "on-prem": "#2ca02c", "edge": "#ff7f0e"}
_FRONT_COLOUR = "#d62728"
_CANDIDATE_COLOUR = "#9a9a9a"


# ------------------------------------------------------------------------------------------------ labels


def part_label(part: Part) -> str:
    """``g6e.xlarge x2 fp8`` (+ ``TP4``/``PP2`` when sharded): instance, machine count, precision."""
    text = f"{part.instance} x{part.nodes} {part.dtype}"
    if part.tensor_parallel > 1:
        text += f" TP{part.tensor_parallel}"
    if part.pipeline_parallel > 1:
        text += f" PP{part.pipeline_parallel}"
    return text


def plan_label(plan: Plan) -> str:
    """The short label of a plan on the charts: its parts' labels joined by `` + `` for hybrid plans."""
    return " + ".join(part_label(p) for p in plan.parts)


def _usd(x: float) -> str:
    """``$950``, ``$2.7k``, ``$88k``, ``$1.2M``: compact money for axes and labels."""
    if x >= 1e6:
        return f"${x / 1e6:.3g}M"
    if x >= 1e3:
        return f"${x / 1e3:.3g}k"
    return f"${x:.3g}" if x < 100 else f"${x:.0f}"


def _num(x: float) -> str:
    """A tick number without mathtext or trailing zeros: 0.5, 2, 50, 1.2k."""
    if x >= 1e4:
        return f"{x / 1e3:.3g}k"
    return f"{x:.3g}"


def _xml_id(text: str) -> str:
    """An element id (XML NCName) derived from a plan id: letters, digits, ``-``, ``_``, ``.`` only."""
    return "plan-" + re.sub(r"[^A-Za-z0-9_.-]", "_", text)


# --------------------------------------------------------------------------------------------- x metric


@dataclass(frozen=True)
class _Metric:
    """Which latency figure the x axis shows and in which unit."""

    name: str  # "TTFT", "latency", "training time"
    unit: str  # "ms", "s", "h"
    scale: float  # seconds -> unit

    def axis_label(self) -> str:
        long = {"TTFT": "time to first token", "latency": "latency per request",
                "training time": "training wall-clock time"}[self.name]
        return f"{long} ({self.unit}, predicted)"

    def fmt(self, seconds: float) -> str:
        """A duration in the most readable unit (not necessarily the axis unit): 78 ms, 1.2 s, 10 h."""
        if self.unit == "h" or seconds >= 3 * 3600:
            return f"{_num(seconds / 3600)} h"
        if seconds < 1.0:
            return f"{_num(seconds * 1000)} ms"
        return f"{_num(seconds)} s"


def _metric_kind(chosen: Plan) -> str:
    if chosen.workload == "training":
        return "training time"
    if chosen.predicted.ttft_s is not None:
        return "TTFT"
    return "latency"


def latency_of(plan: Plan, kind: str) -> float | None:
    """The x value of a plan, in seconds: TTFT (LLMs), latency_s (others) or the training wall-clock time."""
    pr = plan.predicted
    if kind == "training time":
        if pr.training_time_s is not None:
            return pr.training_time_s
        return plan.training.time_s if plan.training is not None else None
    if kind == "TTFT":
        return pr.ttft_s
    return pr.latency_s


def _pick_unit(kind: str, largest_s: float) -> _Metric:
    if kind == "training time" and largest_s >= 3 * 3600:
        return _Metric(kind, "h", 1 / 3600)
    if largest_s < 1.0:
        return _Metric(kind, "ms", 1000.0)
    return _Metric(kind, "s", 1.0)


# ------------------------------------------------------------------------------------------ matplotlib


@contextmanager
def _svg_rc() -> Iterator[None]:
    """matplotlib settings that make the SVG deterministic and its text searchable (restored afterwards)."""
    import matplotlib

    with matplotlib.rc_context({
        "svg.hashsalt": SVG_HASHSALT,
        "svg.fonttype": "none",
        "svg.image_inline": True,
        "font.family": "DejaVu Sans",
        "font.size": 9.0,
        "axes.titlesize": 10.0,
        "path.simplify": True,
        "axes.formatter.use_mathtext": False,
    }):
        yield


def _new_figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")


def _to_svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": SVG_CREATOR})
    text = buf.getvalue()
    return text if text.endswith("\n") else text + "\n"


def _span_limits(values: Sequence[float], log: bool, *, zero_floor: bool = False) -> tuple[float, float]:
    """Axis limits covering ``values`` with a margin: a factor on log axes, 8% of the range on linear ones."""
    lo, hi = min(values), max(values)
    if log:
        pad = (hi / lo) ** 0.08
        return lo / pad, hi * pad
    if hi == lo:
        width = abs(hi) * 0.2 or 1.0
        lo, hi = lo - width, hi + width
    pad = (hi - lo) * 0.08
    low = 0.0 if zero_floor and lo >= 0 else lo - pad
    return low, hi + pad


def _use_log(values: Sequence[float], span: float) -> bool:
    lo, hi = min(values), max(values)
    return lo > 0 and hi / lo > span


def _axis_fraction(value: float, lo: float, hi: float, log: bool) -> float:
    if log:
        return (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (value - lo) / (hi - lo)


def _format_axis(axis: Any, log: bool, fmt: Any) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    if log:
        axis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(NullFormatter())
    else:
        axis.set_major_locator(MaxNLocator(nbins=7))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt(v)))


# ---------------------------------------------------------------------------------- cost vs latency chart


def cost_latency_svg(plans: list[Plan], *, chosen_id: str, latency_slo_s: float | None,
                     budget_usd: float | None, title: str) -> str:
    """SVG text: every candidate as a point (x = latency, y = monthly cost), the Pareto front as a staircase,
    the chosen plan starred and labelled, the SLO as a vertical line and the budget as a horizontal one.

    Candidates without the chosen plan's latency figure (e.g. a plan of another workload) are left out and
    counted in a note under the chart.
    """
    if not plans:
        raise InputError("cost-latency chart: no candidate plans to draw",
                         fix="pass at least the chosen plan")
    by_id = {p.id: p for p in plans}
    if chosen_id not in by_id:
        raise InputError(f"cost-latency chart: chosen plan {chosen_id!r} is not among the {len(plans)} "
                         "candidates",
                         fix="pass the chosen plan in `plans` (write_charts adds it for you)")
    for name, value in (("latency SLO", latency_slo_s), ("budget", budget_usd)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InputError(f"cost-latency chart: {name} must be a positive number, got {value!r}",
                             fix=f"omit the {name} or give a positive value")
    chosen = by_id[chosen_id]
    kind = _metric_kind(chosen)
    points: list[tuple[Plan, float]] = []
    missing = 0
    for p in plans:
        x = latency_of(p, kind)
        if x is None or not math.isfinite(x):
            missing += 1
        else:
            points.append((p, x))
    chosen_x = latency_of(chosen, kind)
    if chosen_x is None:
        raise InputError(f"cost-latency chart: the chosen plan {chosen_id} has no predicted {kind}",
                         fix="chart a plan whose predicted figures include its latency")

    seconds = [x for _, x in points] + ([latency_slo_s] if latency_slo_s else [])
    metric = _pick_unit(kind, max(seconds))
    # everything is drawn in the display unit (ms, s or h), so tick locators pick round numbers of that unit
    points = [(p, x * metric.scale) for p, x in points]
    cx = chosen_x * metric.scale
    slo = latency_slo_s * metric.scale if latency_slo_s is not None else None
    xs_all = [x for _, x in points] + ([slo] if slo is not None else [])
    ys_all = [p.monthly_cost_usd for p, _ in points] + ([budget_usd] if budget_usd is not None else [])
    log_x = _use_log(xs_all, LOG_SPAN_X)
    log_y = _use_log(ys_all, LOG_SPAN_Y)

    with _svg_rc():
        fig = _new_figure(7.5, 4.8)
        ax = fig.add_subplot()
        ax.set_xscale("log" if log_x else "linear")
        ax.set_yscale("log" if log_y else "linear")
        ax.grid(True, which="major", color="#e6e6e6", linewidth=0.6)
        ax.set_axisbelow(True)

        others = [(p, x) for p, x in points if not p.pareto and p.id != chosen_id]
        front = sorted(((p, x) for p, x in points if p.pareto), key=lambda t: (t[1], t[0].monthly_cost_usd))
        if others:
            sc = ax.scatter([x for _, x in others], [p.monthly_cost_usd for p, _ in others], s=22,
                            color=_CANDIDATE_COLOUR, alpha=0.8, linewidths=0, label="candidate", zorder=2)
            sc.set_gid("candidates")
        if front:
            fx = [x for _, x in front]
            fy = [p.monthly_cost_usd for p, _ in front]
            (line,) = ax.step(fx, fy, where="post", color=_FRONT_COLOUR, linewidth=1.2, alpha=0.7, zorder=3)
            line.set_gid("pareto-front")
            sc = ax.scatter(fx, fy, s=34, color=_FRONT_COLOUR, edgecolors="white", linewidths=0.6,
                            label="Pareto front", zorder=4)
            sc.set_gid("pareto-points")
        star = ax.scatter([cx], [chosen.monthly_cost_usd], s=190, marker="*", color="#ffbf00",
                          edgecolors="black", linewidths=0.8, label="chosen", zorder=6)
        star.set_gid(_xml_id(chosen.id))

        if slo is not None and latency_slo_s is not None:
            vline = ax.axvline(slo, color="#6a3d9a", linestyle="--", linewidth=1.0, zorder=1,
                               label=f"{metric.name} SLO {metric.fmt(latency_slo_s)}")
            vline.set_gid("latency-slo")
        if budget_usd is not None:
            hline = ax.axhline(budget_usd, color="#8c564b", linestyle=":", linewidth=1.2, zorder=1,
                               label=f"budget {_usd(budget_usd)}/month")
            hline.set_gid("budget")

        x_lo, x_hi = _span_limits(xs_all, log_x)
        y_lo, y_hi = _span_limits(ys_all, log_y, zero_floor=True)
        ax.set_xlim(x_lo, x_hi)
        ax.set_ylim(y_lo, y_hi)
        _format_axis(ax.xaxis, log_x, _num)
        _format_axis(ax.yaxis, log_y, _usd)
        ax.set_xlabel(metric.axis_label())
        ax.set_ylabel("monthly cost (USD)")
        ax.set_title(title)

        # the chosen plan's label, pushed towards the inside of the axes so it is never clipped
        fx_frac = _axis_fraction(cx, x_lo, x_hi, log_x)
        fy_frac = _axis_fraction(chosen.monthly_cost_usd, y_lo, y_hi, log_y)
        dx = -12 if fx_frac > 0.55 else 12
        dy = -16 if fy_frac > 0.7 else 14
        label = f"{plan_label(chosen)}: {_usd(chosen.monthly_cost_usd)}/month, {metric.fmt(chosen_x)}"
        ann = ax.annotate(label, (cx, chosen.monthly_cost_usd), xytext=(dx, dy),
                          textcoords="offset points", ha="right" if dx < 0 else "left",
                          va="top" if dy < 0 else "bottom", fontsize=8.5, fontweight="bold",
                          bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "#444444", "lw": 0.6},
                          arrowprops={"arrowstyle": "-", "color": "#444444", "lw": 0.6}, zorder=7)
        ann.set_gid("chosen-label")

        ax.legend(loc="best", fontsize=8, framealpha=0.9)
        note = f"{len(points)} candidates"
        if missing:
            note += f"; {missing} without a predicted {kind} not shown"
        if log_x or log_y:
            note += "; log scale: " + " and ".join(a for a, on in (("x", log_x), ("y", log_y)) if on)
        fig.text(0.01, 0.005, note, fontsize=7, color="#555555", ha="left", va="bottom", gid="chart-note")
        return _to_svg(fig)


# -------------------------------------------------------------------------------------- placement diagram


def _where(part: Part) -> str:
    if part.placement == "cloud":
        return f"cloud: {part.provider} {part.region or ''}".rstrip()
    if part.placement == "on-prem":
        return f"on-prem: {part.region or 'site'}"
    return "edge fleet: on site"


def _part_lines(part: Part, plan: Plan) -> list[str]:
    shard = f"TP{part.tensor_parallel}"
    if part.pipeline_parallel > 1:
        shard += f" PP{part.pipeline_parallel}"
    lines = [
        f"{part.instance} x{part.nodes} ({part.purchase})",
        f"{part.replicas} replica{'s' if part.replicas != 1 else ''} x {part.accelerator_count} "
        f"{part.accelerator}, {shard}",
        f"{part.dtype}, {part.runtime}, {_usd(part.monthly_cost_usd)}/month",
    ]
    if plan.training is not None:
        t = plan.training
        lines[1] = (f"DP{t.data_parallel} {shard}, ZeRO-{t.zero_stage}, "
                    f"{part.accelerator_count} x {part.accelerator}")
    return lines


def path_label(plan: Plan, part: Part) -> str:
    """The label of the arrow from the users (or the data) to ``part``: traffic share and data class.

    ``sensitive 40% (confidential): stays on-prem``, ``non-sensitive 60%: to aws eu-central-1``,
    ``all traffic 100% (internal)``.
    """
    pct = f"{part.traffic_fraction * 100:.0f}%"
    privacy = plan.security.privacy
    if plan.workload == "training":
        return f"training data ({privacy})"
    if len(plan.parts) == 1:
        return f"all traffic {pct} ({privacy})" + (": stays on device" if part.placement == "edge" else "")
    stays = "on device" if part.placement == "edge" else part.placement
    if part.role in ("sensitive", "local"):
        return f"{part.role} {pct} ({privacy}): stays {stays}"
    roles = {p.role for p in plan.parts}
    kind = "non-sensitive" if "sensitive" in roles else part.role
    dest = f"{part.provider} {part.region}" if part.placement == "cloud" and part.region else stays
    return f"{kind} {pct}: to {dest}"


def placement_svg(plan: Plan) -> str:
    """SVG text: a box per part (where it runs, instance, accelerators, replicas, precision, cost) and the
    data paths from the users to each part, labelled with the traffic share and the data class."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    n = len(plan.parts)
    box_h, gap = 1.5, 0.5
    stack = n * box_h + (n - 1) * gap
    height = stack + 1.0
    top = height - 0.2
    with _svg_rc():
        fig = _new_figure(8.0, 0.6 + 0.76 * height)
        ax: Axes = fig.add_subplot()
        ax.set_xlim(0, 10)
        ax.set_ylim(0, height)
        ax.set_axis_off()
        ax.set_title(f"{plan.model.name}: where it runs "
                     f"({plan.placement}, {_usd(plan.monthly_cost_usd)}/month)")

        # the source: users (inference) or the training data set, centred on the stack of parts
        src_text = "training data" if plan.workload == "training" else "users"
        src_h = 1.3
        src_mid = top - stack / 2
        src_y = src_mid - src_h / 2
        src = FancyBboxPatch((0.2, src_y), 1.9, src_h, boxstyle="round,pad=0.05,rounding_size=0.15",
                             fc="#f2f2f2", ec="#555555", lw=1.0, gid="source")
        ax.add_patch(src)
        ax.text(1.15, src_mid + 0.18, src_text, ha="center", va="center", fontsize=10, fontweight="bold")
        ax.text(1.15, src_mid - 0.22, f"{plan.security.privacy} data", ha="center", va="center",
                fontsize=8, color="#444444")

        for i, part in enumerate(plan.parts):
            y0 = top - (i + 1) * box_h - i * gap
            colour = _PLACEMENT_COLOURS[part.placement]
            box = FancyBboxPatch((5.6, y0), 4.2, box_h, boxstyle="round,pad=0.05,rounding_size=0.15",
                                 fc=colour, alpha=0.12, ec="none")
            ax.add_patch(box)
            ax.add_patch(FancyBboxPatch((5.6, y0), 4.2, box_h, boxstyle="round,pad=0.05,rounding_size=0.15",
                                        fc="none", ec=colour, lw=1.4, gid=f"part-{i}-{part.role}"))
            ax.text(5.75, y0 + box_h - 0.25, f"{_where(part)}  [{part.role}]", ha="left", va="center",
                    fontsize=9, fontweight="bold", color=colour)
            for j, line in enumerate(_part_lines(part, plan)):
                ax.text(5.75, y0 + box_h - 0.62 - j * 0.32, line, ha="left", va="center", fontsize=8.5)

            mid = y0 + box_h / 2
            arrow = FancyArrowPatch((2.15, src_mid), (5.55, mid), arrowstyle="-|>", mutation_scale=12,
                                    color=colour, lw=1.2 + 2.0 * part.traffic_fraction,
                                    connectionstyle="arc3,rad=0.0", gid=f"path-{i}-{part.role}")
            ax.add_patch(arrow)
            # the label sits on the arrow (a white box interrupts the line), two lines: share, destination
            ax.text(3.85, (src_mid + mid) / 2, path_label(plan, part).replace(": ", "\n", 1), ha="center",
                    va="center", fontsize=8, color="#222222", linespacing=1.3,
                    bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": colour, "lw": 0.6})

        sec = plan.security
        regions = ", ".join(sec.allowed_regions) if sec.allowed_regions else "any region"
        flags = [f"residency: {regions}"]
        flags += [name for name, on in (("encryption at rest", sec.encryption_at_rest),
                                        ("private networking", sec.private_networking),
                                        ("dedicated tenancy", sec.dedicated_tenancy),
                                        ("deny-by-default network", sec.deny_by_default_network)) if on]
        ax.text(0.2, 0.1, "; ".join(flags), ha="left", va="bottom", fontsize=7.5, color="#555555")
        return _to_svg(fig)


# ----------------------------------------------------------------------------------------------- writer


def needs_placement(plan: Plan) -> bool:
    """The placement diagram is written for hybrid plans (several parts)."""
    return plan.placement == "hybrid" or len(plan.parts) > 1


def write_charts(plans: list[Plan], chosen: Plan, out_dir: Path, *, latency_slo_s: float | None,
                 budget_usd: float | None) -> list[str]:
    """Write ``cost-latency.svg`` (always) and ``placement.svg`` (hybrid plans) into ``out_dir``.

    ``chosen`` is added to ``plans`` when missing. Returns the written file names (relative to ``out_dir``).
    """
    candidates = list(plans)
    if all(p.id != chosen.id for p in candidates):
        candidates.append(chosen)
    kind = _metric_kind(chosen)
    what = {"TTFT": "TTFT", "latency": "latency", "training time": "training time"}[kind]
    title = f"{chosen.model.name}: monthly cost vs {what} of {len(candidates)} candidate plans"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {COST_LATENCY_SVG: cost_latency_svg(candidates, chosen_id=chosen.id, latency_slo_s=latency_slo_s,
                                                budget_usd=budget_usd, title=title)}
    if needs_placement(chosen):
        files[PLACEMENT_SVG] = placement_svg(chosen)
    for name, text in files.items():
        (out_dir / name).write_bytes(text.encode("utf-8"))
    return list(files)
