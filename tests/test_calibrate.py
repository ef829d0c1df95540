"""Per-host serving figures: the catalog's ``serving_calibrations`` rows, the plan carrying what it was sized with,
the planner and the load-test prediction reading them, and ``mlplan calibrate`` writing them (a real Triton
server in the slow test)."""

from __future__ import annotations

import math
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from mlplan.cli import app
from planner.catalog import Catalog
from planner.errors import CatalogError, InputError
from planner.estimator.calibration import (
    SERVING_BACKGROUND_CORES,
    SERVING_CPU_S_PER_REQUEST,
    SERVING_FRONT_SHARE,
    SERVING_OVERHEAD_S,
)
from planner.estimator.overhead import at_rate, beside_path_cores, peak_beside_path_cores, tail_quantile
from planner.optimizer import recommend
from planner.optimizer.runtimes import runtime_cost
from planner.plan import RateOverhead, RuntimeCost
from planner.specs import load_spec

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "local-demo.yaml"


def _row(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"host": "localhost", "runtime": "ray", "overhead_ms": 1.5, "overhead_p99_ms": 4.0,
                           "cpu_ms_per_request": 6.0, "measured": date(2026, 12, 1), "source": "test run"}
    row.update(kw)
    return row


def _catalog(*rows: dict[str, Any]) -> Catalog:
    spec = load_spec(DEMO)
    return Catalog.load(spec.catalog_overlay).with_overlay({"serving_calibrations": list(rows)}, source="test")


def _local(cat: Catalog) -> Any:
    rec = recommend(load_spec(DEMO), cat)
    return next(p for p in rec.plans if p.parts[0].instance == "localhost")


def test_a_calibration_row_is_validated_and_keyed_by_host_and_runtime() -> None:
    cat = _catalog(_row(), _row(runtime="triton", cpu_ms_per_request=0.7))
    assert cat.serving_calibration("localhost", "ray").cpu_ms_per_request == 6.0  # type: ignore[union-attr]
    assert cat.serving_calibration("localhost", "triton").cpu_ms_per_request == 0.7  # type: ignore[union-attr]
    assert cat.serving_calibration("xeon-2s-cpu-server", "ray") is None
    later = cat.with_overlay({"serving_calibrations": [_row(cpu_ms_per_request=9.0)]}, source="later")
    assert later.serving_calibration("localhost", "ray").cpu_ms_per_request == 9.0  # type: ignore[union-attr]
    with pytest.raises(CatalogError, match="overhead_p99_ms"):
        _catalog(_row(overhead_p99_ms=1.0))  # a p99 below the median
    with pytest.raises(CatalogError, match="runtime"):
        _catalog(_row(runtime="uvicorn"))
    with pytest.raises(CatalogError, match="cpu_ms_per_request"):
        _catalog(_row(cpu_ms_per_request=-1))


def test_runtime_cost_is_the_hosts_figures_or_the_defaults() -> None:
    d = runtime_cost("ray")
    assert (d.overhead_s, d.overhead_p99_s, d.cpu_s_per_request) == (
        SERVING_OVERHEAD_S["ray"], SERVING_OVERHEAD_S["ray"], SERVING_CPU_S_PER_REQUEST["ray"])
    assert "defaults" in d.source and "mlplan calibrate" in d.source
    row = _catalog(_row()).serving_calibration("localhost", "ray")
    m = runtime_cost("ray", row)
    assert (m.overhead_s, m.overhead_p99_s, m.cpu_s_per_request) == pytest.approx((1.5e-3, 4e-3, 6e-3))
    assert m.source.startswith("measured on localhost 2026-12-01")
    assert runtime_cost("vllm").cpu_s_per_request == 0.0  # no measured CPU figure: it runs beside the GPU
    # the front process's share and the idle background: the defaults, or the host's own where it has them
    assert (d.front_share, d.background_cores) == (SERVING_FRONT_SHARE["ray"], SERVING_BACKGROUND_CORES["ray"])
    assert (m.front_share, m.background_cores) == (SERVING_FRONT_SHARE["ray"], 0.0)
    own = runtime_cost("ray", _catalog(_row(front_share=0.6, background_cores=0.2)).serving_calibration(
        "localhost", "ray"))
    assert (own.front_share, own.background_cores) == (0.6, 0.2)
    assert runtime_cost("triton", _catalog(_row(runtime="triton", front_share=0.6)).serving_calibration(
        "localhost", "triton")).front_share == 0.0  # Triton has no front process: its requests pass one
    with pytest.raises(CatalogError, match="front_share"):
        _catalog(_row(front_share=1.5))


def test_the_front_process_is_found_by_its_process_title(tmp_path: Path) -> None:
    """Ray titles its actor processes ``ray::<class>``: a process started under the proxy's title is found among
    others, by /proc/<pid>/cmdline, and a runtime without a front process has none."""
    import os
    import subprocess
    import time

    from stacks.deploy.calibrate import front_pids

    proxy = subprocess.Popen(["bash", "-c", "exec -a ray::ProxyActor sleep 30"])
    other = subprocess.Popen(["bash", "-c", "exec -a ray::ServeReplica:app:Model sleep 30"])
    try:
        for _ in range(100):  # until bash has exec'd under the new title
            if Path(f"/proc/{proxy.pid}/cmdline").read_bytes().startswith(b"ray::"):
                break
            time.sleep(0.02)
        pids = [os.getpid(), proxy.pid, other.pid, 999_999_999]
        assert front_pids(pids, "ray") == [proxy.pid]
        assert front_pids(pids, "triton") == []
    finally:
        proxy.kill()
        other.kill()
        proxy.wait()
        other.wait()


