"""The pull-request pictures (``stacks/charts.py``): valid SVG, the chosen plan's label as searchable text,
the Pareto front, SLO and budget lines, round ticks, labels that stay inside the plot and off each other, escaped
text, the placement diagram's parts and data paths, identical bytes, and no plotting library imported."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from itertools import combinations
from pathlib import Path

import pytest

import planner
from planner.errors import InputError
from planner.plan import Plan
from stacks import charts
from tests import factories

SVG = "{http://www.w3.org/2000/svg}"
ROOT = Path(__file__).resolve().parent.parent


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag == f"{SVG}svg"
    return root


def _texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def _ids(root: ET.Element) -> set[str]:
    return {el.attrib["id"] for el in root.iter() if "id" in el.attrib}


def _llm_candidates() -> list[Plan]:
    """The chosen single-GPU plan plus runners-up with other costs/latencies; some on the Pareto front."""
    base = factories.cloud_llm_single_gpu()
    out = [base]
    rows = [(1500.0, 0.9, True), (4000.0, 0.05, True), (9000.0, 0.03, False), (6000.0, 0.3, False),
            (2200.0, 0.5, False), (3000.0, 0.08, True)]
    for i, (cost, ttft, pareto) in enumerate(rows):
        out.append(base.model_copy(update={
            "id": f"cand-{i}", "rank": i + 2, "monthly_cost_usd": cost, "pareto": pareto,
            "predicted": base.predicted.model_copy(update={"ttft_s": ttft}),
        }))
    return out


def _render(plans: list[Plan] | None = None, **kw: object) -> str:
    plans = plans if plans is not None else _llm_candidates()
    args: dict[str, object] = {"chosen_id": plans[0].id if plans else "none", "latency_slo_s": 1.0,
                               "budget_usd": 5000.0, "title": "llama-3-8b: cost vs TTFT"}
    args.update(kw)
    return charts.cost_latency_svg(plans, **args)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ cost vs latency


def test_cost_latency_is_valid_svg_with_the_chosen_label_as_text() -> None:
    svg = _render()
    root = _parse(svg)
    texts = _texts(root)
    chosen = factories.cloud_llm_single_gpu()
    assert charts.plan_label(chosen) == "g6e.xlarge x2 fp8"
    # the label is a <text> element, so it can be searched in the file and in review
    assert any("g6e.xlarge x2 fp8" in t and "$2.72k/month" in t and "120 ms" in t for t in texts), texts
    ids = _ids(root)
    assert f"plan-{chosen.id}" in ids  # the star carries the chosen plan's id
    assert {"pareto-front", "pareto-points", "candidates", "latency-slo", "budget", "chosen-label"} <= ids
    assert "TTFT SLO 1 s" in texts and "budget $5k/month" in texts
    assert "time to first token (s, predicted)" in texts and "monthly cost (USD)" in texts
    assert "llama-3-8b: cost vs TTFT" in texts
    assert "7 candidates; log scale: x" in texts  # TTFT spans 0.03..1 s: > 10x, so the x axis is logarithmic


def test_cost_latency_is_byte_identical_and_carries_no_date_or_version() -> None:
    a, b = _render(), _render()
    assert a == b
    root = _parse(a)
    creators = ["".join(el.itertext()) for el in root.iter("{http://purl.org/dc/elements/1.1/}creator")]
    assert creators == ["mlplan"] == [charts.SVG_CREATOR]  # the tool, no version
    assert "<dc:date>" not in a and planner.__version__ not in a
    assert str(ROOT) not in a


def test_cost_latency_is_byte_identical_across_processes() -> None:
    """A fresh interpreter (another hash seed) writes the same bytes."""
    code = ("import sys; sys.path.insert(0, '.'); from tests.test_charts import _render; "
            "sys.stdout.write(_render())")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout == _render()


def test_pareto_front_is_a_staircase_through_the_front_points_only() -> None:
    root = _parse(_render())
    front = next(el for el in root.iter() if el.attrib.get("id") == "pareto-front")
    d = next(p for p in front.iter(f"{SVG}path")).attrib["d"]
    vertices = [tuple(float(v) for v in seg.split()[:2]) for seg in d.replace("M", "|").replace("L", "|")
                .split("|") if seg.strip()]
    # 4 front points (0.05, 0.08, 0.12 chosen, 0.9) -> a "post" step adds one corner between each pair
    assert len(vertices) == 2 * 4 - 1
    xs = [v[0] for v in vertices]
    ys = [v[1] for v in vertices]
    assert xs == sorted(xs)  # left to right by latency
    assert ys == sorted(ys)  # SVG y grows downwards: cost only falls along the front
    for i in range(0, len(vertices) - 1, 2):  # horizontal then vertical segments
        assert vertices[i][1] == vertices[i + 1][1]
        assert vertices[i + 1][0] == vertices[i + 2][0]


def test_slo_and_budget_lines_only_when_given_and_linear_axis_for_a_narrow_span() -> None:
    plans = [p for p in _llm_candidates() if 0.05 <= (p.predicted.ttft_s or 0.0) <= 0.3]
    root = _parse(_render(plans, latency_slo_s=None, budget_usd=None))
    ids = _ids(root)
    assert "latency-slo" not in ids and "budget" not in ids
    texts = _texts(root)
    assert f"{len(plans)} candidates" in texts  # 0.05..0.3 s is < 10x: no log-scale note
    assert "time to first token (ms, predicted)" in texts  # everything under a second: milliseconds


def test_an_slo_outside_the_data_still_shows() -> None:
    root = _parse(_render(latency_slo_s=30.0))
    assert "TTFT SLO 30 s" in _texts(root)


def test_candidates_without_the_metric_are_counted_not_drawn() -> None:
    plans = _llm_candidates()
    no_ttft = plans[1].predicted.model_copy(update={"ttft_s": None})
    plans.append(plans[1].model_copy(update={"id": "no-ttft", "predicted": no_ttft}))
    texts = _texts(_parse(_render(plans)))
    assert "7 candidates; 1 without a predicted TTFT not shown; log scale: x" in texts


def test_training_plans_use_wall_clock_hours() -> None:
    t = factories.training_zero()
    slow = t.model_copy(update={"id": "slow", "monthly_cost_usd": 1800.0, "pareto": True,
                                "predicted": t.predicted.model_copy(update={"training_time_s": 72000.0})})
    svg = charts.cost_latency_svg([t, slow], chosen_id=t.id, latency_slo_s=None, budget_usd=None, title="ft")
    texts = _texts(_parse(svg))
    assert "training wall-clock time (h, predicted)" in texts
    assert any(t_.startswith("p4d.24xlarge x2 bf16: $3.3k/month, 10 h") for t_ in texts), texts


def test_vision_plans_use_latency() -> None:
    e = factories.edge_vision()
    svg = charts.cost_latency_svg([e], chosen_id=e.id, latency_slo_s=0.05, budget_usd=None, title="cams")
    texts = _texts(_parse(svg))
    assert "latency per request (ms, predicted)" in texts and "latency SLO 50 ms" in texts
    assert any("jetson-orin-nano x12 int8" in t for t in texts)


@pytest.mark.parametrize(("plans", "kw", "match"), [
    ([], {}, "no candidate plans"),
    (None, {"chosen_id": "nope"}, "'nope' is not among the 7 candidates"),
    (None, {"latency_slo_s": -1.0}, "latency SLO must be a positive number, got -1.0"),
    (None, {"budget_usd": float("nan")}, "budget must be a positive number"),
])
def test_bad_input_is_an_input_error(plans: list[Plan] | None, kw: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match) as e:
        _render(plans, **kw)
    assert e.value.fix


def test_chosen_plan_without_its_latency_is_an_input_error() -> None:
    p = factories.cloud_llm_single_gpu()
    p = p.model_copy(update={"predicted": p.predicted.model_copy(update={"ttft_s": None, "latency_s": None})})
    with pytest.raises(InputError, match="has no predicted latency"):
        charts.cost_latency_svg([p], chosen_id=p.id, latency_slo_s=None, budget_usd=None, title="t")


def test_labels() -> None:
    assert charts.plan_label(factories.cloud_llm_tensor_parallel()) == "p5.48xlarge x1 bf16 TP4"
    assert charts.plan_label(factories.cloud_llm_pipeline_parallel()) == "p5.48xlarge x2 bf16 TP8 PP2"
    hybrid = factories.hybrid_onprem_cloud_burst()
    assert charts.plan_label(hybrid) == "l4-8gpu-server x1 int8 + g6.xlarge x3 int8"


# ---------------------------------------------------------------------------------------- placement diagram


def test_placement_of_a_hybrid_plan_shows_parts_and_labelled_data_paths() -> None:
    plan = factories.hybrid_onprem_cloud_burst()
    svg = charts.placement_svg(plan)
    root = _parse(svg)
    texts = _texts(root)
    assert "on-prem: datacenter  [sensitive]" in texts and "cloud: aws eu-central-1  [burst]" in texts
    assert "l4-8gpu-server x1 (owned)" in texts and "g6.xlarge x3 (on-demand)" in texts
    assert "3 replicas x 1 l4, TP1" in texts and "int8, vllm, $2.1k/month" in texts
    # the data paths: share and data class on the arrow (two lines of text each)
    assert "sensitive 40% (confidential)" in texts and "stays on-prem" in texts
    assert "non-sensitive 60%" in texts and "to aws eu-central-1" in texts
    assert "users" in texts and "confidential data" in texts
    assert "residency: eu; encryption at rest; private networking; deny-by-default network" in texts
    assert {"source", "part-0-sensitive", "part-1-burst", "path-0-sensitive", "path-1-burst"} <= _ids(root)
    assert svg == charts.placement_svg(plan)


@pytest.mark.parametrize("name", sorted(factories.ALL_PLANS))
def test_placement_renders_every_kind_of_plan(name: str) -> None:
    plan = factories.ALL_PLANS[name]()
    root = _parse(charts.placement_svg(plan))
    texts = _texts(root)
    assert any(t.startswith(f"{plan.parts[0].instance} x{plan.parts[0].nodes} (") for t in texts)
    assert (charts.path_label(plan, plan.parts[0]).split(": ")[0]) in texts


def test_path_labels() -> None:
    edge = factories.edge_vision()
    assert charts.path_label(edge, edge.parts[0]) == "all traffic 100% (internal): stays on device"
    t = factories.training_zero()
    assert charts.path_label(t, t.parts[0]) == "training data (internal)"
    h = factories.hybrid_onprem_cloud_burst()
    local = h.parts[0].model_copy(update={"role": "local", "placement": "edge"})
    fallback = h.parts[1].model_copy(update={"role": "fallback"})
    h2 = h.model_copy(update={"parts": (local, fallback)})
    assert charts.path_label(h2, local) == "local 40% (confidential): stays on device"
    assert charts.path_label(h2, fallback) == "fallback 60%: to aws eu-central-1"


# ------------------------------------------------------------------------------------------------- writer


def test_write_charts_for_a_hybrid_plan(tmp_path: Path) -> None:
    chosen = factories.hybrid_onprem_cloud_burst()
    runner_up = factories.cloud_llm_single_gpu(rank=2, pareto=False)
    names = charts.write_charts([chosen, runner_up], chosen, tmp_path, latency_slo_s=1.0, budget_usd=None)
    assert names == ["cost-latency.svg", "placement.svg"]
    first = {n: (tmp_path / n).read_bytes() for n in names}
    for n in names:
        _parse(first[n].decode("utf-8"))
    assert "l4-8gpu-server x1 int8 + g6.xlarge x3 int8" in first["cost-latency.svg"].decode()
    again = charts.write_charts([chosen, runner_up], chosen, tmp_path, latency_slo_s=1.0, budget_usd=None)
    assert again == names
    assert {n: (tmp_path / n).read_bytes() for n in names} == first


def test_write_charts_single_part_plan_adds_the_chosen_plan(tmp_path: Path) -> None:
    chosen = factories.cloud_llm_single_gpu()
    others = _llm_candidates()[1:]
    out = tmp_path / "new" / "dir"
    names = charts.write_charts(others, chosen, out, latency_slo_s=None, budget_usd=2500.0)
    assert names == ["cost-latency.svg"]
    assert sorted(p.name for p in out.iterdir()) == ["cost-latency.svg"]
    texts = _texts(_parse((out / "cost-latency.svg").read_text()))
    assert "llama-3-8b: monthly cost vs TTFT of 7 candidate plans" in texts
    assert "budget $2.5k/month" in texts


def test_write_charts_from_a_real_recommendation(tmp_path: Path) -> None:
    """What `mlplan plan` will do: chart the optimizer's own candidates for an example spec."""
    from planner.catalog import Catalog
    from planner.optimizer import recommend
    from planner.specs import load_spec

    spec = load_spec(ROOT / "examples" / "chat-eu-pii.yaml")
    rec = recommend(spec, Catalog.load(spec.catalog_overlay), top=20)
    chosen = rec.plans[0]
    c = spec.constraints
    names = charts.write_charts(list(rec.plans), chosen, tmp_path, latency_slo_s=c.ttft_s,
                                budget_usd=c.budget_usd_per_month)
    root = _parse((tmp_path / names[0]).read_text())
    assert any(charts.plan_label(chosen) in t for t in _texts(root))
    assert charts._xml_id(chosen.id) in _ids(root)
    assert any(p.pareto for p in rec.plans) and "pareto-front" in _ids(root)


