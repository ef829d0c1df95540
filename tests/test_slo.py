"""SLOs that hold under load (issue 12, phase B): the spec's percentile, traffic and length fields, and plans sized
so their latency percentiles hold at the planned peak rate.

Oracles, each independent of planner/optimizer/slo.py (which sizes the plans):

- The plans are re-simulated here from what they carry (replicas, the part's engine settings, the serving
  settings, the runtime's router): the whole replica set behind its router, with another seed and four times the
  planner's request count. Its percentile at the spec's level must meet every SLO within a stated statistical
  margin (see MARGIN).
- The old sizing rule (idle TTFT, decode-only TPOT at the largest batch, replicas at 80% of saturation) is
  rebuilt from the estimator alone, and simulated at its planned rate: on examples/llama-70b-tight-ttft.yaml it
  misses its SLOs, which the new plan then meets.
- Hand arithmetic for the small formulas (request counts, the confidence percentile, the prefill queue).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.catalog import Catalog
from planner.errors import SpecError
from planner.estimator import estimate_edge, estimate_inference, profile
from planner.estimator.calibration import SERVING_CPU_PROCESSES, SERVING_CPU_S_PER_REQUEST, SERVING_OVERHEAD_S
from planner.models import resolve
from planner.optimizer import recommend
from planner.optimizer.slo import (
    MAX_ONGOING,
    QUEUE_HORIZON_S,
    confident_percentile,
    max_ongoing_requests,
    preferred_batch_sizes,
    prefill_queue_ttft,
    requests_for,
    screening_requests,
)
from planner.plan import Plan
from planner.simulator import RUNTIME_ROUTER, AffineBatchCost, Cluster, DynamicBatching, Lengths, Workload, simulate
from planner.simulator.estimator_costs import llm_replica, nonllm_replica
from planner.simulator.metrics import SimResult
from planner.specs import Spec, load_spec, spec_from_data

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("llama-70b-tight-ttft", "chat-eu-pii", "hybrid-clinic", "local-demo", "vision-jetson-fleet")
MARGIN = 0.10
"""Statistical margin of the independent re-simulation. The planner keeps a replica count when the upper
one-sigma bound of the percentile over 1,500 simulated requests (p99.26 for p99) meets the SLO; a run with another
seed reads its percentile from another sample of the same queue, whose spread at the tail (queueing makes
neighbouring requests' latencies correlated, so the effective sample is smaller than its count) is of the order of
5-10% on these plans. 10% of the SLO is the tolerance; a plan sized by the old idle rule misses by 50% to 4x
(test_the_old_rule_missed_under_load_and_the_new_plan_holds)."""
RESIM_PER_REPLICA = 2000
"""Requests per replica of a re-simulation (:func:`resim_requests`): more than the planner's own 1,500."""


def resim_requests(replicas: int) -> int:
    """Requests of an independent re-simulation of a whole part: 4,000, and at least RESIM_PER_REPLICA per replica.
    The planner measures one replica over 1,500 requests; a cluster run of 4,000 spread over 14 replicas sees 286
    per replica, too few for a tail set by rare full-slot episodes (chat-eu-pii on 14 L4s: p99 TTFT 0.29-2.06 s
    from seed to seed at 4,000 requests, 0.33-0.36 s at 28,000, 0.34 s over 100,000 on one replica)."""
    return max(4000, RESIM_PER_REPLICA * replicas)


def _rec(name: str) -> tuple[Spec, Catalog, Any]:
    spec = load_spec(ROOT / "examples" / f"{name}.yaml")
    cat = Catalog.load(spec.catalog_overlay)
    return spec, cat, recommend(spec, cat)


@pytest.fixture(scope="module")
def recs() -> dict[str, tuple[Spec, Catalog, Any]]:
    return {name: _rec(name) for name in EXAMPLES}


def resimulate(plan: Plan, spec: Spec, cat: Catalog, *, rate_rps: float, requests: int, seed: int,
               part_index: int = 0, router_limit: bool = True) -> SimResult:
    """The plan's part at ``rate_rps`` of its traffic, from the settings the plan carries: its replicas behind the
    runtime's router (``router_limit=False``: without Ray Serve's ``max_ongoing_requests``), its engine (LLM) or
    batcher settings, network RTT and the runtime's serving time."""
    part = plan.parts[part_index]
    arch = resolve(spec.model)
    w = spec.workload
    assert w.kind == "inference"
    srv = plan.serving
    cost = part.runtime_cost
    assert not cost.by_rate and cost.overhead_p99_s == cost.overhead_s  # the examples' hosts are not calibrated
    net = plan.predicted.network_rtt_s + cost.overhead_s
    if part.placement == "edge":
        dev = cat.edge_devices[part.instance]
        lat = estimate_edge(arch, dev, part.dtype, batch=1).latency_s
        engine: Any = DynamicBatching(runtime="ray" if part.runtime == "ray" else "triton", max_batch_size=1)
        cost: Any = AffineBatchCost(fixed_s=lat, per_item_s=0.0)
        wl = Workload(rate_rps=rate_rps, requests=requests, seed=seed)
        cluster = Cluster(part.replicas, "random", None, net)
        return simulate(wl, engine, cost, cluster, warmup=requests // 10)
    hw = profile(cat.accelerator(part.accelerator))
    if arch.is_llm:
        assert part.engine is not None and plan.model.input_tokens and plan.model.output_tokens
        rm = llm_replica(arch, hw, part.dtype, tp=part.tensor_parallel, pp=part.pipeline_parallel,
                         input_tokens=plan.model.input_tokens, output_tokens=plan.model.output_tokens,
                         memory_headroom=spec.constraints.memory_headroom, max_num_seqs=part.engine.max_num_seqs,
                         max_num_batched_tokens=part.engine.max_num_batched_tokens)
        wl = Workload(rate_rps=rate_rps, requests=requests, seed=seed,
                      input_tokens=Lengths.fixed(plan.model.input_tokens),
                      output_tokens=Lengths.fixed(plan.model.output_tokens), arrival_cv=w.burstiness)
    else:
        rm = nonllm_replica(arch, hw, part.dtype, runtime=part.runtime, max_batch_size=srv.max_batch_size,
                            max_queue_delay_s=srv.max_queue_delay_us / 1e6,
                            preferred_batch_sizes=srv.preferred_batch_sizes if part.runtime == "triton" else (),
                            seq=w.input_tokens, host_vcpu=part.node.replica_vcpu(part.accelerator_count),
                            cpu_s_per_request=part.runtime_cost.cpu_s_per_request,
                            cpu_processes=part.runtime_cost.cpu_processes, replicas=part.replicas,
                            front_share=part.runtime_cost.front_share,
                            other_cores=part.runtime_cost.busy_cores(rate_rps / part.replicas))
        wl = Workload(rate_rps=rate_rps, requests=requests, seed=seed, arrival_cv=w.burstiness)
    cluster = Cluster(part.replicas, RUNTIME_ROUTER.get(part.runtime, "random"),
                      srv.max_ongoing_requests if part.runtime == "ray" and router_limit else None, net,
                      front=rm.front)
    return simulate(wl, rm.engine, rm.cost, cluster, warmup=requests // 10)


def _worst_ratio(res: SimResult, spec: Spec) -> tuple[float, str]:
    """The largest measured / SLO ratio at the spec's percentile, and which SLO it is."""
    c = spec.constraints
    q = c.slo_percentile
    out = (0.0, "")
    llm = res.llm
    for name, slo, dist in (("ttft_s", c.ttft_s if llm else None, res.ttft), ("tpot_s", c.tpot_s if llm else None,
                                                                               res.tpot),
                            ("latency_s", c.latency_s, res.e2e)):
        if slo is None or dist.count == 0:
            continue
        r = dist.at(q) / slo
        if r > out[0]:
            out = (r, f"{name} p{q:g} {dist.at(q):.4g} s vs {slo:.4g} s")
    return out


# ------------------------------------------------------------------------------------------------- the spec


def _spec(workload: dict[str, Any] | None = None, constraints: dict[str, Any] | None = None) -> Spec:
    return spec_from_data({"model": {"preset": "llama-3-8b"}, "workload": workload or {},
                           "constraints": constraints or {}})


def test_slo_percentile_burstiness_and_lengths_are_bounded_strict_and_used() -> None:
    s = _spec({"input_tokens": 1000, "input_tokens_spread": 0.5, "burstiness": 2.5}, {"slo_percentile": 95})
    w = s.workload
    assert w.kind == "inference"
    assert s.constraints.slo_percentile == 95 and w.burstiness == 2.5 and w.max_input_tokens == 1500
    assert _spec().constraints.slo_percentile == 99 and _spec().workload.burstiness == 1.0  # type: ignore[union-attr]
    h = _spec({"output_tokens_histogram": [{"tokens": 64, "weight": 3}, {"tokens": 1024, "weight": 1}]}).workload
    assert h.kind == "inference" and h.output_tokens == 304 and h.max_output_tokens == 1024  # (3 x 64 + 1024) / 4
    bad: list[tuple[dict[str, Any], dict[str, Any], str]] = [
        ({}, {"slo_percentile": 99.99}, "less than or equal to 99.9"),
        ({}, {"slo_percentile": 40}, "greater than or equal to 50"),
        ({}, {"slo_percentile": True}, "not true/false"),
        ({}, {"slo_percentile": "99"}, "not a string"),
        ({"burstiness": 0.5}, {}, "greater than or equal to 1"),
        ({"burstiness": 11}, {}, "less than or equal to 10"),
        ({"input_tokens_spread": 0.99}, {}, "less than or equal to 0.95"),
        ({"output_tokens_histogram": [{"tokens": 64, "weight": False}]}, {}, "not true/false"),
        ({"output_tokens_histogram": [{"tokens": 0, "weight": 1}]}, {}, "greater than or equal to 1"),
        ({"output_tokens_histogram": [{"tokens": 64, "weight": 1}] * 65}, {}, "at most 64"),
        ({"output_tokens_histogram": []}, {}, "at least 1"),
        ({"output_tokens": 100, "output_tokens_histogram": [{"tokens": 64, "weight": 1}]}, {}, "differs from"),
        ({"input_tokens_spread": 0.2, "input_tokens_histogram": [{"tokens": 64, "weight": 1}]}, {}, "not both"),
    ]
    for workload, constraints, message in bad:
        with pytest.raises(SpecError, match=message):
            _spec(workload, constraints)


def test_length_distributions_and_burstiness_reach_the_simulated_plan() -> None:
    """The same load with bursty arrivals and spread-out lengths needs at least the replicas of the steady one,
    and the plan serves the longest request it may get."""
    base = {"requests_per_s": 20, "input_tokens": 1024, "output_tokens": 256}
    cons = {"ttft_s": 0.5, "tpot_s": 0.05, "placements": ["cloud"], "providers": ["aws"], "slo_percentile": 90}
    steady = recommend(_spec(base, cons), top=1).plans[0]
    rough = recommend(_spec({**base, "burstiness": 3.0, "input_tokens_spread": 0.9,
                             "output_tokens_histogram": [{"tokens": 64, "weight": 0.75},
                                                         {"tokens": 832, "weight": 0.25}]}, cons), top=1).plans[0]
    assert rough.parts[0].engine is not None and rough.parts[0].engine.max_model_len >= 1945 + 832
    # per accelerator-hour of the same shape: a rougher load never needs fewer replicas
    if (rough.accelerator, rough.tensor_parallel, rough.dtype) == (steady.accelerator, steady.tensor_parallel,
                                                                     steady.dtype):
        assert rough.replicas >= steady.replicas
    assert rough.monthly_cost_usd >= steady.monthly_cost_usd


# ------------------------------------------------------------------------------------------------ formulas


def test_request_counts_and_the_confidence_percentile() -> None:
    assert requests_for(99) == 1500 and requests_for(50) == 400 and requests_for(99.9) == 15_000
    assert screening_requests(99) == 500 and screening_requests(90) == requests_for(90)  # p90: all full length
    # 1,500 samples at p99: 15 above on average, sd sqrt(14.85) = 3.85, so 11.15 above: p99.26
    assert confident_percentile(99, 1500) == pytest.approx(100 * (1 - (15 - math.sqrt(14.85)) / 1500))
    assert confident_percentile(50, 400) == pytest.approx(100 * (1 - (200 - 10) / 400))
    assert preferred_batch_sizes(8) == (2, 4, 8) and preferred_batch_sizes(1) == (1,)
    assert preferred_batch_sizes(12) == (4, 8, 12)


def test_prefill_queue_ttft_is_an_md1_queue_with_an_exponential_tail() -> None:
    # S = 0.1 + 1 x 0.01 = 0.11 s, rho = 4 x 0.11 = 0.44; M/D/1 mean wait rho / (2 (1 - rho)) S = 0.04321 s;
    # P(wait > x) = rho exp(-rho x / W): the p99 wait is W / rho ln(rho / 0.01) = 0.3724 s; 80% of it + 0.1
    got = prefill_queue_ttft(0.1, 0.01, 1, 4.0, 0.0, 99)
    w = 0.44 / (2 * 0.56) * 0.11
    assert got == pytest.approx(0.1 + 0.8 * w / 0.44 * math.log(0.44 / 0.01))
    assert prefill_queue_ttft(0.1, 0.01, 1, 10.0, 0.0, 99) == math.inf  # rho >= 1
    assert prefill_queue_ttft(0.1, 0.01, 1, 0.05, 0.0, 99) == pytest.approx(0.1)  # rho < 1%: never waits at p99
    # four one-chunk prompts to a step, their prefill together 0.2 s: each holds S = (0.2 + 0.01) / 4 = 0.0525 s,
    # so 10 req/s (rho 1.1 one at a time) is rho 0.525 served four at a time
    bulk = prefill_queue_ttft(0.1, 0.01, 1, 10.0, 0.0, 99, per_step=4, step_prefill_s=0.2)
    w4 = 0.525 / (2 * 0.475) * 0.0525
    assert bulk == pytest.approx(0.1 + 0.8 * w4 / 0.525 * math.log(0.525 / 0.01))
    assert prefill_queue_ttft(0.1, 0.01, 2, 4.0, 0.0, 99, per_step=4, step_prefill_s=0.2) == pytest.approx(
        prefill_queue_ttft(0.1, 0.01, 2, 4.0, 0.0, 99))  # a prompt of two chunks fills its steps alone


# --------------------------------------------------------------------------------------- plans under load


def test_every_plan_meets_its_slos_when_resimulated_at_the_planned_peak(recs: dict[str, Any]) -> None:
    worst: list[tuple[float, str]] = []
    for name, (spec, cat, rec) in recs.items():
        w = spec.workload
        peak = w.requests_per_s * w.peak_to_average
        for plan in rec.plans:
            pr = plan.predicted
            assert pr.planned_rps == pytest.approx(peak, rel=1e-6), (name, plan.id)
            for i, part in enumerate(plan.parts):
                if part.expert_parallel > 1:
                    continue
                res = resimulate(plan, spec, cat, rate_rps=peak * part.traffic_fraction,
                                 requests=resim_requests(part.replicas), seed=2024, part_index=i)
                assert res.completed == res.requests
                ratio, what = _worst_ratio(res, spec)
                worst.append((ratio, f"{name} #{plan.rank} {plan.id} part {i}: {what}"))
    assert worst
    bad = [x for x in worst if x[0] > 1 + MARGIN]
    assert not bad, bad


def test_plans_carry_percentiles_headroom_and_the_settings_they_were_simulated_with(recs: dict[str, Any]) -> None:
    for name, (spec, _, rec) in recs.items():
        w = spec.workload
        peak = w.requests_per_s * w.peak_to_average
        for plan in rec.plans:
            pr = plan.predicted
            llm = plan.model.kind == "llm"
            lat = (pr.latency_p50_s, pr.latency_p90_s, pr.latency_p99_s)
            assert None not in lat and lat[0] <= lat[1] <= lat[2], (name, plan.id)  # type: ignore[operator]
            assert pr.latency_s == lat[0]
            if llm:
                assert pr.ttft_s == pr.ttft_p50_s and pr.tpot_s == pr.tpot_p50_s
                assert pr.ttft_p50_s <= pr.ttft_p90_s <= pr.ttft_p99_s  # type: ignore[operator]
                part = plan.parts[0]
                assert part.engine is not None and part.engine.max_num_seqs == plan.serving.max_batch_size
                assert plan.serving.max_queue_delay_us == 0  # continuous batching: no batch wait was simulated
            # load headroom: the SLOs hold at the planned peak, so the headroom is at least that
            assert pr.max_rps_within_slo is not None and pr.max_rps_within_slo >= peak * (1 - 1e-6), (name, plan.id)
            assert f"{pr.max_rps_within_slo:,.3g}" in plan.rationale


def test_max_ongoing_requests_holds_a_batch_and_what_can_start_within_the_slo() -> None:
    assert max_ongoing_requests(8) == 16  # turnover unknown: one batch running, one forming
    assert max_ongoing_requests(8, 0.028, 0.25) == 8 * (1 + 9)  # 8.9 batch times fit in the SLO
    assert max_ongoing_requests(8, 0.125, 0.25) == 8 * (1 + 2)  # exactly two: no rounding up past them
    assert max_ongoing_requests(8, 1.0, 0.25) == 16  # at least two batches
    assert max_ongoing_requests(4, 0.1, None) == 4 * (1 + round(QUEUE_HORIZON_S / 0.1))  # no SLO: the horizon
    assert max_ongoing_requests(64, 1e-6, 10.0) == MAX_ONGOING


def test_a_ray_replica_accepts_every_request_that_can_still_meet_the_slo(recs: dict[str, Any]) -> None:
    """Ray Serve's router does not queue a request a replica has no room for: it polls with backoff (25 ms up to
    500 ms between tries), which once collapsed the demo server's throughput on this machine. So at the load
    headroom a plan shows, re-simulated without the limit, no replica ever holds more requests (queued and in its
    batch) than the ``max_ongoing_requests`` the plan emits: the limit never holds back a request the SLO still
    allows. The old limit (two batches, 16) was reached there while the simulator queued every request at the
    replica; with the proxy a stage of its own (2026-12-02) most of the waiting is in the proxy, and the replica
    holds at most 15 at the headroom, so the emitted limit is checked to stay above the old one instead."""
    spec, cat, rec = recs["local-demo"]
    checked = 0
    for plan in rec.plans:
        srv, part = plan.serving, plan.parts[0]
        if part.runtime != "ray" or part.replicas != 1:
            continue
        assert plan.predicted.max_rps_within_slo is not None
        res = resimulate(plan, spec, cat, rate_rps=plan.predicted.max_rps_within_slo, requests=4000, seed=7,
                         router_limit=False)
        held = res.max_queue_length + srv.max_batch_size
        assert held <= srv.max_ongoing_requests, (plan.id, held, srv.max_ongoing_requests)
        assert srv.max_ongoing_requests > 2 * srv.max_batch_size, (plan.id, srv.max_ongoing_requests)
        checked += 1
    assert checked >= 2


def test_a_cpu_hosts_threads_bound_ray_serves_capacity(recs: dict[str, Any]) -> None:
    """On a CPU host Ray Serve's own per-request CPU work shares the node's hardware threads with the model, split
    between its request-path processes (the proxy, then the replica), one after the other: a replica serves at
    most min(threads, processes) / CPU-per-request requests/s, and each request waits for all of that work. local-demo
    offers CPU hosts of 2 threads (this machine) and of 16 per replica (a Xeon slice); a 1-thread host serves half
    as much (its figures once came from the other hosts' simulation, keyed without the threads)."""
    spec, _, rec = recs["local-demo"]
    per = SERVING_CPU_S_PER_REQUEST["ray"]
    by_host = {p.parts[0].instance: p for p in rec.plans if p.parts[0].accelerator == "cpu-x86"}
    local, xeon = by_host["localhost"], by_host["xeon-2s-cpu-server"]
    assert local.parts[0].node.vcpu == 2 and xeon.parts[0].node.replica_vcpu(1) == 16
    for plan in (local, xeon):
        part, pr = plan.parts[0], plan.predicted
        assert part.runtime == "ray"
        spread = min(part.node.replica_vcpu(part.accelerator_count), SERVING_CPU_PROCESSES["ray"])
        assert pr.max_rps_within_slo is not None and pr.max_rps_within_slo <= plan.replicas * spread / per
        assert pr.latency_p50_s is not None
        assert pr.latency_p50_s >= pr.network_rtt_s + SERVING_OVERHEAD_S["ray"] + per
    one = Catalog.load(None).with_overlay({"onprem_servers": [{
        "sku": "one-thread", "site": "local", "accelerator": "cpu-x86", "accelerator_count": 1, "capex_usd": 0,
        "power_w": 65, "available": 1, "vcpu": 1, "ram_gib": 8, "source": "test"}]}, source="test")
    single = {p.parts[0].instance: p for p in recommend(spec, one).plans}
    assert single["xeon-2s-cpu-server"].predicted == xeon.predicted
    slow = single["one-thread"].predicted
    assert slow.latency_p50_s > local.predicted.latency_p50_s  # type: ignore[operator]  # twice as busy
    assert slow.max_rps_within_slo <= 1 / per < local.predicted.max_rps_within_slo  # type: ignore[operator]


def at_and_above_headroom(plan: Plan, spec: Spec, cat: Catalog, headroom: float) -> tuple[tuple[float, str],
                                                                                          tuple[float, str]]:
    """The worst SLO ratio of the plan re-simulated at its reported headroom and at 1.35 x it (seed 7)."""
    n = resim_requests(plan.parts[0].replicas)
    return (_worst_ratio(resimulate(plan, spec, cat, rate_rps=headroom, requests=n, seed=7), spec),
            _worst_ratio(resimulate(plan, spec, cat, rate_rps=headroom * 1.35, requests=n, seed=7), spec))


def test_headroom_is_where_the_slos_stop_holding(recs: dict[str, Any]) -> None:
    """At the reported headroom the SLOs still hold (within the margin); 35% above it they do not (the search
    locates it to 5% with screening runs and confirms it with a full-length run, so it is not exact)."""
    checked = 0
    for name in ("llama-70b-tight-ttft", "chat-eu-pii"):
        spec, cat, rec = recs[name]
        for plan in rec.plans[:3]:
            h = plan.predicted.max_rps_within_slo
            assert h is not None
            at, above = at_and_above_headroom(plan, spec, cat, h)
            assert at[0] <= 1 + MARGIN, (name, plan.id, h, at)
            assert above[0] > 1.0, (name, plan.id, h, above)
            checked += 1
    assert checked == 6


def test_a_lightly_loaded_replica_is_shown_the_headroom_it_has() -> None:
    """A replica planned far below its capacity (Llama-3.1-8B bf16 on one H100, 512 + 256 tokens, p50 TTFT <= 300 ms
    and TPOT <= 30 ms, planned at 0.01 req/s): the calibrated closed form overshoots the cliff where the batch fills
    up, and the search used to bisect twice from the planned rate, which showed 4 req/s. Its headroom passes the
    sizer's own screening simulation and 25% more does not."""
    from planner.optimizer.options import OptionEvaluator, ReplicaOption
    from planner.optimizer.slo import SloSizer
    from planner.specs import Constraints, InferenceWorkload, ModelSpec

    spec = Spec(name="light", model=ModelSpec(preset="llama-3.1-8b"),
                workload=InferenceWorkload(requests_per_s=0.01, input_tokens=512, output_tokens=256),
                constraints=Constraints(ttft_s=0.3, tpot_s=0.03, precisions=("bf16",), slo_percentile=50))
    ev = OptionEvaluator(resolve(spec.model), spec.workload, spec.constraints)  # type: ignore[arg-type]
    sizer = SloSizer(spec, ev)
    hw = Catalog.load().accelerator("h100-sxm")
    opt = ev.gpu(hw, "bf16", 1, 1, 0.0, "vllm")
    assert isinstance(opt, ReplicaOption)
    sized = sizer.size(hw, opt, runtime="vllm", rtt_s=0.0, rps=0.01, utilization=1.0)
    assert isinstance(sized, tuple)
    key = sized[0].sizing_key
    h = sizer.max_rps_within_slo(key)
    assert h is not None and h > 1.0
    shape = sizer._shape(key)

    def passes(rate: float) -> bool:
        return sizer._passes(shape, shape.engine, rate, 1, key, sizer.screening)

    assert passes(h) and not passes(h * 1.25), h


@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(preset=st.sampled_from(["llama-3.1-8b", "llama-3-8b", "mistral-7b"]),
       rate=st.floats(0.01, 2.0), isl=st.integers(64, 2048), osl=st.integers(32, 512),
       ttft=st.floats(0.3, 2.0), tpot=st.floats(0.03, 0.1), q=st.sampled_from([50.0, 90.0, 99.0]))
def test_headroom_holds_and_a_third_more_does_not_on_random_specs(preset: str, rate: float, isl: int, osl: int,
                                                                   ttft: float, tpot: float, q: float) -> None:
    """Random chat specs on the cloud catalog, most planned far below one replica's capacity (where the headroom
    search once stopped at a quarter of the cliff, and where the closed form once proposed two thirds of it): the
    cheapest plan, re-simulated independently (:func:`resim_requests`, another seed) at its reported headroom, holds
    its SLOs within the margin; at 1.35 x the headroom it reaches them within the margin or misses. The margin
    applies on that side too: random specs include flat tails (Mistral-7B fp8 on an L4, 743 + 51 tokens, p99 TTFT
    at 83% of its SLO at the headroom and 99.4% at 1.35 x it), where the percentile's spread from seed to seed
    moves the rate at which it crosses the SLO by a third."""
    spec = spec_from_data({"model": {"preset": preset},
                           "workload": {"requests_per_s": rate, "input_tokens": isl, "output_tokens": osl},
                           "constraints": {"ttft_s": ttft, "tpot_s": tpot, "slo_percentile": q,
                                           "placements": ["cloud"]}})
    cat = Catalog.load()  # the embedded catalog is loaded once per process
    plan = recommend(spec, cat).plans[0]
    h = plan.predicted.max_rps_within_slo
    assert h is not None and h >= spec.workload.requests_per_s  # type: ignore[union-attr]
    at, above = at_and_above_headroom(plan, spec, cat, h)
    assert at[0] <= 1 + MARGIN, (plan.id, h, at)
    assert above[0] > 1 - MARGIN and above[0] > at[0], (plan.id, h, above)


def test_the_old_rule_missed_under_load_and_the_new_plan_holds(recs: dict[str, Any]) -> None:
    """examples/llama-70b-tight-ttft.yaml: the old rule kept 2 x 4 A100-80GB (int8, TP4, the decode-only batch
    for 40 ms) at 4 req/s on its idle TTFT of 288 ms. Simulated at 4 req/s, its p99 TTFT and TPOT miss the SLOs by
    far; the new plan, re-simulated the same way, holds them."""
    spec, cat, rec = recs["llama-70b-tight-ttft"]
    c, w = spec.constraints, spec.workload
    assert w.kind == "inference" and c.ttft_s == 0.3 and c.tpot_s == 0.04
    arch = resolve(spec.model)
    hw = profile(cat.accelerator("a100-80gb"))
    e1 = estimate_inference(arch, hw, "int8", tp=4, input_tokens=w.input_tokens, output_tokens=w.output_tokens,
                            batch=1)
    net = 0.002 + SERVING_OVERHEAD_S["vllm"]  # us-east users, us-east-1
    assert e1.ttft_s + net <= c.ttft_s  # it met the TTFT SLO idle
    b = e1.batch_for(c.tpot_s)
    rps = e1.throughput_at(b) / w.output_tokens
    replicas = math.ceil(w.requests_per_s / (rps * 0.8))
    # the old plan's rule on today's step times (145 before the per-layer cost, 135 before the int8 GEMMs' own)
    assert (b, replicas) == (129, 2)
    rm = llm_replica(arch, hw, "int8", tp=4, input_tokens=w.input_tokens, output_tokens=w.output_tokens,
                     max_num_seqs=b)
    old = simulate(Workload(rate_rps=4.0, requests=4000, seed=2024, input_tokens=Lengths.fixed(w.input_tokens),
                            output_tokens=Lengths.fixed(w.output_tokens)), rm.engine, rm.cost,
                   Cluster(replicas, "random", None, net), warmup=400)
    assert old.ttft.at(99) > 1.5 * c.ttft_s and old.tpot.at(99) > c.tpot_s, (old.ttft, old.tpot)
    top = rec.plans[0]
    new = resimulate(top, spec, cat, rate_rps=4.0, requests=4000, seed=2024)
    assert new.ttft.at(99) <= c.ttft_s * (1 + MARGIN) and new.tpot.at(99) <= c.tpot_s, (top.id, new.ttft, new.tpot)
    assert top.predicted.ttft_p99_s is not None and top.predicted.ttft_p99_s <= c.ttft_s


def test_recommend_is_deterministic(recs: dict[str, Any]) -> None:
    spec, cat, rec = recs["chat-eu-pii"]
    again = recommend(spec, cat)
    assert json.dumps(again.model_dump(mode="json"), sort_keys=True) == \
        json.dumps(rec.model_dump(mode="json"), sort_keys=True)


def test_the_closed_form_bound_never_overstates_a_replica_count(recs: dict[str, Any]) -> None:
    """Pruning is safe when the tier-1 replica count (closed-form bound) is at most the simulated one: every
    sizing the examples simulated is checked (the sizer's record of each)."""
    from planner.models import resolve as _resolve
    from planner.optimizer import _search_sized
    from planner.optimizer.options import OptionEvaluator

    checked = 0
    for name in ("llama-70b-tight-ttft", "chat-eu-pii", "hybrid-clinic"):
        spec, cat, _ = recs[name]
        ev = OptionEvaluator(_resolve(spec.model), spec.workload, spec.constraints)  # type: ignore[arg-type]
        _, sizer = _search_sized(spec, cat, ev, 10)
        for key, s in sizer._sizings.items():
            if s.tier == 2 and s.miss is None and s.bound_replicas is not None:
                assert s.bound_replicas <= s.replicas, (name, key, s.bound_replicas, s.replicas)
                checked += 1
    assert checked >= 10


def test_each_simulated_sizing_keeps_the_smallest_count_that_passes() -> None:
    """The replica search closes in on the boundary by interpolation (regula falsi with the Illinois rule), not by
    bisection: whatever the steps, the count it keeps passes at full length and one replica fewer misses (or is
    below the utilization rule's floor). Sizings whose shapes step alike (bf16 and fp16 of one GPU) at the same
    load and network keep the same count, so their plans collapse into one row."""
    from planner.models import resolve as _resolve
    from planner.optimizer import _search_sized
    from planner.optimizer.options import OptionEvaluator
    from planner.optimizer.slo import _replicas_for

    checked, twins = 0, 0
    for name in ("llama-70b-tight-ttft", "chat-eu-pii", "gke-a3-eu"):
        spec, cat, _ = _rec(name)
        ev = OptionEvaluator(_resolve(spec.model), spec.workload, spec.constraints)  # type: ignore[arg-type]
        _, sizer = _search_sized(spec, cat, ev, 10)
        kept: dict[tuple[Any, ...], int] = {}
        for key, s in sizer._sizings.items():
            if s.tier < 2 or s.miss is not None:
                continue
            shape, n = sizer._shape(key), s.replicas
            assert sizer._passes(shape, shape.engine, key.rps / n, n, key, sizer.requests), (name, key, n)
            floor = max(key.floor, _replicas_for(key.rps, float(shape.tuned["rps"]), key.utilization))
            if n > floor:
                assert not sizer._passes(shape, shape.engine, key.rps / (n - 1), n - 1, key, sizer.requests), \
                    (name, key, n)
            same = (shape.cost_key, key.runtime, key.rtt_s, key.rps, key.utilization, key.floor)
            twins += same in kept
            assert kept.setdefault(same, n) == n, (name, key, n, kept[same])
            checked += 1
    assert checked >= 30 and twins >= 2, (checked, twins)


@pytest.mark.parametrize(("start", "answer", "screen_gap"), [
    (100_000, 80_000, 0), (100_000, 80_000, 5_000), (3, 70_000, 0), (3, 70_000, 20_000), (50, 49, 0), (50, 1, 0),
    (1, 1, 0), (50, 50, 0), (5, 7, 0)])
def test_the_replica_search_takes_logarithmic_steps_from_any_start(start: int, answer: int, screen_gap: int) -> None:
    """:meth:`SloSizer._smallest` finds the smallest passing count from a start on either side of it in a number of
    simulations logarithmic in the distance, also when screening passes counts that full length misses
    (``screen_gap`` counts below the answer): a start 20,000 counts above the answer once walked down one replica
    at a time (20,000 simulations, minutes of a fuzzed spec's recommend), and an optimistic screening walked up."""
    from planner.models import resolve as _resolve
    from planner.optimizer import _search_sized
    from planner.optimizer.options import OptionEvaluator

    spec, cat, _ = _rec("chat-eu-pii")
    ev = OptionEvaluator(_resolve(spec.model), spec.workload, spec.constraints)  # type: ignore[arg-type]
    _, sizer = _search_sized(spec, cat, ev, 10)
    key = next(k for k, s in sizer._sizings.items() if s.tier == 2)
    shape = sizer._shape(key)
    calls: list[tuple[int, bool]] = []

    def passes(shape_: Any, engine: Any, rate: float, n: int, key_: Any, requests: int) -> bool:
        full = requests >= sizer.requests
        calls.append((n, full))
        return n >= (answer if full else answer - screen_gap)

    sizer._passes = passes  # type: ignore[method-assign]
    n, failed = sizer._smallest(shape, shape.engine, key, start, 1)  # type: ignore[misc]
    assert (n, failed) == (answer, answer - 1 if answer > 1 else None)
    bound = 4 * math.log2(abs(start - answer) + 2) + 4
    assert len(calls) <= bound, (len(calls), bound, calls[:40])