def test_other_work_on_a_small_host_slows_the_request_path() -> None:
    """Each single-threaded process of the request path gets an equal share of the threads the host's other work
    leaves (Linux CFS), a whole one where there are enough."""
    from planner.simulator.estimator_costs import host_slowdown, runtime_cpu_threads

    assert host_slowdown(2, 2, 0.0) == 1.0
    assert host_slowdown(2, 2, 0.2) == pytest.approx(2 / 1.8)
    assert host_slowdown(16, 2, 0.2) == 1.0
    assert host_slowdown(1, 1, 0.5) == pytest.approx(2.0)
    assert host_slowdown(2, 2, 5.0) == pytest.approx(2 / 0.05)  # busier than the host: large, finite
    from planner.estimator import profile

    cpu, gpu = profile(Catalog.load(None).accelerator("cpu-x86")), profile(Catalog.load(None).accelerator("h100-sxm"))
    assert runtime_cpu_threads(gpu, 0.006, 2, 64, 0.08) == 0  # a GPU host's runtime runs beside the model
    assert runtime_cpu_threads(cpu, 0.006, 2, 64, 0.08) == 3  # more threads than that change nothing
    assert runtime_cpu_threads(cpu, 0.006, 2, 2, 0.08) == 2


@given(o50=st.floats(0, 0.05), extra=st.floats(0, 0.05), q1=st.floats(0, 100), q2=st.floats(0, 100))
def test_the_overhead_tail_passes_through_the_median_and_the_p99_and_rises(o50: float, extra: float, q1: float,
                                                                            q2: float) -> None:
    c = RuntimeCost(overhead_s=o50, overhead_p99_s=o50 + extra, cpu_s_per_request=0.0, cpu_processes=1,
                    source="t")
    assert c.overhead_at(50) == o50 and c.overhead_at(10) == o50
    assert math.isclose(c.overhead_at(99), o50 + extra, rel_tol=1e-9, abs_tol=1e-15)
    lo, hi = sorted((q1, q2))
    assert c.overhead_at(lo) <= c.overhead_at(hi) + 1e-15
    assert math.isfinite(c.overhead_at(100))


ROWS = (RateOverhead(rate_rps=4, p50_s=2e-3, p99_s=4e-3), RateOverhead(rate_rps=40, p50_s=1e-3, p99_s=3e-3),
        RateOverhead(rate_rps=400, p50_s=0.5e-3, p99_s=2e-3))


def test_the_overhead_at_a_rate_interpolates_the_measured_rows_in_log_rate() -> None:
    c = RuntimeCost(overhead_s=2e-3, overhead_p99_s=4e-3, cpu_s_per_request=0.0, cpu_processes=1, source="t",
                    by_rate=ROWS)
    assert c.overhead_at(50, 40) == pytest.approx(1e-3) and c.overhead_at(99, 40) == pytest.approx(3e-3)
    assert c.overhead_at(50, 4 * math.sqrt(10)) == pytest.approx(1.5e-3)  # halfway in log rate
    assert c.overhead_at(99, 1) == pytest.approx(4e-3) and c.overhead_at(50, 1e4) == pytest.approx(0.5e-3)
    assert c.overhead_at(99) == pytest.approx(4e-3)  # no rate: the largest row (what the planner sizes with)
    # the mean is the integral of the quantile function (midpoint rule over 200,000 percentiles)
    n = 200_000
    integral = sum(tail_quantile(1e-3, 3e-3, 100 * (k + 0.5) / n) for k in range(n)) / n
    assert c.overhead_mean(40) == pytest.approx(integral, rel=1e-3)
    assert at_rate([(4, 2.0, 4.0)], 100) == (2.0, 4.0)


@given(rate=st.floats(0.01, 1e5), q=st.floats(50, 99.9))
def test_the_overhead_at_a_rate_stays_within_the_rows(rate: float, q: float) -> None:
    c = RuntimeCost(overhead_s=2e-3, overhead_p99_s=4e-3, cpu_s_per_request=0.0, cpu_processes=1, source="t",
                    by_rate=ROWS)
    got = c.overhead_at(q, rate)
    figures = [tail_quantile(r.p50_s, r.p99_s, q) for r in ROWS]
    assert min(figures) - 1e-12 <= got <= max(figures) + 1e-12 == c.overhead_at(q) + 1e-12


# the Ray demo's CPU per request at two of mlplan calibrate's rates (2026-12-02), the top one the request's own
DEMO_CPU = [(10.0, 0.0258), (150.0, 0.0109)]