def test_drawing_imports_no_plotting_library() -> None:
    """The charts are written as text: drawing both imports neither matplotlib nor numpy (seconds per plan)."""
    code = ("import sys; sys.path.insert(0, '.'); from tests.test_charts import _render; from tests import factories; "
            "from stacks import charts; _render(); charts.placement_svg(factories.hybrid_onprem_cloud_burst()); "
            "heavy = [m for m in ('matplotlib', 'numpy', 'PIL') if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# ------------------------------------------------------------------------------------------ layout and text


def _box(el: ET.Element) -> tuple[float, float, float, float]:
    x, y = float(el.attrib["x"]), float(el.attrib["y"])
    return x, y, x + float(el.attrib["width"]), y + float(el.attrib["height"])


def _group_rect(root: ET.Element, gid: str) -> tuple[float, float, float, float]:
    group = next(el for el in root.iter() if el.attrib.get("id") == gid)
    return _box(next(group.iter(f"{SVG}rect")))


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(a: tuple[float, float, float, float], outer: tuple[float, float, float, float]) -> bool:
    return outer[0] <= a[0] and a[2] <= outer[2] and outer[1] <= a[1] and a[3] <= outer[3]


def _tick_labels(root: ET.Element, gid: str) -> list[str]:
    group = next(el for el in root.iter() if el.attrib.get("id") == gid)
    return ["".join(t.itertext()) for t in group.iter(f"{SVG}text")]


def test_ticks_are_round_numbers() -> None:
    root = _parse(_render())
    # x: TTFT 0.03..1 s and the 1 s SLO, log scale: the 1-2-5 values of each decade inside the axis
    assert _tick_labels(root, "x-ticks") == ["0.05", "0.1", "0.2", "0.5", "1"]
    # y: $1.5k..$9k and the $5k budget, linear from $0: steps of $2k
    assert _tick_labels(root, "y-ticks") == ["$0", "$2k", "$4k", "$6k", "$8k"]
    plans = [p for p in _llm_candidates() if 0.05 <= (p.predicted.ttft_s or 0.0) <= 0.3]
    narrow = _parse(_render(plans, latency_slo_s=None, budget_usd=None))
    assert _tick_labels(narrow, "x-ticks") == ["50", "100", "150", "200", "250", "300"]  # ms, linear


def _example_charts() -> list[tuple[str, str]]:
    """The charts `mlplan plan` draws for every example spec (the optimizer's own candidates)."""
    from planner.catalog import Catalog
    from planner.optimizer import recommend
    from planner.specs import load_spec
    from stacks.writer import chart_slo

    out = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        if path.name.endswith(".catalog.yaml"):
            continue
        spec = load_spec(path)
        rec = recommend(spec, Catalog.load(spec.catalog_overlay), top=10)
        svg = charts.cost_latency_svg(list(rec.plans), chosen_id=rec.plans[0].id, latency_slo_s=chart_slo(spec),
                                      budget_usd=spec.constraints.budget_usd_per_month, title=path.stem)
        out.append((path.stem, svg))
    return out


def test_the_chosen_label_and_the_legend_stay_inside_the_plot_and_apart() -> None:
    cases = [("fixture", _render()), ("hybrid label", _render([factories.hybrid_onprem_cloud_burst()])),
             *_example_charts()]
    for name, svg in cases:
        root = _parse(svg)
        plot = _box(next(el for el in root.iter(f"{SVG}rect") if el.attrib.get("id") == "plot-area"))
        label, legend = _group_rect(root, "chosen-label"), _group_rect(root, "legend")
        assert _inside(label, plot) and _inside(legend, plot), name
        assert not _overlap(label, legend), name


def test_a_long_label_wraps_into_one_text_element() -> None:
    hybrid = factories.hybrid_onprem_cloud_burst()
    root = _parse(_render([hybrid]))
    label = next(el for el in root.iter() if el.attrib.get("id") == "chosen-label")
    (text,) = list(label.iter(f"{SVG}text"))
    assert len(list(text.iter(f"{SVG}tspan"))) == 2  # two lines on the chart ...
    assert "".join(text.itertext()).startswith(charts.plan_label(hybrid) + ": ")  # ... one string in the file
    assert "1 candidate" in _texts(root)


def test_text_is_escaped_for_xml() -> None:
    """Names come from the user's spec: markup characters are text, and characters XML forbids are replaced."""
    plan = factories.hybrid_onprem_cloud_burst()
    odd = 'a<b> & "c"\x01'
    plan = plan.model_copy(update={"model": plan.model.model_copy(update={"name": odd})})
    svg = charts.cost_latency_svg([plan], chosen_id=plan.id, latency_slo_s=None, budget_usd=None,
                                  title=f"{odd}: cost </svg>")
    assert "a&lt;b&gt; &amp; &quot;c&quot;\ufffd: cost &lt;/svg&gt;" in svg
    assert 'a<b> & "c"\ufffd: cost </svg>' in _texts(_parse(svg))
    placement = _texts(_parse(charts.placement_svg(plan)))
    assert any(t.startswith('a<b> & "c"\ufffd: where it runs') for t in placement)


def test_path_labels_of_a_three_part_plan_do_not_overlap() -> None:
    h = factories.hybrid_onprem_cloud_burst()
    onprem, cloud = h.parts
    edge = onprem.model_copy(update={"role": "local", "placement": "edge", "traffic_fraction": 0.2})
    three = h.model_copy(update={"parts": (edge, onprem.model_copy(update={"traffic_fraction": 0.7}),
                                           cloud.model_copy(update={"role": "fallback", "traffic_fraction": 0.1}))})
    root = _parse(charts.placement_svg(three))
    labels = [_group_rect(root, f"path-{i}-{p.role}") for i, p in enumerate(three.parts)]
    boxes = [_group_rect(root, f"part-{i}-{p.role}") for i, p in enumerate(three.parts)]
    for a, b in combinations(labels + boxes + [_group_rect(root, "source")], 2):
        assert not _overlap(a, b)
    width, height = float(root.attrib["width"]), float(root.attrib["height"])
    assert all(_inside(b, (0.0, 0.0, width, height)) for b in labels + boxes)
