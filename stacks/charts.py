"""Pictures for the pull request: the cost-vs-latency chart of the candidates and the placement diagram.

``mlplan plan`` writes them beside ``PLAN.md`` (which embeds them) through :func:`write_charts`. Both are SVG
written directly as text by this module (no plotting library: importing and driving one cost seconds per
``plan``), and are byte-for-byte deterministic, so a re-plan diffs cleanly in review:

* every coordinate is rounded to 0.01 px and written in a fixed format; no random or hashed ids;
* text stays ``<text>`` (labels are searchable and diffable), XML-escaped;
* no timestamp and no library version in the file (``dc:creator`` is :data:`SVG_CREATOR`);
* a fixed canvas; every element id is fixed or derived from the plan id.

Text widths (for label boxes, the legend and the layout) are estimated from the advance widths of DejaVu Sans,
the first font the SVG asks for, so boxes fit their text in that font and leave a little room in narrower ones.

Reading a chart: each point is a candidate plan; x is its latency (TTFT for LLMs, end-to-end latency for other
models, wall-clock time for training runs), y its monthly cost. The Pareto front (plans no other candidate
beats on both) is highlighted and joined as a staircase; the chosen plan is a star with its short label.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from planner.errors import InputError
from planner.plan import Part, Plan

COST_LATENCY_SVG = "cost-latency.svg"
PLACEMENT_SVG = "placement.svg"

#: Written as the SVG's dc:creator: the tool, never its version (a version bump must not change every chart).
SVG_CREATOR = "mlplan"

#: Log scale on an axis when its values span more than this factor (brief: "log scale when it spans > 10x").
LOG_SPAN_X = 10.0
#: The cost axis goes logarithmic only for a wide spread, since a linear $ axis reads more naturally.
LOG_SPAN_Y = 30.0

FONT_FAMILY = "DejaVu Sans, Verdana, Bitstream Vera Sans, Arial, sans-serif"

_PLACEMENT_COLOURS = {"cloud": "#1f77b4", "on-prem": "#2ca02c", "edge": "#ff7f0e"}
_FRONT_COLOUR = "#d62728"
_CANDIDATE_COLOUR = "#9a9a9a"
_STAR_COLOUR = "#ffbf00"
_SLO_COLOUR = "#6a3d9a"
_BUDGET_COLOUR = "#8c564b"
_GRID_COLOUR = "#e6e6e6"
_MUTED = "#555555"

# Advance widths of the printable ASCII characters (32 " " .. 126 "~") in DejaVu Sans 2.35, Book and Bold, in
# font units (2048 per em): the fonts' hmtx tables (https://dejavu-fonts.github.io/), read with FreeType.
_UNITS_PER_EM = 2048
_ADVANCE_REGULAR = (
    651, 821, 942, 1716, 1303, 1946, 1597, 563, 799, 799, 1024, 1716, 651, 739, 651, 690,
    1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 690, 690, 1716, 1716, 1716, 1087,
    2048, 1401, 1405, 1430, 1577, 1294, 1178, 1587, 1540, 604, 604, 1343, 1141, 1767, 1532, 1612,
    1235, 1612, 1423, 1300, 1251, 1499, 1401, 2025, 1403, 1251, 1403, 799, 690, 799, 1716, 1024,
    1024, 1255, 1300, 1126, 1300, 1260, 721, 1300, 1298, 569, 569, 1186, 569, 1995, 1298, 1253,
    1300, 1300, 842, 1067, 803, 1298, 1212, 1675, 1212, 1212, 1075, 1303, 690, 1303, 1716,
)
_ADVANCE_BOLD = (
    713, 934, 1067, 1716, 1425, 2052, 1786, 627, 936, 936, 1071, 1716, 778, 850, 778, 748,
    1425, 1425, 1425, 1425, 1425, 1425, 1425, 1425, 1425, 1425, 819, 819, 1716, 1716, 1716, 1188,
    2048, 1585, 1561, 1503, 1700, 1399, 1399, 1681, 1714, 762, 762, 1587, 1305, 2038, 1714, 1741,
    1501, 1741, 1577, 1475, 1397, 1663, 1585, 2259, 1579, 1483, 1485, 936, 748, 936, 1716, 1024,
    1024, 1382, 1466, 1214, 1466, 1389, 891, 1466, 1458, 702, 702, 1362, 702, 2134, 1458, 1407,
    1466, 1466, 1010, 1219, 979, 1458, 1335, 1892, 1321, 1335, 1192, 1458, 748, 1458, 1716,
)


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
    """A tick number without trailing zeros: 0.5, 2, 50, 1.2k."""
    if x >= 1e4:
        return f"{x / 1e3:.3g}k"
    return f"{x:.3g}"


def _safe_id(text: str) -> str:
    """A fragment of an element id: anything but letters, digits, ``-``, ``_`` and ``.`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def _xml_id(text: str) -> str:
    """An element id (XML NCName) derived from a plan id."""
    return "plan-" + _safe_id(text)


# ------------------------------------------------------------------------------------------------ SVG text

#: Characters XML 1.0 does not allow at all (C0 controls but tab/newline/CR, surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _esc(text: str) -> str:
    """``text`` as XML character data or attribute value: ``& < > "`` escaped, characters XML forbids replaced."""
    text = _NOT_XML.sub("\ufffd", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _f(v: float) -> str:
    """A coordinate: rounded to 0.01, no trailing zeros, never ``-0`` (the same value gives the same bytes)."""
    v = round(v, 2) + 0.0
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def text_width(text: str, size: float, *, bold: bool = False) -> float:
    """The width of ``text`` in px at font ``size`` px in DejaVu Sans (wide characters count 1 em, others outside
    ASCII 0.62 em)."""
    table = _ADVANCE_BOLD if bold else _ADVANCE_REGULAR
    units = 0
    for ch in text:
        code = ord(ch)
        if 32 <= code <= 126:
            units += table[code - 32]
        elif unicodedata.east_asian_width(ch) in ("W", "F"):
            units += _UNITS_PER_EM
        else:
            units += round(0.62 * _UNITS_PER_EM)
    return units * size / _UNITS_PER_EM


class _Svg:
    """An SVG document built line by line, in drawing order."""

    def __init__(self, width: float, height: float, title: str) -> None:
        self.width, self.height = width, height
        self.lines = [
            '<?xml version="1.0" encoding="utf-8" standalone="no"?>',
            f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{_f(width)}" height="{_f(height)}" '
            f'viewBox="0 0 {_f(width)} {_f(height)}" font-family="{_esc(FONT_FAMILY)}">',
            f"<title>{_esc(title)}</title>",
            "<metadata>",
            ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:cc="http://creativecommons.org/ns#">',
            "  <cc:Work>",
            '   <dc:type rdf:resource="http://purl.org/dc/dcmitype/StillImage"/>',
            f"   <dc:title>{_esc(title)}</dc:title>",
            f"   <dc:creator>{_esc(SVG_CREATOR)}</dc:creator>",
            "  </cc:Work>",
            " </rdf:RDF>",
            "</metadata>",
            # an opaque background: the chart stays readable on a dark page
            f'<rect id="background" x="0" y="0" width="{_f(width)}" height="{_f(height)}" fill="#ffffff"/>',
        ]

    def add(self, line: str) -> None:
        self.lines.append(line)

    def open(self, gid: str | None = None, **attrs: str) -> None:
        head = f' id="{_esc(gid)}"' if gid else ""
        self.lines.append(f"<g{head}{_attrs(attrs)}>")

    def close(self) -> None:
        self.lines.append("</g>")

    def text(self, x: float, y: float, text: str, *, size: float, anchor: str = "start", bold: bool = False,
             fill: str = "#222222", gid: str | None = None, rotate: bool = False, preserve: bool = False) -> None:
        """One ``<text>`` element; ``y`` is the baseline."""
        attrs = f' id="{_esc(gid)}"' if gid else ""
        attrs += f' x="{_f(x)}" y="{_f(y)}" font-size="{_f(size)}"'
        if anchor != "start":
            attrs += f' text-anchor="{anchor}"'
        if bold:
            attrs += ' font-weight="bold"'
        attrs += f' fill="{fill}"'
        if rotate:
            attrs += f' transform="rotate(-90 {_f(x)} {_f(y)})"'
        if preserve:
            attrs += ' xml:space="preserve"'
        self.lines.append(f"<text{attrs}>{_esc(text)}</text>")

    def render(self) -> str:
        return "\n".join([*self.lines, "</svg>"]) + "\n"


def _attrs(attrs: dict[str, str]) -> str:
    return "".join(f' {k.replace("_", "-")}="{_esc(v)}"' for k, v in attrs.items())


def _rect(x: float, y: float, w: float, h: float, **attrs: str) -> str:
    return f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}"{_attrs(attrs)}/>'


def _line(x1: float, y1: float, x2: float, y2: float, **attrs: str) -> str:
    return f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}"{_attrs(attrs)}/>'


def _circle(x: float, y: float, r: float, **attrs: str) -> str:
    return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{_f(r)}"{_attrs(attrs)}/>'


def _star_points(x: float, y: float, outer: float) -> str:
    """The 10 vertices of a five-pointed star centred on (x, y), one point up."""
    pts = []
    for k in range(10):
        r = outer if k % 2 == 0 else outer * 0.42
        a = math.pi / 2 + k * math.pi / 5
        pts.append(f"{_f(x + r * math.cos(a))},{_f(y - r * math.sin(a))}")
    return " ".join(pts)


@dataclass(frozen=True)
class _Box:
    """An axis-aligned rectangle in px (y grows downwards)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: _Box) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def holds(self, x: float, y: float, margin: float = 0.0) -> bool:
        return self.x0 - margin <= x <= self.x1 + margin and self.y0 - margin <= y <= self.y1 + margin

    def crosses(self, x1: float, y1: float, x2: float, y2: float) -> bool:
        """Whether an axis-aligned segment passes through the box."""
        return _Box(min(x1, x2), min(y1, y2), max(x1, x2) + 1e-9, max(y1, y2) + 1e-9).overlaps(self)

    def inside(self, outer: _Box) -> bool:
        return outer.x0 <= self.x0 and self.x1 <= outer.x1 and outer.y0 <= self.y0 and self.y1 <= outer.y1


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


# -------------------------------------------------------------------------------------------------- axes


def _span_limits(values: Sequence[float], log: bool, *, zero_floor: bool = False) -> tuple[float, float]:
    """Axis limits covering ``values`` with a margin: a factor on log axes, 8% of the range on linear ones."""
    lo, hi = min(values), max(values)
    if log:
        pad = (hi / lo) ** 0.08
        return lo / pad, hi * pad
    if hi == lo:
        width = abs(hi) * 0.2 or 1.0
        lo, hi = lo - width, hi + width
    if zero_floor and lo >= 0:  # a cost axis from $0: the margin is a share of the whole axis
        return 0.0, hi + hi * 0.08
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def _use_log(values: Sequence[float], span: float) -> bool:
    lo, hi = min(values), max(values)
    return lo > 0 and hi / lo > span


def _log_ticks(lo: float, hi: float, most: int) -> list[float]:
    """1-2-5 ticks per decade inside [lo, hi]; only the powers of ten (then every other one...) when that gives
    more than ``most`` ticks."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for subs in ((1.0, 2.0, 5.0), (1.0, 3.0), (1.0,)):
        ticks = [float(f"{m}e{k}") for k in range(first, last + 1) for m in subs if lo <= float(f"{m}e{k}") <= hi]
        if len(ticks) <= most:
            return ticks
    stride = math.ceil(len(ticks) / most)
    return ticks[::stride]


def _linear_ticks(lo: float, hi: float, most: int) -> list[float]:
    """Round ticks (1, 2, 2.5 or 5 times a power of ten apart) inside [lo, hi], at most ``most`` of them."""
    raw = (hi - lo) / max(1, most - 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = 10 * mag
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if (hi - lo) / (m * mag) <= most - 1:
            step = m * mag
            break
    k = math.ceil(lo / step - 1e-9)
    ticks = []
    while k * step <= hi + step * 1e-9:
        ticks.append(float(f"{k * step:.12g}") + 0.0)
        k += 1
    return ticks


@dataclass(frozen=True)
class _Axis:
    """Data value -> px along one axis: ``lo`` maps to ``p_lo`` and ``hi`` to ``p_hi``."""

    lo: float
    hi: float
    log: bool
    p_lo: float
    p_hi: float

    def fraction(self, value: float) -> float:
        if self.log:
            return (math.log(value) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        return (value - self.lo) / (self.hi - self.lo)

    def px(self, value: float) -> float:
        return round(self.p_lo + self.fraction(value) * (self.p_hi - self.p_lo), 2)

    def ticks(self, most: int) -> list[float]:
        return _log_ticks(self.lo, self.hi, most) if self.log else _linear_ticks(self.lo, self.hi, most)


# ---------------------------------------------------------------------------------- cost vs latency chart

_W, _H = 760.0, 480.0
_TICK_SIZE = 11.0
_LABEL_SIZE = 12.0
_TITLE_SIZE = 14.0
_CHOSEN_SIZE = 11.5
_LEGEND_SIZE = 11.0
_NOTE_SIZE = 10.0


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
        if x is None or not math.isfinite(x) or not math.isfinite(p.monthly_cost_usd):
            missing += 1
        else:
            points.append((p, x))
    chosen_x = latency_of(chosen, kind)
    if chosen_x is None or not math.isfinite(chosen_x):
        raise InputError(f"cost-latency chart: the chosen plan {chosen_id} has no predicted {kind}",
                         fix="chart a plan whose predicted figures include its latency")

    seconds = [x for _, x in points] + ([latency_slo_s] if latency_slo_s else [])
    metric = _pick_unit(kind, max(seconds))
    # everything is drawn in the display unit (ms, s or h), so the ticks are round numbers of that unit
    points = [(p, x * metric.scale) for p, x in points]
    slo = latency_slo_s * metric.scale if latency_slo_s is not None else None
    xs_all = [x for _, x in points] + ([slo] if slo is not None else [])
    ys_all = [p.monthly_cost_usd for p, _ in points] + ([budget_usd] if budget_usd is not None else [])
    log_x = _use_log(xs_all, LOG_SPAN_X)
    log_y = _use_log(ys_all, LOG_SPAN_Y)
    x_lo, x_hi = _span_limits(xs_all, log_x)
    y_lo, y_hi = _span_limits(ys_all, log_y, zero_floor=True)

    # layout: the left margin fits the widest cost tick label and the rotated axis label
    y_probe = _Axis(y_lo, y_hi, log_y, 0.0, 1.0)
    y_ticks = y_probe.ticks(8)
    tick_w = max((text_width(_usd(t), _TICK_SIZE) for t in y_ticks), default=30.0)
    plot = _Box(14 + _LABEL_SIZE + 10 + tick_w + 8, 44, _W - 22, _H - 70)
    xa = _Axis(x_lo, x_hi, log_x, plot.x0, plot.x1)
    ya = _Axis(y_lo, y_hi, log_y, plot.y1, plot.y0)
    x_ticks = xa.ticks(9)
    while len(x_ticks) > 2 and _ticks_crowded(x_ticks, xa):
        x_ticks = xa.ticks(len(x_ticks) - 1)

    svg = _Svg(_W, _H, title)
    _frame_and_grid(svg, plot, xa, ya, x_ticks, y_ticks)

    # the limits: SLO (vertical) and budget (horizontal), under the points
    segments: list[tuple[float, float, float, float]] = []  # what the legend and the label should not cover
    if slo is not None:
        sx = xa.px(slo)
        svg.open("latency-slo")
        svg.add(_line(sx, plot.y0, sx, plot.y1, stroke=_SLO_COLOUR, stroke_width="1.2",
                      stroke_dasharray="6 4"))
        svg.close()
        segments.append((sx, plot.y0, sx, plot.y1))
    if budget_usd is not None:
        by = ya.px(budget_usd)
        svg.open("budget")
        svg.add(_line(plot.x0, by, plot.x1, by, stroke=_BUDGET_COLOUR, stroke_width="1.4",
                      stroke_dasharray="2 3"))
        svg.close()
        segments.append((plot.x0, by, plot.x1, by))

    others = [(p, x) for p, x in points if not p.pareto and p.id != chosen_id]
    front = sorted(((p, x) for p, x in points if p.pareto), key=lambda t: (t[1], t[0].monthly_cost_usd))
    dots: list[tuple[float, float]] = []
    if others:
        svg.open("candidates", fill=_CANDIDATE_COLOUR, fill_opacity="0.8")
        for p, x in others:
            px, py = xa.px(x), ya.px(p.monthly_cost_usd)
            dots.append((px, py))
            svg.add(f"{_circle(px, py, 3.6)[:-2]}><title>{_esc(_point_title(p, x, metric))}</title></circle>")
        svg.close()
    if front:
        vertices = [(xa.px(x), ya.px(p.monthly_cost_usd)) for p, x in front]
        steps = [vertices[0]]
        for (_, y_prev), (x_next, y_next) in itertools.pairwise(vertices):
            steps += [(x_next, y_prev), (x_next, y_next)]  # "post" steps: across at the old cost, then down
        d = "M " + " L ".join(f"{_f(x)} {_f(y)}" for x, y in steps)
        svg.open("pareto-front")
        svg.add(f'<path d="{d}" fill="none" stroke="{_FRONT_COLOUR}" stroke-width="1.5" stroke-opacity="0.75" '
                'stroke-linejoin="round"/>')
        svg.close()
        segments += [(a[0], a[1], b[0], b[1]) for a, b in itertools.pairwise(steps)]
        svg.open("pareto-points", fill=_FRONT_COLOUR, stroke="#ffffff", stroke_width="0.8")
        for (p, x), (px, py) in zip(front, vertices, strict=True):
            dots.append((px, py))
            svg.add(f"{_circle(px, py, 4.4)[:-2]}><title>{_esc(_point_title(p, x, metric))}</title></circle>")
        svg.close()
    cx, cy = xa.px(chosen_x * metric.scale), ya.px(chosen.monthly_cost_usd)
    star = _Box(cx - 11, cy - 11, cx + 11, cy + 11)
    svg.open(_xml_id(chosen.id))
    tip = _esc(_point_title(chosen, chosen_x * metric.scale, metric))
    svg.add(f'<polygon points="{_star_points(cx, cy + 1.5, 11.5)}" fill="{_STAR_COLOUR}" stroke="#000000" '
            f'stroke-width="0.9" stroke-linejoin="round"><title>{tip}</title></polygon>')
    svg.close()

    # the chosen plan's label, inside the plot, off the points
    label = f"{plan_label(chosen)}: {_usd(chosen.monthly_cost_usd)}/month, {metric.fmt(chosen_x)}"
    label_box = _chosen_label(svg, label, cx, cy, plot, dots, segments, xa.fraction(chosen_x * metric.scale),
                              ya.fraction(chosen.monthly_cost_usd))

    entries: list[tuple[str, str]] = []
    if others:
        entries.append(("candidate", "candidate"))
    if front:
        entries.append(("front", "Pareto front"))
    entries.append(("chosen", "chosen"))
    if latency_slo_s is not None:
        entries.append(("slo", f"{metric.name} SLO {metric.fmt(latency_slo_s)}"))
    if budget_usd is not None:
        entries.append(("budget", f"budget {_usd(budget_usd)}/month"))
    _legend(svg, entries, plot, dots, segments, [label_box, star])

    # titles and the note
    svg.text((plot.x0 + plot.x1) / 2, 26, title, size=_TITLE_SIZE, anchor="middle", bold=True, gid="chart-title")
    svg.text((plot.x0 + plot.x1) / 2, plot.y1 + 20 + _LABEL_SIZE + 8, metric.axis_label(), size=_LABEL_SIZE,
             anchor="middle")
    svg.text(14 + _LABEL_SIZE - 2, (plot.y0 + plot.y1) / 2, "monthly cost (USD)", size=_LABEL_SIZE,
             anchor="middle", rotate=True)
    note = f"{len(points)} candidate{'s' if len(points) != 1 else ''}"
    if missing:
        note += f"; {missing} without a predicted {kind} not shown"
    if log_x or log_y:
        note += "; log scale: " + " and ".join(a for a, on in (("x", log_x), ("y", log_y)) if on)
    svg.text(8, _H - 8, note, size=_NOTE_SIZE, fill=_MUTED, gid="chart-note")
    return svg.render()


def _point_title(plan: Plan, x: float, metric: _Metric) -> str:
    """The tooltip of a point: its label, cost and latency (in the axis unit)."""
    return f"{plan_label(plan)}: {_usd(plan.monthly_cost_usd)}/month, {_num(x)} {metric.unit} ({plan.id})"


def _ticks_crowded(ticks: list[float], axis: _Axis) -> bool:
    """Whether neighbouring x tick labels would touch."""
    spans = [(axis.px(t), text_width(_num(t), _TICK_SIZE)) for t in ticks]
    return any(b - a < (wa + wb) / 2 + 10 for (a, wa), (b, wb) in itertools.pairwise(spans))


def _frame_and_grid(svg: _Svg, plot: _Box, xa: _Axis, ya: _Axis, x_ticks: list[float],
                    y_ticks: list[float]) -> None:
    svg.open("grid", stroke=_GRID_COLOUR, stroke_width="0.8")
    for t in x_ticks:
        svg.add(_line(xa.px(t), plot.y0, xa.px(t), plot.y1))
    for t in y_ticks:
        svg.add(_line(plot.x0, ya.px(t), plot.x1, ya.px(t)))
    svg.close()
    svg.add(f'<rect id="plot-area" x="{_f(plot.x0)}" y="{_f(plot.y0)}" width="{_f(plot.x1 - plot.x0)}" '
            f'height="{_f(plot.y1 - plot.y0)}" fill="none" stroke="#333333" stroke-width="1"/>')
    svg.open("x-ticks")
    for t in x_ticks:
        x = xa.px(t)
        svg.add(_line(x, plot.y1, x, plot.y1 + 4, stroke="#333333"))
        svg.text(x, plot.y1 + 6 + _TICK_SIZE, _num(t), size=_TICK_SIZE, anchor="middle")
    svg.close()
    svg.open("y-ticks")
    for t in y_ticks:
        y = ya.px(t)
        svg.add(_line(plot.x0 - 4, y, plot.x0, y, stroke="#333333"))
        svg.text(plot.x0 - 7, y + 0.35 * _TICK_SIZE, _usd(t), size=_TICK_SIZE, anchor="end")
    svg.close()


def _clutter(box: _Box, dots: Sequence[tuple[float, float]],
             segments: Sequence[tuple[float, float, float, float]], avoid: Sequence[_Box]) -> float:
    """How much a box would hide: points under it, lines through it, boxes it overlaps (heavily)."""
    score = float(sum(1 for x, y in dots if box.holds(x, y, margin=4)))
    score += 0.5 * sum(1 for s in segments if box.crosses(*s))
    score += 100.0 * sum(1 for b in avoid if box.overlaps(b))
    return score


def _chosen_label(svg: _Svg, label: str, cx: float, cy: float, plot: _Box, dots: Sequence[tuple[float, float]],
                  segments: Sequence[tuple[float, float, float, float]], fx: float, fy: float) -> _Box:
    """Draw the chosen plan's label in a white box beside the star, towards the inside of the plot (one or two
    lines, whichever fits), joined to the star by a thin line. Returns the box."""
    size, pad, lead = _CHOSEN_SIZE, 5.0, _CHOSEN_SIZE * 1.3
    lines = [label]
    if text_width(label, size, bold=True) + 2 * pad > 0.5 * (plot.x1 - plot.x0) and ": " in label:
        head, tail = label.split(": ", 1)
        lines = [head + ": ", tail]
    w = max(text_width(t, size, bold=True) for t in lines) + 2 * pad
    h = len(lines) * lead + 2 * pad - (lead - size) + 2
    right, up = fx <= 0.55, fy <= 0.7  # preferred: away from the nearer plot edge
    options = []
    for go_right, go_up in ((right, up), (right, not up), (not right, up), (not right, not up)):
        x0 = cx + 16 if go_right else cx - 16 - w
        y0 = cy - 14 - h if go_up else cy + 14
        x0 = min(max(x0, plot.x0 + 4), plot.x1 - 4 - w)  # pushed inside the plot
        y0 = min(max(y0, plot.y0 + 4), plot.y1 - 4 - h)
        options.append(_Box(x0, y0, x0 + w, y0 + h))
    star = _Box(cx - 12, cy - 12, cx + 12, cy + 12)
    box = min(options, key=lambda b: (_clutter(b, dots, segments, [star]), options.index(b)))
    # the leader: from the star's edge towards the nearest point of the box
    nx, ny = min(max(cx, box.x0), box.x1), min(max(cy, box.y0), box.y1)
    svg.open("chosen-label")
    dist = math.hypot(nx - cx, ny - cy)
    if dist > 12:
        sx, sy = cx + (nx - cx) * 11 / dist, cy + (ny - cy) * 11 / dist
        svg.add(_line(sx, sy, nx, ny, stroke="#444444", stroke_width="0.8"))
    svg.add(_rect(box.x0, box.y0, w, h, rx="4", fill="#ffffff", fill_opacity="0.94", stroke="#444444",
                  stroke_width="0.8"))
    if len(lines) == 1:
        svg.text(box.x0 + pad, box.y0 + pad + size * 0.93, label, size=size, bold=True)
    else:  # one <text> with two lines: the whole label stays one searchable string
        y1 = box.y0 + pad + size * 0.93
        svg.add(f'<text x="{_f(box.x0 + pad)}" y="{_f(y1)}" font-size="{_f(size)}" font-weight="bold" '
                f'fill="#222222"><tspan>{_esc(lines[0])}</tspan><tspan x="{_f(box.x0 + pad)}" '
                f'y="{_f(y1 + lead)}">{_esc(lines[1])}</tspan></text>')
    svg.close()
    return box


def _legend(svg: _Svg, entries: list[tuple[str, str]], plot: _Box, dots: Sequence[tuple[float, float]],
            segments: Sequence[tuple[float, float, float, float]], avoid: Sequence[_Box]) -> None:
    """The legend, in the corner (or edge middle) of the plot where it hides the least."""
    size, lead, pad, key = _LEGEND_SIZE, _LEGEND_SIZE * 1.55, 7.0, 26.0
    w = max(text_width(t, size) for _, t in entries) + key + 2 * pad + 6
    h = len(entries) * lead + 2 * pad - (lead - size) + 2
    inset = 8.0
    left, right = plot.x0 + inset, plot.x1 - inset - w
    top, bottom = plot.y0 + inset, plot.y1 - inset - h
    mid_x, mid_y = (plot.x0 + plot.x1 - w) / 2, (plot.y0 + plot.y1 - h) / 2
    spots = [(right, top), (left, top), (right, bottom), (left, bottom), (right, mid_y), (left, mid_y),
             (mid_x, top), (mid_x, bottom)]
    boxes = [_Box(x, y, x + w, y + h) for x, y in spots]
    box = min(boxes, key=lambda b: (_clutter(b, dots, segments, avoid), boxes.index(b)))
    svg.open("legend")
    svg.add(_rect(box.x0, box.y0, w, h, rx="4", fill="#ffffff", fill_opacity="0.92", stroke="#cccccc",
                  stroke_width="0.8"))
    for i, (kind, text) in enumerate(entries):
        base = box.y0 + pad + size * 0.93 + i * lead
        mid, kx = base - size * 0.35, box.x0 + pad + key / 2
        if kind == "candidate":
            svg.add(_circle(kx, mid, 3.6, fill=_CANDIDATE_COLOUR, fill_opacity="0.8"))
        elif kind == "front":
            svg.add(_line(kx - 11, mid, kx + 11, mid, stroke=_FRONT_COLOUR, stroke_width="1.5",
                          stroke_opacity="0.75"))
            svg.add(_circle(kx, mid, 4.4, fill=_FRONT_COLOUR, stroke="#ffffff", stroke_width="0.8"))
        elif kind == "chosen":
            svg.add(f'<polygon points="{_star_points(kx, mid + 1, 8)}" fill="{_STAR_COLOUR}" stroke="#000000" '
                    'stroke-width="0.8" stroke-linejoin="round"/>')
        elif kind == "slo":
            svg.add(_line(kx - 11, mid, kx + 11, mid, stroke=_SLO_COLOUR, stroke_width="1.2",
                          stroke_dasharray="6 4"))
        else:
            svg.add(_line(kx - 11, mid, kx + 11, mid, stroke=_BUDGET_COLOUR, stroke_width="1.4",
                          stroke_dasharray="2 3"))
        svg.text(box.x0 + pad + key + 6, base, text, size=size)
    svg.close()


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


def security_line(plan: Plan) -> str:
    """The security flags under the placement diagram: residency, then every protection the plan turns on."""
    sec = plan.security
    regions = ", ".join(sec.allowed_regions) if sec.allowed_regions else "any region"
    flags = [f"residency: {regions}"]
    flags += [name for name, on in (("encryption at rest", sec.encryption_at_rest),
                                    ("private networking", sec.private_networking),
                                    ("dedicated tenancy", sec.dedicated_tenancy),
                                    ("deny-by-default network", sec.deny_by_default_network)) if on]
    return "; ".join(flags)


def placement_svg(plan: Plan) -> str:
    """SVG text: a box per part (where it runs, instance, accelerators, replicas, precision, cost) and the
    data paths from the users to each part, labelled with the traffic share and the data class."""
    head_size, body_size, label_size = 12.5, 11.5, 11.0
    title = f"{plan.model.name}: where it runs ({plan.placement}, {_usd(plan.monthly_cost_usd)}/month)"
    flags = security_line(plan)
    headers = [f"{_where(p)}  [{p.role}]" for p in plan.parts]
    bodies = [_part_lines(p, plan) for p in plan.parts]
    labels = [path_label(plan, p).split(": ", 1) for p in plan.parts]

    src_text = "training data" if plan.workload == "training" else "users"
    src_sub = f"{plan.security.privacy} data"
    src_w = max(120.0, text_width(src_text, 14, bold=True) + 36, text_width(src_sub, 11) + 36)
    src_h = 64.0
    box_w = max(220.0, *(text_width(h, head_size, bold=True) + 28 for h in headers),
                *(text_width(t, body_size) + 28 for lines in bodies for t in lines))
    box_h = 14 + head_size + 3 * 19 + 14.0
    gap = 22.0
    label_w = max(text_width(t, label_size) for lines in labels for t in lines) + 14
    col_w = max(230.0, label_w + 70)

    n = len(plan.parts)
    top = 48.0
    stack = n * box_h + (n - 1) * gap
    x_src = 16.0
    x_box = x_src + src_w + col_w
    width = max(x_box + box_w + 16, text_width(title, 14, bold=True) + 32, text_width(flags, 10.5) + 32)
    height = top + max(stack, src_h) + 46
    src_mid = top + max(stack, src_h) / 2

    svg = _Svg(width, height, title)
    svg.text(width / 2, 27, title, size=14, anchor="middle", bold=True, gid="chart-title")

    # the source: users (inference) or the training data set, centred on the stack of parts
    svg.open("source")
    svg.add(_rect(x_src, src_mid - src_h / 2, src_w, src_h, rx="10", fill="#f2f2f2", stroke="#555555",
                  stroke_width="1.2"))
    svg.text(x_src + src_w / 2, src_mid - 3, src_text, size=14, anchor="middle", bold=True)
    svg.text(x_src + src_w / 2, src_mid + 17, src_sub, size=11, anchor="middle", fill="#444444")
    svg.close()

    stack_top = top + (max(stack, src_h) - stack) / 2
    for i, part in enumerate(plan.parts):
        colour = _PLACEMENT_COLOURS.get(part.placement, "#555555")
        gid = f"{i}-{_safe_id(part.role)}"
        y0 = stack_top + i * (box_h + gap)
        mid = y0 + box_h / 2
        svg.open(f"part-{gid}")
        svg.add(_rect(x_box, y0, box_w, box_h, rx="10", fill=colour, fill_opacity="0.1", stroke=colour,
                      stroke_width="1.6"))
        svg.text(x_box + 14, y0 + 14 + head_size * 0.93, headers[i], size=head_size, bold=True, fill=colour,
                 preserve=True)
        for j, line in enumerate(bodies[i]):
            svg.text(x_box + 14, y0 + 14 + head_size + 19 * (j + 1), line, size=body_size)
        svg.close()

        # the data path: an arrow as thick as its traffic share, labelled on the line
        x1, y1, x2, y2 = x_src + src_w, src_mid, x_box - 2, mid
        stroke = 1.5 + 2.5 * part.traffic_fraction
        length = math.hypot(x2 - x1, y2 - y1)
        ux, uy = (x2 - x1) / length, (y2 - y1) / length
        head_len, head_half = 8 + 1.5 * stroke, 3.5 + stroke
        bx, by = x2 - ux * head_len, y2 - uy * head_len
        svg.open(f"path-{gid}")
        svg.add(_line(x1, y1, bx + ux, by + uy, stroke=colour, stroke_width=_f(stroke)))
        svg.add(f'<polygon points="{_f(x2)},{_f(y2)} {_f(bx - uy * head_half)},{_f(by + ux * head_half)} '
                f'{_f(bx + uy * head_half)},{_f(by - ux * head_half)}" fill="{colour}"/>')
        lx, ly = (x1 + x2) / 2, (y1 + y2) / 2
        lead = label_size * 1.3
        lw = max(text_width(t, label_size) for t in labels[i]) + 14
        lh = len(labels[i]) * lead + 10 - (lead - label_size) + 2
        svg.add(_rect(lx - lw / 2, ly - lh / 2, lw, lh, rx="4", fill="#ffffff", stroke=colour,
                      stroke_width="0.8"))
        for j, t in enumerate(labels[i]):
            svg.text(lx, ly - lh / 2 + 6 + label_size * 0.93 + j * lead, t, size=label_size, anchor="middle")
        svg.close()

    svg.text(16, height - 16, flags, size=10.5, fill=_MUTED, gid="security")
    return svg.render()


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