def test_the_cpu_a_low_rate_measures_beyond_the_requests_own_takes_cores_beside_the_path() -> None:
    path = 0.0109
    assert beside_path_cores(DEMO_CPU, path, 10.0) == pytest.approx(10 * 0.0149)
    assert beside_path_cores(DEMO_CPU, path, 5.0) == pytest.approx(5 * 0.0149)  # the first row's figure below it
    assert beside_path_cores(DEMO_CPU, path, 150.0) == 0.0 == beside_path_cores(DEMO_CPU, path, 1e4)
    mid = math.sqrt(10 * 150)  # halfway in log rate: the mean of the two figures
    assert beside_path_cores(DEMO_CPU, path, mid) == pytest.approx(mid * ((0.0258 + 0.0109) / 2 - path))
    assert beside_path_cores([], path, 10.0) == 0.0 == beside_path_cores(DEMO_CPU, path, 0.0)
    # above the last rate the work it measured stays what it was (a path figure below it would otherwise grow)
    assert beside_path_cores(DEMO_CPU, 0.005, 1e4) == pytest.approx(150 * (0.0109 - 0.005))
    # the peak, where d/dt [r0 e^(tL) (a + tb)] = 0: t = 1 - 1 / ln 15 here, 55.3 req/s, 0.304 cores
    t = 1 - 1 / math.log(15)
    assert peak_beside_path_cores(DEMO_CPU, path) == pytest.approx(10 * 15 ** t * 0.0149 * (1 - t))
    cost = RuntimeCost(overhead_s=0.0, overhead_p99_s=0.0, cpu_s_per_request=path, cpu_processes=2,
                       background_cores=0.1, source="t",
                       by_rate=tuple(RateOverhead(rate_rps=r, p50_s=0.0, p99_s=0.0, cpu_s=c) for r, c in DEMO_CPU))
    assert cost.busy_cores(10.0) == pytest.approx(0.1 + 0.149)
    # the CPU per request at a rate: the rows' figure, the first row's below them, the request's own above them
    assert (cost.cpu_at(10.0), cost.cpu_at(1.0), cost.cpu_at(1e4)) == pytest.approx((0.0258, 0.0258, path))
    assert cost.cpu_at(mid) == pytest.approx((0.0258 + 0.0109) / 2)
    assert cost.model_copy(update={"by_rate": ()}).cpu_at(10.0) == path  # no rows: the one figure
    assert cost.peak_busy_cores() == pytest.approx(0.1 + peak_beside_path_cores(DEMO_CPU, path))
    assert cost.model_copy(update={"by_rate": ROWS}).busy_cores(10.0) == 0.1  # rows without a CPU figure
    m = runtime_cost("ray", _catalog(_row(by_rate=[{"rate_rps": 10, "p50_ms": 1, "p99_ms": 2, "cpu_ms": 25.8},
                                                   {"rate_rps": 150, "p50_ms": 1, "p99_ms": 2}])
                                     ).serving_calibration("localhost", "ray"))
    assert [r.cpu_s for r in m.by_rate] == [pytest.approx(0.0258), None]  # the catalog row's ms, in seconds


@given(rows=st.lists(st.tuples(st.floats(1, 1e4), st.floats(0, 0.05)), min_size=1, max_size=5,
                     unique_by=lambda x: x[0]), path=st.floats(0, 0.05))
def test_the_peak_of_the_cores_beside_the_path_is_their_most_at_any_rate(rows: list[tuple[float, float]],
                                                                        path: float) -> None:
    rows = sorted(rows)
    peak = peak_beside_path_cores(rows, path)
    grid = [rows[0][0] * (rows[-1][0] / rows[0][0]) ** (k / 1000) for k in range(1001)]
    most = max(beside_path_cores(rows, path, r) for r in [*grid, *(r for r, _ in rows), 10 * rows[-1][0]])
    assert most <= peak * (1 + 1e-9) + 1e-15
    assert peak <= most * 1.001 + 1e-12  # and it is reached (within the grid's spacing)


def test_the_planner_sizes_with_the_hosts_figures_and_the_plan_carries_them() -> None:
    """A host measured slower than the defaults (more CPU per request, a longer tail) gets a plan with less
    capacity and higher percentiles; one measured faster, more capacity. The plan names the figures it used."""
    default = _local(_catalog())
    assert default.parts[0].runtime_cost == runtime_cost("ray")
    fast = _local(_catalog(_row(overhead_ms=1.0, overhead_p99_ms=2.0, cpu_ms_per_request=5.0)))
    slow = _local(_catalog(_row(overhead_ms=8.0, overhead_p99_ms=30.0, cpu_ms_per_request=40.0)))
    assert fast.parts[0].runtime_cost.cpu_s_per_request == pytest.approx(5e-3)
    assert slow.parts[0].runtime_cost.source.startswith("measured on localhost")
    caps = [p.predicted.max_rps_within_slo for p in (fast, default, slow)]
    assert caps[0] > caps[1] > caps[2], caps
    p99s = [p.predicted.latency_p99_s for p in (fast, default, slow)]
    assert p99s[0] < p99s[1] < p99s[2], p99s
    # the p99 carries the overhead's own p99 (30 ms), not its median (8 ms)
    assert slow.predicted.latency_p99_s >= slow.predicted.network_rtt_s + 30e-3
    # measured at several rates: the plan's figures at the planned rate read the row there; the sizing the largest
    rows = [{"rate_rps": 4, "p50_ms": 100, "p99_ms": 235}, {"rate_rps": 20, "p50_ms": 1, "p99_ms": 2},
            {"rate_rps": 100, "p50_ms": 1, "p99_ms": 2}]
    by_rate = _local(_catalog(_row(overhead_ms=100, overhead_p99_ms=235, cpu_ms_per_request=5.0, by_rate=rows)))
    flat = _local(_catalog(_row(overhead_ms=1, overhead_p99_ms=2, cpu_ms_per_request=5.0)))
    assert len(by_rate.parts[0].runtime_cost.by_rate) == 3
    assert by_rate.predicted.latency_p50_s == pytest.approx(flat.predicted.latency_p50_s)  # 20 req/s: 1 ms
    assert by_rate.predicted.max_rps_within_slo < flat.predicted.max_rps_within_slo  # sized with 235 ms of 250
    # a host whose lower rates measured more CPU per request than the top one: that work takes its cores at the
    # planned rate, so its percentiles at the planned 20 req/s are higher; near its capacity (144 req/s, by the
    # 150 req/s row) there is next to none of that work, so the capacity is not lower by more than it
    cpu_rows = [{"rate_rps": 10, "p50_ms": 1, "p99_ms": 2, "cpu_ms": 25.8},
                {"rate_rps": 60, "p50_ms": 1, "p99_ms": 2, "cpu_ms": 15.8},
                {"rate_rps": 150, "p50_ms": 1, "p99_ms": 2, "cpu_ms": 10.9}]
    plain_rows = [{k: v for k, v in r.items() if k != "cpu_ms"} for r in cpu_rows]
    busy, plain = (_local(_catalog(_row(overhead_ms=1, overhead_p99_ms=2, cpu_ms_per_request=10.9,
                                        background_cores=0.1, by_rate=rows))) for rows in (cpu_rows, plain_rows))
    assert busy.parts[0].runtime_cost.busy_cores(20.0) > 0.3 > plain.parts[0].runtime_cost.busy_cores(20.0)
    assert busy.predicted.max_rps_within_slo <= plain.predicted.max_rps_within_slo
    assert busy.predicted.latency_p99_s > plain.predicted.latency_p99_s
    assert busy.predicted.latency_p50_s > plain.predicted.latency_p50_s
    # another runtime or host keeps the defaults
    other = _local(_catalog(_row(runtime="triton", cpu_ms_per_request=99.0)))
    assert other.parts[0].runtime_cost == default.parts[0].runtime_cost


def _demo_copy(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(overlay, spec, plan folder): the demo spec and a copy of its catalog overlay in ``tmp_path``, for
    ``write_row`` to change and ``mlplan plan`` to read."""
    overlay = tmp_path / "local-demo.catalog.yaml"
    shutil.copy(ROOT / "examples" / "local-demo.catalog.yaml", overlay)
    spec = tmp_path / "demo.yaml"
    spec.write_text(DEMO.read_text())
    return overlay, spec, tmp_path / "plan"


def test_the_load_test_prediction_reads_the_plans_figures(tmp_path: Path) -> None:
    from stacks.deploy.loadtest import simulate_plan
    from stacks.folder import load_folder

    overlay, spec, out = _demo_copy(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["plan", str(spec), "--out", str(out), "--no-preview"]).exit_code == 0
    before = simulate_plan(load_folder(out), 10.0, requests=1000, with_rtt=False)["latency"]
    from stacks.deploy.calibrate import write_row

    write_row(overlay, _row(overhead_ms=1.0, overhead_p99_ms=9.0, cpu_ms_per_request=5.0))
    assert runner.invoke(app, ["plan", str(spec), "--out", str(out), "--no-preview"]).exit_code == 0
    folder = load_folder(out)
    assert folder.plan.parts[0].runtime_cost.overhead_p99_s == pytest.approx(9e-3)
    after = simulate_plan(folder, 10.0, requests=1000, with_rtt=False)["latency"]
    assert after["p50_s"] < before["p50_s"]  # 1 ms + 5/2 ms of CPU against the defaults' 4 + 28/2 ms
    assert after["p99_s"] - after["p50_s"] >= 8e-3 - 1e-9  # the measured tail is in the prediction
    assert "measured on localhost" in (out / "PLAN.md").read_text()
    assert "beside the request path" not in (out / "PLAN.md").read_text()
    # a load client on the server's own 2 threads takes cores from it (a local load test counts its own CPU);
    # a remote one does not
    from stacks.deploy.loadtest import prediction

    busy, alone = (prediction(folder, 150.0, "http://127.0.0.1:8000/", requests=1000,
                              client_cpu_s_per_request=c)["simulated"]["latency"] for c in (2e-3, 0.0))
    assert busy["p50_s"] > alone["p50_s"]
    remote = prediction(folder, 150.0, "http://10.0.0.5:8000/", requests=1000, client_cpu_s_per_request=2e-3)
    assert remote["simulated_note"] is None
    # measured at several rates, with more CPU per request at the lower one: PLAN.md says so, and the prediction at
    # 10 req/s counts that work on the host's cores as a load client's would be counted (the same slowdown)
    write_row(overlay, _row(overhead_ms=1.0, overhead_p99_ms=9.0, cpu_ms_per_request=5.0,
                            by_rate=[{"rate_rps": 10, "p50_ms": 1, "p99_ms": 9, "cpu_ms": 20.0},
                                     {"rate_rps": 100, "p50_ms": 1, "p99_ms": 9, "cpu_ms": 5.0}]))
    assert runner.invoke(app, ["plan", str(spec), "--out", str(out), "--no-preview"]).exit_code == 0
    folder = load_folder(out)
    assert "20.00 ms at 10 req/s (the rest of it beside the request path" in (out / "PLAN.md").read_text()
    flat = folder.plan.parts[0].runtime_cost.model_copy(update={"by_rate": ()})
    rated = simulate_plan(folder, 10.0, requests=1000, with_rtt=False)["latency"]
    as_client = simulate_plan(folder, 10.0, requests=1000, with_rtt=False, serving=flat,
                              client_cpu_s_per_request=15e-3)["latency"]
    assert (rated["p50_s"], rated["p99_s"]) == pytest.approx((as_client["p50_s"], as_client["p99_s"]))
    assert rated["p50_s"] > simulate_plan(folder, 10.0, requests=1000, with_rtt=False, serving=flat)["latency"]["p50_s"]


def test_write_row_keeps_the_rest_of_the_overlay_and_replaces_its_own_row(tmp_path: Path) -> None:
    from stacks.deploy.calibrate import write_row

    overlay = tmp_path / "o.yaml"
    original = (ROOT / "examples" / "local-demo.catalog.yaml").read_text()
    overlay.write_text(original)
    write_row(overlay, _row())
    write_row(overlay, _row(runtime="triton", cpu_ms_per_request=0.5))
    write_row(overlay, _row(cpu_ms_per_request=7.0))  # ray again: replaces the first row
    text = overlay.read_text()
    assert text.startswith(original.rstrip("\n"))  # comments and other sections kept, byte for byte
    rows = yaml.safe_load(text)["serving_calibrations"]
    assert [(r["runtime"], r["cpu_ms_per_request"]) for r in rows] == [("triton", 0.5), ("ray", 7.0)]
    cat = Catalog.load(str(overlay))
    assert cat.serving_calibration("localhost", "ray").cpu_ms_per_request == 7.0  # type: ignore[union-attr]
    # a section followed by another section: only the section is rewritten
    overlay.write_text("serving_calibrations: []\n# note\nregions: []\n")
    write_row(overlay, _row())
    assert overlay.read_text().endswith("# note\nregions: []\n")
    before = overlay.read_text()
    with pytest.raises(CatalogError, match="overhead_p99_ms"):
        write_row(overlay, _row(overhead_p99_ms=0.1))
    assert overlay.read_text() == before  # refused before the file was touched
    assert [p.name for p in tmp_path.iterdir()] == ["o.yaml"]  # no temporary file left


def test_fit_takes_each_rates_overhead_and_the_top_rates_cpu(tmp_path: Path) -> None:
    from stacks.deploy.calibrate import RateRun, calibration_rates, fit
    from stacks.deploy.loadtest import simulate_plan
    from stacks.folder import load_folder

    out = tmp_path / "plan"
    assert CliRunner().invoke(app, ["plan", str(DEMO), "--out", str(out), "--no-preview"]).exit_code == 0
    folder = load_folder(out)
    light = RateRun(10.0, 200, 0, 2, p50_s=0.012, p99_s=0.030, cpu_s_per_request=0.011, front_share=0.6,
                    client_cpu_s_per_request=0.001)
    heavy = RateRun(60.0, 600, 0, 5, p50_s=0.010, p99_s=0.026, cpu_s_per_request=0.006, front_share=0.55,
                    client_cpu_s_per_request=0.0005)
    got = fit(folder, [light, heavy], idle_cores=0.1)
    assert got["cpu_ms_per_request"] == 6.0 and got["cpu_rate_rps"] == 60.0
    assert got["front_share"] == 0.55 and got["background_cores"] == 0.1  # the top rate's share; the idle CPU
    assert [r["cpu_ms"] for r in got["by_rate"]] == [11.0, 6.0]  # each rate's CPU per request
    bare = RuntimeCost(overhead_s=0, overhead_p99_s=0, cpu_s_per_request=0.006, cpu_processes=2, front_share=0.55,
                       background_cores=0.1, source="t")
    for run, row in zip((light, heavy), got["by_rate"], strict=True):
        # at 10 req/s the 5 ms the request's own work (the top rate's 6 ms) leaves of the 11 measured take 0.05
        # cores beside the request path, on top of the idle 0.1 (RuntimeCost.busy_cores)
        beside = run.rate_rps * (run.cpu_s_per_request - 0.006)
        sim = simulate_plan(folder, run.rate_rps, requests=4000, with_rtt=False,
                            client_cpu_s_per_request=run.client_cpu_s_per_request + beside / run.rate_rps,
                            serving=bare)["latency"]
        assert row["rate_rps"] == run.rate_rps
        assert row["p50_ms"] == pytest.approx((run.p50_s - sim["p50_s"]) * 1e3, abs=1e-3)
        assert row["p99_ms"] == pytest.approx((run.p99_s - sim["p99_s"]) * 1e3, abs=1e-3)
    idle_only = simulate_plan(folder, 10.0, requests=4000, with_rtt=False, serving=bare,
                              client_cpu_s_per_request=0.001)["latency"]
    assert got["by_rate"][0]["p50_ms"] < round((light.p50_s - idle_only["p50_s"]) * 1e3, 3)  # that work slows it
    assert got["overhead_ms"] == max(r["p50_ms"] for r in got["by_rate"])
    overloaded = RateRun(60.0, 600, 0, 64, p50_s=0.2, p99_s=1.0, cpu_s_per_request=0.004)  # out of connections
    kept = fit(folder, [light, overloaded])  # the top run did not keep up: left out
    assert kept["cpu_ms_per_request"] == 11.0 and [r["rate_rps"] for r in kept["by_rate"]] == [10.0]
    with pytest.raises(Exception, match="could not keep up"):
        fit(folder, [RateRun(10.0, 300, 40, 3, 0.5, 2.0, 0.01)])
    # the runs of the top rates moved by +-10%: the row carries the host's speed states, and each rate's overhead is
    # what its runs measured beyond the simulation in those states together (a longer simulated tail at 60 req/s)
    from dataclasses import replace

    moving = fit(folder, [replace(light, run_cpu_s=(0.011, 0.011)), replace(heavy, run_cpu_s=(0.0054, 0.0066))],
                 idle_cores=0.1)
    # ratios 0.9, 1, 1, 1.1 in three groups: 0.9 / 1 / 1.05, over their mean 0.9833
    assert moving["cpu_states"] == pytest.approx([0.915, 1.017, 1.068], abs=1e-3)
    assert moving["by_rate"][1]["p99_ms"] < got["by_rate"][1]["p99_ms"]
    assert got["cpu_states"] == []  # no run's own figure: one speed
    # 64 connections, one request each: 320 req/s, 2.1x the last rung, which it ends at
    assert calibration_rates(0.2) == [10.0, 25.0, 60.0, 150.0, 320.0]
    assert calibration_rates(0.005) == [10.0, 25.0, 60.0, 150.0, 400.0, 800.0]  # the client's own limit
    assert calibration_rates(1.0) == [10.0, 25.0, 60.0]  # 64 req/s: too near 60 to add a run
    assert calibration_rates(0.16) == [10.0, 25.0, 60.0, 150.0, 400.0]  # exactly a rung
    assert calibration_rates(10.0) == [10.0]  # always the first (6.4 req/s is below it)
    assert calibration_rates(1.0, top_rps=100.0) == [10.0, 25.0, 60.0, 100.0]  # a top the user asks for


def test_each_rate_is_measured_once_in_each_pass_up_the_ladder_until_one_overloads() -> None:
    """A rate's runs are spread over the calibration (one per pass up the ladder, in order), each a third of its
    requests; the first run that overloads the server ends that pass and every later one there, and the rates come
    back up to that one, each with the runs it had."""
    from stacks.deploy.calibrate import CONCURRENCY, SEGMENTS, _Segment, ladder_passes, requests_at

    order: list[tuple[float, int, int]] = []

    def run_one(rate: float, n: int, seed: int) -> _Segment:
        order.append((rate, n, seed))
        # 150 req/s overloads in the second pass only (the host slowed down), 400 in the first
        hot = rate >= 400 or (rate == 150 and seed == 1)
        return _Segment((0.01,) * n, n, 0, CONCURRENCY if hot else 3, n / rate, 0.0, 0.0, 0.0)

    out = ladder_passes([10.0, 25.0, 60.0, 150.0, 400.0], 1500, run_one)
    assert SEGMENTS == 3
    # 400 overloads in the first pass, so 244.949 (midway down to 150) runs next, and passes; 150 overloads in
    # the second, so 94.868 (midway down to 60) runs next there and in the third pass
    assert [(r, s) for r, _, s in order] == [(10, 0), (25, 0), (60, 0), (150, 0), (400, 0), (244.949, 0),
                                             (10, 1), (25, 1), (60, 1), (150, 1), (94.868, 1),
                                             (10, 2), (25, 2), (60, 2), (94.868, 2)]
    assert [r for r, _ in out] == [10.0, 25.0, 60.0, 94.868, 150.0]
    assert [len(parts) for _, parts in out] == [3, 3, 3, 2, 2]
    assert {n for r, n, _ in order if r == 10} == {requests_at(10, 1500) // 3} == {300}
    assert {n for r, n, _ in order if r == 400} == {requests_at(400, 1500) // 3} == {3200}  # 8 s a run
    assert not any(p.overloaded for _, parts in out[:4] for p in parts)
    assert any(p.overloaded for p in out[4][1])
    # nothing overloads: every rate, SEGMENTS runs each
    order.clear()
    calm = ladder_passes([10.0, 25.0], 90, lambda r, n, s: _Segment((0.01,), 1, 0, 1, 1.0, 0.0, 0.0, 0.0))
    assert [(r, len(p)) for r, p in calm] == [(10.0, 3), (25.0, 3)]


def test_a_rung_that_overloads_is_followed_by_the_rate_midway_below_it() -> None:
    """150 req/s overloads: 94.868 (between 60 and 150) is measured next and in every later pass; where that
    overloads too, 75.446 (1.26x from 60, under TOP_RUNG_RATIO: the last one tried)."""
    from stacks.deploy.calibrate import CONCURRENCY, _Segment, ladder_passes

    def ladder(limit: float) -> tuple[list[tuple[float, int]], list[tuple[float, int]]]:
        order: list[tuple[float, int]] = []

        def run_one(rate: float, n: int, seed: int) -> _Segment:
            order.append((rate, seed))
            return _Segment((0.01,), 1, 0, CONCURRENCY if rate > limit else 1, 1.0, 0.0, 0.0, 0.0)

        out = ladder_passes([10.0, 25.0, 60.0, 150.0, 400.0], 1500, run_one)
        return order, [(r, len(p)) for r, p in out]

    order, out = ladder(100.0)
    assert order == [(10, 0), (25, 0), (60, 0), (150, 0), (94.868, 0), (10, 1), (25, 1), (60, 1), (94.868, 1),
                     (10, 2), (25, 2), (60, 2), (94.868, 2)]
    assert out == [(10, 3), (25, 3), (60, 3), (94.868, 3), (150, 1)]  # 150 says it overloaded; 400 never ran
    order, out = ladder(70.0)
    assert order[:6] == [(10, 0), (25, 0), (60, 0), (150, 0), (94.868, 0), (75.446, 0)]
    assert out == [(10, 3), (25, 3), (60, 3), (75.446, 1)]
    # the first rung overloads: nothing below it to try
    order, out = ladder(5.0)
    assert order == [(10, 0)] and out == [(10, 1)]


def test_calibrate_refuses_what_it_cannot_measure_in_one_line(tmp_path: Path) -> None:
    from stacks.deploy.calibrate import calibrate

    out = tmp_path / "gpu"
    spec = ROOT / "examples" / "chat-eu-pii.yaml"
    assert CliRunner().invoke(app, ["plan", str(spec), "--out", str(out), "--no-preview"]).exit_code == 0
    with pytest.raises(InputError, match="target local"):
        calibrate(out, say=lambda s: None)
    demo = tmp_path / "demo"
    assert CliRunner().invoke(app, ["plan", str(DEMO), "--out", str(demo), "--no-preview"]).exit_code == 0
    with pytest.raises(InputError, match="top rate"):
        calibrate(demo, top_rps=1.0, say=lambda s: None)
    with pytest.raises(InputError, match="folder does not exist"):
        calibrate(demo, overlay=tmp_path / "nowhere" / "o.yaml", say=lambda s: None)
    res = CliRunner().invoke(app, ["calibrate", str(demo), "--max-rate", "x"])
    assert res.exit_code != 0


@pytest.mark.slow
def test_calibrate_measures_a_real_triton_server_and_the_next_plan_uses_it(tmp_path: Path) -> None:
    """``mlplan calibrate`` on this machine: tritonserver serves the demo plan, the row lands in the overlay with
    figures of the right order (this machine: 0.3-2 ms of CPU and 0.5-2 ms of overhead per request; the bounds
    are ten times wider), the server is stopped again, and the next plan is sized with the row."""
    from serving import launch
    from stacks.deploy.calibrate import calibrate
    from stacks.deploy.state import DeployState
    from stacks.folder import load_folder

    overlay = tmp_path / "local-demo.catalog.yaml"
    shutil.copy(ROOT / "examples" / "local-demo.catalog.yaml", overlay)
    spec = tmp_path / "demo.yaml"
    spec.write_text(DEMO.read_text().replace("runtime: ray", "runtime: triton"))
    out = tmp_path / "plan"
    assert CliRunner().invoke(app, ["plan", str(spec), "--out", str(out), "--no-preview"]).exit_code == 0
    said: list[str] = []
    report = calibrate(out, top_rps=25.0, requests=80, say=said.append)  # 8 s a run: 3 x 80 at 10, 3 x 200 at 25
    row = report["row"]
    assert (row["host"], row["runtime"]) == ("localhost", "triton")
    assert 0 < row["cpu_ms_per_request"] < 20 and 0 <= row["overhead_ms"] <= row["overhead_p99_ms"] < 50
    assert [r["rate_rps"] for r in report["runs"]] == [10.0, 25.0]
    assert [r["rate_rps"] for r in row["by_rate"]] == [10.0, 25.0]
    assert all(r["errors"] == 0 for r in report["runs"])
    # each run at least MIN_SECONDS_PER_RUN: 3 x 200 requests at 25 req/s, not the 80 asked (Poisson counts over
    # 8 s, less the warm-up requests: 2.5x the first rate's, never near the 1x of 80 at both)
    lo, hi = (r["completed"] for r in report["runs"])
    assert hi >= 1.6 * lo
    assert any("wrote localhost / triton" in s for s in said)
    rec = DeployState(out / ".mlplan", "x").target("local") or {}
    assert rec.get("status") != "deployed"  # calibrate stopped the server it started
    for r in rec.get("resources", []):
        assert not launch.session_members(int(r["sid"]))
    cat = Catalog.load(str(overlay))
    assert cat.serving_calibration("localhost", "triton") is not None
    assert CliRunner().invoke(app, ["plan", str(spec), "--out", str(out), "--no-preview"]).exit_code == 0
    cost = load_folder(out).plan.parts[0].runtime_cost
    assert cost.cpu_s_per_request == pytest.approx(row["cpu_ms_per_request"] / 1e3)
    assert cost.overhead_p99_s == pytest.approx(row["overhead_p99_ms"] / 1e3)


def test_the_hosts_speed_states_come_from_the_top_rates_runs() -> None:
    from stacks.deploy.calibrate import RateRun, speed_states

    def run(rate: float, cpu: float, each: tuple[float, ...]) -> RateRun:
        return RateRun(rate, 900, 0, 4, p50_s=0.01, p99_s=0.03, cpu_s_per_request=cpu, run_cpu_s=each)

    low = run(10.0, 0.02, (0.01, 0.04))  # the lowest rate's wild runs are left out: two rates above it
    kept = [low, run(60.0, 0.012, (0.0108, 0.012, 0.0132)), run(150.0, 0.010, (0.009, 0.010, 0.011))]
    assert speed_states(kept) == (0.9, 1.0, 1.1)  # each run over its rate's figure, in three equal groups
    skew = [run(150.0, 0.010, (0.009, 0.009, 0.009, 0.009, 0.0104, 0.0152))]
    states = speed_states(skew)  # groups 0.9 / 0.9 / (1.04 + 1.52) / 2 = 1.28, over their mean 1.0267
    assert states == pytest.approx((0.9 / 1.0267, 0.9 / 1.0267, 1.28 / 1.0267), abs=1e-3)
    assert sum(states) / len(states) == pytest.approx(1.0, abs=1e-3)  # the pooled figure stays the mean
    assert speed_states([run(150.0, 0.01, (0.01,))]) == ()  # one run says nothing of the spread
    assert speed_states([run(150.0, 0.01, ())]) == ()


def test_speed_states_scale_every_cpu_figure_and_the_plan_holds_in_the_slower_ones() -> None:
    cost = RuntimeCost(overhead_s=0.001, overhead_p99_s=0.002, cpu_s_per_request=0.01, cpu_processes=2,
                       background_cores=0.1, source="t", cpu_states=(0.8, 1.2),
                       by_rate=(RateOverhead(rate_rps=10, p50_s=0.001, p99_s=0.002, cpu_s=0.02),))
    slow = cost.scaled(2.0)
    assert (slow.cpu_s_per_request, slow.by_rate[0].cpu_s, slow.background_cores) == (0.02, 0.04, 0.2)
    assert slow.cpu_states == (0.8, 1.2) and slow.overhead_s == 0.001  # the spread and the overhead stay
    assert [s.cpu_s_per_request for s in cost.states()] == pytest.approx([0.008, 0.012])
    assert all(s.cpu_states == () for s in cost.states())
    assert cost.model_copy(update={"cpu_states": ()}).states() == (cost.model_copy(update={"cpu_states": ()}),)
    with pytest.raises(CatalogError, match="cpu_states"):
        _catalog(_row(cpu_states=[0.0, 1.0]))
    # a host whose speed moved by +-15% between the calibration's runs: the same figures plan less capacity within
    # the SLO (its slower stretches are the tail near the capacity), the plan carries the states, and the
    # percentiles at the planned rate, far below the capacity, stay within a few per cent
    steady = _local(_catalog(_row(overhead_ms=1, overhead_p99_ms=2, cpu_ms_per_request=10.0)))
    moving = _local(_catalog(_row(overhead_ms=1, overhead_p99_ms=2, cpu_ms_per_request=10.0,
                                  cpu_states=[0.85, 1.0, 1.15])))
    assert moving.parts[0].runtime_cost.cpu_states == (0.85, 1.0, 1.15)
    assert moving.predicted.max_rps_within_slo < 0.95 * steady.predicted.max_rps_within_slo  # type: ignore[operator]
    assert moving.predicted.latency_p50_s == pytest.approx(steady.predicted.latency_p50_s, rel=0.1)


def test_a_plan_sized_in_speed_states_says_so_and_its_load_test_prediction_pools_them(tmp_path: Path) -> None:
    from stacks.deploy.calibrate import write_row
    from stacks.deploy.loadtest import simulate_plan
    from stacks.folder import load_folder

    overlay, spec, out = _demo_copy(tmp_path)
    write_row(overlay, _row(overhead_ms=1.0, overhead_p99_ms=2.0, cpu_ms_per_request=10.0,
                            cpu_states=[0.85, 1.0, 1.15]))
    assert CliRunner().invoke(app, ["plan", str(spec), "--out", str(out), "--no-preview"]).exit_code == 0
    assert "speed states (x0.85, x1, x1.15 that CPU" in (out / "PLAN.md").read_text()
    folder = load_folder(out)
    cost = folder.plan.parts[0].runtime_cost
    steady = cost.model_copy(update={"cpu_states": ()})
    cap = folder.plan.predicted.max_rps_within_slo
    assert cap is not None
    pooled, plain = (simulate_plan(folder, cap, requests=3000, with_rtt=False, serving=s)["latency"]
                     for s in (cost, steady))
    assert pooled["p99_s"] > 1.2 * plain["p99_s"]  # near the capacity the slowest state's queue is the tail
    slow = simulate_plan(folder, cap, requests=3000, with_rtt=False, serving=steady.scaled(1.15))["latency"]
    assert plain["p99_s"] < pooled["p99_s"] <= slow["p99_s"] * 1.05
    slo = load_spec(DEMO).constraints.latency_s
    assert slo is not None and pooled["p99_s"] <= slo  # the capacity the plan shows holds in them all together
