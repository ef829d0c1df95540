"""Planner invariants, checked with hypothesis on random catalogs and specs.

1. Optimal: the top plan's cost equals the minimum found by a brute-force search written independently here
   (linear scans instead of binary search, replicas counted up one by one, no bounds, no pruning, no
   de-duplication). The sizing rule it applies (issue 12): a replica shape's engine runs ``max_num_seqs`` = the
   largest batch whose TPOT with prefill stalls meets the SLO; its replica count is the smallest N, at least the
   utilization rule's, whose replicas each simulated at R / N (seeded, the planner's request count) meet every SLO
   at the spec's percentile (its upper one-sigma bound over the simulated sample). The simulator itself is tested
   in tests/test_simulator.py; what is checked here is that the search, its bounds and its pruning find the
   cheapest plan under that rule.
2. Every returned plan satisfies every constraint of its spec.
3. Privacy and residency can never be broken, whatever the input.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.catalog import Catalog
from planner.catalog.schema import Accelerator, Instance, Interconnect, OnPremServer, Region
from planner.errors import InfeasibleError, SpecError
from planner.estimator import estimate_inference, profile
from planner.estimator.calibration import SERVING_OVERHEAD_S
from planner.models import resolve
from planner.optimizer import recommend
from planner.optimizer.bill import Biller, CloudPart
from planner.plan import Plan
from planner.specs import Assumptions, Constraints, InferenceWorkload, ModelSpec, Spec

GEOS = ("us", "eu", "apac")
ZONE = {"us": "us-east", "eu": "eu-west", "apac": "apac-se"}
PRESETS = ("llama-2-7b", "mistral-7b", "llama-2-13b", "qwen2-7b")

ACCURACY = {"none": {"fp32", "fp16", "bf16"}, "small": {"fp32", "fp16", "bf16", "fp8", "int8"},
            "moderate": {"fp32", "fp16", "bf16", "fp8", "int8", "int4"}}


@st.composite
def accelerators(draw: st.DrawFn, i: int) -> Accelerator:
    bf16 = draw(st.floats(60, 1000))
    dtypes = {"fp16": bf16, "bf16": bf16, "int8": bf16 * 2}
    if draw(st.booleans()):
        dtypes["fp8"] = bf16 * 2
    per_node = draw(st.sampled_from((1, 2, 4, 8)))
    return Accelerator(
        id=f"gpu{i}", vendor="nvidia", name=f"GPU {i}", memory_gib=draw(st.sampled_from((16, 24, 40, 48, 80))),
        bandwidth_gbps=draw(st.floats(300, 3500)), tflops=dtypes, tdp_w=draw(st.floats(70, 700)),
        interconnect=Interconnect(kind=draw(st.sampled_from(("nvlink", "pcie"))),
                                  bandwidth_gbps=draw(st.floats(16, 450)), gpus_per_domain=per_node),
        source="synthetic",
    )


def synthetic_regions() -> dict[tuple[str, str], Region]:
    """Two AWS regions in each geography, every catalog's here."""
    return {("aws", f"{g}-r{k}"): Region(provider="aws", region=f"{g}-r{k}", geography=g, zone=ZONE[g],  # type: ignore[arg-type]
                                         source="synthetic") for g in GEOS for k in range(2)}


@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    base = Catalog.load()
    accs = [draw(accelerators(i)) for i in range(draw(st.integers(1, 3)))]
    regions = synthetic_regions()
    insts = []
    for n in range(draw(st.integers(1, 6))):
        acc = draw(st.sampled_from(accs))
        count = draw(st.sampled_from((1, acc.interconnect.gpus_per_domain)))
        reg = draw(st.sampled_from(sorted(regions)))[1]
        od = draw(st.floats(0.3, 60))
        insts.append(Instance(provider="aws", instance=f"x{n}.{count}gpu", region=reg, accelerator=acc.id,
                              accelerator_count=count, vcpu=8 * count, ram_gib=64.0 * count,
                              on_demand_usd_per_h=od, spot_usd_per_h=draw(st.one_of(st.none(), st.floats(0.1, od))),
                              dedicated=draw(st.booleans()), source="synthetic"))
    servers = []
    for n in range(draw(st.integers(0, 2))):
        acc = draw(st.sampled_from(accs))
        servers.append(OnPremServer(sku=f"srv{n}", site=f"dc{n}", geography=draw(st.sampled_from((*GEOS, "any"))),
                                    accelerator=acc.id, accelerator_count=acc.interconnect.gpus_per_domain,
                                    capex_usd=draw(st.floats(5e3, 4e5)), power_w=draw(st.floats(300, 10000)),
                                    available=draw(st.one_of(st.none(), st.integers(0, 4))), source="synthetic"))
    return replace(base, accelerators={a.id: a for a in accs}, edge_devices={}, instances=tuple(insts),
                   onprem_servers=tuple(servers), regions=regions, version="synthetic")


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    privacy = draw(st.sampled_from(("public", "internal", "confidential", "restricted", "air-gapped")))
    regions = draw(st.one_of(st.none(), st.lists(st.sampled_from((*GEOS, "us-r0", "eu-r1")), min_size=1, max_size=3,
                                                  unique=True).map(tuple)))
    c = Constraints(
        ttft_s=draw(st.one_of(st.none(), st.floats(0.05, 5))),
        tpot_s=draw(st.one_of(st.none(), st.floats(0.005, 0.2))),
        privacy=privacy, allowed_regions=regions, dedicated_tenancy=draw(st.booleans()),
        budget_usd_per_month=draw(st.one_of(st.none(), st.floats(500, 200_000))),
        placements=tuple(draw(st.lists(st.sampled_from(("cloud", "on-prem")), min_size=1, max_size=2, unique=True))),
        allow_spot=draw(st.booleans()),
        max_accuracy_loss=draw(st.sampled_from(("none", "small", "moderate"))),
        users_location=draw(st.one_of(st.none(), st.sampled_from(tuple(ZONE.values())))),
    )
    w = InferenceWorkload(requests_per_s=draw(st.floats(0.1, 50)), input_tokens=draw(st.integers(16, 4096)),
                          output_tokens=draw(st.integers(8, 1024)), peak_to_average=draw(st.floats(1, 3)))
    # percentiles whose simulations are all full length (tests/test_slo.py covers p99's screening)
    c = c.model_copy(update={"slo_percentile": draw(st.sampled_from((50.0, 90.0, 95.0)))})
    return Spec(name="prop", model=ModelSpec(preset=draw(st.sampled_from(PRESETS))), workload=w, constraints=c,
                assumptions=Assumptions())


# ------------------------------------------------------------------------------------ independent oracle
def privacy_ok(c: Constraints, placement: str, region: Region | None, dedicated_host: bool,
               site_geo: str | None = None) -> bool:
    allowed = None if c.allowed_regions is None else {a.lower() for a in c.allowed_regions}
    if placement == "cloud":
        assert region is not None
        if c.privacy == "air-gapped":
            return False
        if c.privacy == "restricted" and (allowed is None or not c.dedicated_tenancy or not dedicated_host):
            return False
        return allowed is None or region.region in allowed or region.geography in allowed
    if allowed is None or site_geo in (None, "any"):
        return True
    return site_geo in allowed


def dtypes_for(c: Constraints, acc: Accelerator) -> list[str]:
    out = []
    for d in ("bf16", "fp16", "fp32", "fp8", "int8", "int4"):
        native = d in acc.tflops
        weight_only = d in ("int8", "int4") and "fp16" in acc.tflops
        if d in ACCURACY[c.max_accuracy_loss] and d in c.precisions and (native or weight_only):
            out.append(d)
    return out


SEED = 12  # the planner's simulation seed (planner.optimizer.slo.SEED): the rule is defined with it
OVERLOAD = 0.85


def sim_requests(q: float) -> int:
    """10 simulated requests above the percentile, at least 400 (planner.optimizer.slo.requests_for)."""
    return max(400, min(20_000, math.ceil(10 / (1 - q / 100))))


def upper_percentile(q: float, n: int) -> float:
    """The percentile read from n samples that bounds the true q-th from above at one sigma (binomial count)."""
    above = n * (1 - q / 100)
    return 100 * (1 - max(0.5, above - math.sqrt(n * q / 100 * (1 - q / 100))) / n)


def stalled_tpot(cost: object, b: int, budget: int, i: int, o: int) -> float:
    """TPOT of a full replica: decode step at batch b plus b / (O - 1) prompts' stalls (Sarathi-Serve)."""
    ctx = i + o / 2
    room = max(1, budget - b)
    chunks = max(1, math.ceil(i / room))
    chunk = math.ceil(i / chunks)
    dec = cost.step_s(0, b, int(b * ctx))  # type: ignore[attr-defined]
    stall = max(0.0, cost.step_s(chunk, b, int(b * ctx), chunk * chunk / 2) - dec) * chunks  # type: ignore[attr-defined]
    return dec + b * stall / (o - 1) if o > 1 else dec


class ShapeOracle:
    """One replica shape sized by linear scans: the batch, then the replica count, by full simulations."""

    def __init__(self, e1: object, dtype: str, acc: Accelerator, spec: Spec) -> None:
        from planner.simulator import ContinuousBatching
        from planner.simulator.estimator_costs import EstimatorStepCost, kv_capacity_tokens

        c, w = spec.constraints, spec.workload
        assert isinstance(w, InferenceWorkload)
        dm = e1.decode  # type: ignore[attr-defined]
        self.cost = EstimatorStepCost(dm)
        budget = 8192 if acc.memory_gib * 2**30 >= 70 * 2**30 and "a100" not in acc.id else 2048
        b = 1
        for cand in range(1, max(1, e1.max_batch) + 1):  # type: ignore[attr-defined]
            if c.tpot_s is None or stalled_tpot(self.cost, cand, max(budget, cand), w.input_tokens,
                                                w.output_tokens) <= c.tpot_s:
                b = cand
            else:
                break
        kv = kv_capacity_tokens(e1, dtype, c.memory_headroom)  # type: ignore[arg-type]
        self.engine = ContinuousBatching(max_num_seqs=b, max_num_batched_tokens=max(budget, b),
                                         kv_capacity_tokens=max(16, kv), block_size=16)
        self.fits = math.ceil((w.input_tokens + w.output_tokens - 1) / 16) <= max(16, kv) // 16
        self.rps_sat = dm.throughput_at(b) / dm.output_tokens
        self.spec = spec
        self.sims: dict[int, object] = {}

    def passes(self, n: int, rps: float, net: float) -> bool:
        from planner.simulator import Cluster, Lengths, Workload, simulate

        c, w = self.spec.constraints, self.spec.workload
        assert isinstance(w, InferenceWorkload)
        if n not in self.sims:
            req = sim_requests(c.slo_percentile)
            warm = req // 10
            wl = Workload(input_tokens=Lengths.fixed(w.input_tokens), output_tokens=Lengths.fixed(w.output_tokens),
                          rate_rps=rps / n, requests=req + warm, seed=SEED)
            self.sims[n] = simulate(wl, self.engine, self.cost, Cluster(1), warmup=warm)
        r = self.sims[n]
        q = upper_percentile(c.slo_percentile, r.measured)  # type: ignore[attr-defined]
        if r.completed < r.requests or r.throughput_rps < OVERLOAD * r.arrival_rate_rps:  # type: ignore[attr-defined]
            return False
        if c.ttft_s is not None and not r.ttft.at(q) + net <= c.ttft_s:  # type: ignore[attr-defined]
            return False
        return not (c.tpot_s is not None and r.tpot.count and not r.tpot.at(q) <= c.tpot_s)  # type: ignore[attr-defined]

    def replicas(self, rps: float, net: float, util: float) -> int | None:
        """max(utilization rule, smallest N whose simulation passes), counted up one by one to 64; past 64 the
        counts double until one passes and are then counted up one by one from the last miss (None: none up to
        100,000)."""
        need = 1
        while need * self.rps_sat * util < rps * (1 - 1e-9):
            need += 1
        c = self.spec.constraints
        if c.ttft_s is None and c.tpot_s is None and c.latency_s is None:
            # no SLO to hold: the utilization rule alone (the estimator's saturated throughput, which pipelines
            # prompts across PP stages; the simulator runs each chunk through every stage in turn, pessimistic)
            return need
        slo = next((n for n in range(1, 65) if self.passes(n, rps, net)), None)
        if slo is None:  # past 64: double until one passes, then count up one by one from the last miss
            miss, top = 64, 128
            while not self.passes(top, rps, net):
                if top >= 100_000:  # the planner's limit (planner.optimizer.slo.MAX_REPLICAS)
                    return None
                miss, top = top, min(2 * top, 100_000)
            slo = next(n for n in range(miss + 1, top + 1) if self.passes(n, rps, net))
        return max(need, slo)


def brute_force_min(spec: Spec, cat: Catalog) -> float:
    arch = resolve(spec.model)
    c, w, a = spec.constraints, spec.workload, spec.assumptions
    assert isinstance(w, InferenceWorkload)
    need = w.requests_per_s * w.peak_to_average
    best = math.inf
    biller = Biller(spec, cat, arch)
    oracles: dict[tuple[str, str, int, int], ShapeOracle] = {}
    rows: list[tuple[str, Accelerator, int, list[float], Region | None, bool, int | None, object]] = []
    if "cloud" in c.placements:
        for i in cat.instances:
            reg = cat.regions[(i.provider, i.region)]
            if not privacy_ok(c, "cloud", reg, i.dedicated):
                continue
            dedicated = c.privacy == "restricted"
            prices = [i.on_demand_usd_per_h] + ([i.spot_usd_per_h] if c.allow_spot and i.spot_usd_per_h
                                                 and not dedicated else [])
            acc = cat.accelerators[i.accelerator]
            rows.append(("cloud", acc, i.accelerator_count, prices, reg, dedicated, None, i))
    if "on-prem" in c.placements:
        for s in cat.onprem_servers:
            if privacy_ok(c, "on-prem", None, True, s.geography):
                rows.append(("on-prem", cat.accelerators[s.accelerator], s.accelerator_count, [], None, False,
                             s.available, s))
    for placement, acc, g, prices, reg, dedicated, avail, row in rows:
        prof = profile(acc)
        rtt = 0.002 if placement == "on-prem" else (
            cat.rtt_ms(c.users_location, reg.zone) / 1000 if c.users_location and reg else 0.0)
        rtt += SERVING_OVERHEAD_S["vllm"]  # every synthetic accelerator is an NVIDIA GPU serving an LLM
        domain = min(g, acc.interconnect.gpus_per_domain)
        shapes = [(tp, 1) for tp in range(1, g + 1) if g % tp == 0 and (tp == 1 or tp <= domain)]
        if domain == g:
            shapes += [(g, pp) for pp in (2, 4, 8)]
        for dtype in dtypes_for(c, acc):
            # no pipeline across instances for a model that some shape inside one node holds
            one_node = any(e.fits and e.max_batch >= 1 for e in (
                estimate_inference(arch, prof, dtype, tp=tp, pp=pp, input_tokens=w.input_tokens,
                                   output_tokens=w.output_tokens, batch=1, memory_headroom=c.memory_headroom)
                for tp, pp in shapes if tp * pp <= g))
            for tp, pp in shapes:
                if tp * pp > g and one_node:
                    continue

                def est(b: int, tp: int = tp, pp: int = pp, dtype: str = dtype, prof=prof):  # type: ignore[no-untyped-def]
                    return estimate_inference(arch, prof, dtype, tp=tp, pp=pp, input_tokens=w.input_tokens,
                                              output_tokens=w.output_tokens, batch=b, memory_headroom=c.memory_headroom)
                e1 = est(1)
                if not e1.fits or e1.max_batch < 1:
                    continue
                if c.ttft_s is not None and e1.ttft_s + rtt > c.ttft_s:
                    continue
                if c.tpot_s is not None and e1.tpot_s > c.tpot_s:  # not even one sequence decodes fast enough
                    continue
                skey = (acc.id, dtype, tp, pp)
                if skey not in oracles:
                    oracles[skey] = ShapeOracle(e1, dtype, acc, spec)
                orc = oracles[skey]
                if not orc.fits:
                    continue
                replicas = orc.replicas(need, rtt, a.planning_utilization)
                if replicas is None:
                    continue
                gpus = tp * pp
                nodes = math.ceil(replicas / (g // gpus)) if gpus <= g else replicas * (gpus // g)
                if placement == "cloud":
                    # the full bill (planner.optimizer.bill, tested on its own in tests/test_bill.py) of the
                    # target this shape gets: one EC2 box for one replica on one single-GPU node, else EKS
                    assert isinstance(row, Instance)
                    target = "aws-ec2" if nodes == 1 and replicas == 1 and gpus == 1 else "aws-eks"
                    costs = [biller.cloud(CloudPart(row, target, nodes, replicas, gpus, dtype,  # type: ignore[arg-type]
                                                    "on-demand" if p == row.on_demand_usd_per_h else "spot", p,
                                                    "dedicated" if dedicated else "shared", c.privacy,
                                                    has_device=acc.device_resource is not None)).total
                             for p in prices]
                else:
                    assert isinstance(row, OnPremServer)
                    if avail is not None and nodes > avail:
                        continue
                    costs = [biller.onprem(row, nodes, dtype).total]
                for cost in costs:
                    if c.budget_usd_per_month is None or cost <= c.budget_usd_per_month:
                        best = min(best, cost)
    return best


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
"""The examples are drawn from a fixed seed (derandomize) so a CI run checks the same cases as a local run."""
BRUTE_FORCE = settings(SETTINGS, max_examples=100)
"""100 examples, each simulating every replica shape of its catalog (the brute force), about 0.3 s on this machine.
Cases that random draws found are kept as tests of their own: test_short_prompts_share_a_step_on_a_slow_gpu,
test_one_slot_replicas_are_sized_without_prefill_stalls, test_a_few_replicas_are_simulated_not_extrapolated,
test_every_plan_gets_the_smallest_passing_count_near_a_cliff,
test_one_replica_fewer_is_simulated_when_the_form_is_only_a_little_over,
test_a_count_the_closed_form_calls_overloaded_is_simulated, and the oracle's own
test_the_oracle_counts_past_64_replicas_when_utilization_needs_them and
test_the_oracle_counts_on_past_64_replicas_where_the_slo_needs_them."""


@BRUTE_FORCE
@given(cat=catalogs(), spec=specs())
def test_top_plan_is_the_brute_force_minimum(cat: Catalog, spec: Spec) -> None:
    expected = brute_force_min(spec, cat)
    try:
        rec = recommend(spec, cat)
    except InfeasibleError:
        assert expected == math.inf
        return
    assert rec.plans[0].monthly_cost_usd == pytest.approx(expected, rel=1e-6, abs=0.01)
    costs = [p.monthly_cost_usd for p in rec.plans]
    assert costs == sorted(costs)


@pytest.fixture
def drawn_step_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """The step-time model the drawn cases below were drawn under (2026-12-01, before the per-layer kernel cost
    ``DECODE_LAYER_OVERHEAD_S``, the quantized GEMMs' ``QUANTIZED_GEMM_FIXED_S`` and 16-bit math's higher FLOP
    efficiency, ``FP8_GEMM_EFFICIENCY_RATIO``). Each sits on a cliff of that model, where the sizer's search once
    went wrong; they test the search, so they keep the model that puts them on the cliff."""
    monkeypatch.setattr("planner.estimator.calibration.DECODE_LAYER_OVERHEAD_S", 0.0)
    monkeypatch.setattr("planner.estimator.calibration.FP8_GEMM_EFFICIENCY_RATIO", 1.0)
    monkeypatch.setattr("planner.estimator.calibration.QUANTIZED_GEMM_FIXED_S",
                        dict.fromkeys(("w8a8-fp8", "w8a8-int8", "w8a16", "w4a16"), 0.0))


def _one_slow_gpu_catalog(tflops: float = 60.0, memory_gib: int = 16, fp8: bool = False,
                          bandwidth_gbps: float = 300.0, gpus: int = 1) -> Catalog:
    """The catalog drawn cases shrank to: one instance of ``gpus`` GPUs (16 GiB, 300 GB/s, one NVLink domain) at
    $1/h."""
    rates = {"fp16": tflops, "bf16": tflops, "int8": 2 * tflops} | ({"fp8": 2 * tflops} if fp8 else {})
    acc = Accelerator(id="gpu0", vendor="nvidia", name="GPU 0", memory_gib=memory_gib, bandwidth_gbps=bandwidth_gbps,
                      tflops=rates, tdp_w=70.0,
                      interconnect=Interconnect(kind="nvlink", bandwidth_gbps=16.0, gpus_per_domain=gpus),
                      source="synthetic")
    inst = Instance(provider="aws", instance=f"x0.{gpus}gpu", region="apac-r0", accelerator="gpu0",
                    accelerator_count=gpus, vcpu=8 * gpus, ram_gib=64.0 * gpus, on_demand_usd_per_h=1.0,
                    spot_usd_per_h=None, dedicated=False, source="synthetic")
    return replace(Catalog.load(), accelerators={"gpu0": acc}, edge_devices={}, instances=(inst,),
                   onprem_servers=(), regions=synthetic_regions(), version="synthetic")


def _plans_match_the_brute_force(cat: Catalog, preset: str, w: InferenceWorkload, c: Constraints) -> list[Plan]:
    """The plans for ``preset`` under ``w`` and ``c`` on ``cat``, once their cheapest is checked against the brute
    force."""
    spec = Spec(name="prop", model=ModelSpec(preset=preset), workload=w, constraints=c, assumptions=Assumptions())
    expected = brute_force_min(spec, cat)
    plans = recommend(spec, cat).plans
    assert plans[0].monthly_cost_usd == pytest.approx(expected, rel=1e-6, abs=0.01)
    return plans


@pytest.mark.usefixtures("drawn_step_times")
def test_short_prompts_share_a_step_on_a_slow_gpu() -> None:
    """A drawn case (2026-12-01) where the planner asked for 2 replicas and the brute force found 1 enough:
    llama-2-7b bf16 pipelined over two 16 GiB GPUs of 300 GB/s, 9 req/s of 16-token prompts, p50 TTFT <= 1 s.
    Simulated, one replica holds it (p50 TTFT 90 ms); the closed form queued the prompts one per step (each a
    60 ms weight-bound prefill plus a decode step: rho > 1, TTFT infinite), so the sizer skipped simulating one
    replica. vLLM admits ~127 such prompts into one step's 2,048-token budget."""
    cat = _one_slow_gpu_catalog()
    c = Constraints(ttft_s=1.0, slo_percentile=50.0, placements=("cloud",), max_accuracy_loss="none")
    w = InferenceWorkload(requests_per_s=3.0, input_tokens=16, output_tokens=8, peak_to_average=3.0)
    top = _plans_match_the_brute_force(cat, "llama-2-7b", w, c)[0]
    assert (top.pipeline_parallel, top.replicas) == (2, 1)


@pytest.mark.usefixtures("drawn_step_times")
def test_one_slot_replicas_are_sized_without_prefill_stalls() -> None:
    """A drawn case (2026-12-01): llama-2-13b bf16 pipelined over four 16 GiB GPUs, whose TPOT SLO (125 ms at
    p90) leaves one sequence per replica (``max_num_seqs`` 1), at 1 req/s of 319 + 8 tokens. The brute force finds
    2 replicas enough (each sequence decodes alone: TPOT p90 111 ms simulated); the planner sized 8, its closed
    form adding other prompts' prefill stalls that one slot never lets in."""
    cat = _one_slow_gpu_catalog()
    c = Constraints(tpot_s=0.125, slo_percentile=90.0, placements=("cloud",), max_accuracy_loss="none")
    w = InferenceWorkload(requests_per_s=1.0, input_tokens=319, output_tokens=8)
    top = _plans_match_the_brute_force(cat, "llama-2-13b", w, c)[0]
    assert (top.pipeline_parallel, top.replicas, top.serving.max_batch_size) == (4, 2, 1)  # type: ignore[union-attr]


@pytest.mark.usefixtures("drawn_step_times")
def test_a_few_replicas_are_simulated_not_extrapolated() -> None:
    """A drawn case (2026-12-01): llama-2-7b bf16 pipelined over two 16 GiB GPUs, 14 req/s at peak of 337-token
    prompts, p50 TTFT <= 1 s. Three replicas pass in simulation (p50 TTFT 0.26 s) and so do two (0.82 s, the
    brute force's answer); the sizer left two unsimulated because the closed form, calibrated at three, put it
    over the SLO (1.04 s), with one replica fewer at 1.5 x the load each. The count below a kept one is now
    always simulated."""
    cat = _one_slow_gpu_catalog(tflops=65.0)
    c = Constraints(ttft_s=1.0, slo_percentile=50.0, placements=("cloud",), max_accuracy_loss="none")
    w = InferenceWorkload(requests_per_s=7.0, input_tokens=337, output_tokens=8, peak_to_average=2.0)
    top = _plans_match_the_brute_force(cat, "llama-2-7b", w, c)[0]
    assert (top.pipeline_parallel, top.replicas) == (2, 2)


@pytest.mark.usefixtures("drawn_step_times")
def test_a_count_the_closed_form_calls_overloaded_is_simulated() -> None:
    """A drawn case (2026-12-01): llama-2-7b bf16 pipelined over two 16 GiB, 673 GB/s GPUs, 35 req/s of 151 + 143
    tokens, p50 TPOT <= 125 ms. Five replicas pass, and so do four (the utilization rule's count, 80% of the
    estimator's saturated rate each); the closed form calibrated at five said four cannot keep up, and the sizer
    kept five."""
    cat = _one_slow_gpu_catalog(bandwidth_gbps=673.0)
    c = Constraints(tpot_s=0.125, slo_percentile=50.0, placements=("cloud",), max_accuracy_loss="none")
    w = InferenceWorkload(requests_per_s=35.0, input_tokens=151, output_tokens=143)
    top = _plans_match_the_brute_force(cat, "llama-2-7b", w, c)[0]
    assert (top.pipeline_parallel, top.replicas) == (2, 4)


@pytest.mark.usefixtures("drawn_step_times")
def test_the_oracle_counts_past_64_replicas_when_utilization_needs_them() -> None:
    """A drawn case (2026-12-01) where the oracle was wrong: llama-2-13b bf16 over four 16 GiB GPUs saturates at
    0.195 req/s per replica (25 sequences of 1,023 output tokens), so 15 req/s needs 97 replicas by the utilization
    rule alone. The oracle gave up on its SLO count past 64 and missed the planner's (cheaper, correct) plan."""
    cat = _one_slow_gpu_catalog()
    c = Constraints(tpot_s=0.125, slo_percentile=50.0, placements=("cloud",), max_accuracy_loss="none")
    w = InferenceWorkload(requests_per_s=5.0, input_tokens=138, output_tokens=1023, peak_to_average=3.0)
    top = _plans_match_the_brute_force(cat, "llama-2-13b", w, c)[0]
    assert (top.pipeline_parallel, top.replicas) == (4, 97)


@pytest.mark.usefixtures("drawn_step_times")
def test_every_plan_gets_the_smallest_passing_count_near_a_cliff() -> None:
    """A drawn case (2026-12-01): llama-2-13b at 30 req/s of 16 + 606 tokens, p95 TTFT <= 1 s, on one 24 GiB GPU
    per instance. Pipelined over two, 110 replicas miss (p95 TTFT 1.4 s) and 111 pass; the sizer's search used
    its eight probes creeping up on the cliff and kept 112. A bracket left when the probes run out is now
    bisected. Every plan offered, not only the cheapest, has the brute force's count for its shape."""
    cat = _one_slow_gpu_catalog(memory_gib=24, fp8=True)
    c = Constraints(ttft_s=1.0, slo_percentile=95.0, placements=("cloud",), max_accuracy_loss="small")
    w = InferenceWorkload(requests_per_s=10.0, input_tokens=16, output_tokens=606, peak_to_average=3.0)
    plans = _plans_match_the_brute_force(cat, "llama-2-13b", w, c)
    counts = {(p.dtype, p.pipeline_parallel): p.replicas for p in plans}
    assert counts == {("fp8", 1): 66, ("bf16", 4): 32, ("int8", 1): 153, ("bf16", 2): 111, ("bf16", 8): 30}


@pytest.mark.usefixtures("drawn_step_times")
def test_one_replica_fewer_is_simulated_when_the_form_is_only_a_little_over() -> None:
    """A drawn case (2026-12-01): llama-2-13b bf16 over four 16 GiB GPUs, 12 req/s of 656 + 9 tokens, p50 TTFT <=
    4 s. Eight replicas pass (p50 TTFT 1.5 s) and so do seven (2.9 s, the brute force's count); the closed form
    calibrated at eight put seven at 4.3 s, 8% over the SLO, and the sizer kept eight unsimulated."""
    cat = _one_slow_gpu_catalog()
    c = Constraints(ttft_s=4.0, slo_percentile=50.0, placements=("cloud",), max_accuracy_loss="none")
    w = InferenceWorkload(requests_per_s=12.0, input_tokens=656, output_tokens=9)
    top = _plans_match_the_brute_force(cat, "llama-2-13b", w, c)[0]
    assert (top.pipeline_parallel, top.replicas) == (4, 7)


@pytest.mark.usefixtures("drawn_step_times")
def test_the_oracle_counts_on_past_64_replicas_where_the_slo_needs_them() -> None:
    """A drawn case (2026-12-01) where the oracle was wrong: llama-2-13b bf16 over two 16 GiB GPUs (TP2) keeps KV
    for 3 sequences, so at 6 req/s of 16 + 177 tokens the p95 TTFT of 1 s needs 82 replicas where the utilization
    rule needs 26. The oracle stopped counting at 64 and called the planner's plan impossible."""
    cat = _one_slow_gpu_catalog(gpus=2)
    c = Constraints(ttft_s=1.0, slo_percentile=95.0, placements=("cloud",), max_accuracy_loss="none")
    w = InferenceWorkload(requests_per_s=2.0, input_tokens=16, output_tokens=177, peak_to_average=3.0)
    top = _plans_match_the_brute_force(cat, "llama-2-13b", w, c)[0]
    assert (top.tensor_parallel, top.replicas) == (2, 82)


def check_plan(p: Plan, spec: Spec, cat: Catalog) -> None:
    c, w = spec.constraints, spec.workload
    assert isinstance(w, InferenceWorkload)
    pr = p.predicted
    q = c.slo_percentile
    for slo, figures in ((c.ttft_s, (pr.ttft_p50_s, pr.ttft_p90_s, pr.ttft_p99_s)),
                         (c.tpot_s, (pr.tpot_p50_s, pr.tpot_p90_s, pr.tpot_p99_s))):
        if slo is None:
            continue
        assert figures[0] is not None and figures[0] <= slo * (1 + 1e-6)  # the p50 at the planned peak
        for level, v in zip((50, 90, 99), figures, strict=True):
            if level <= q and v is not None:
                assert v <= slo * (1 + 1e-6), (level, v, slo)
    if c.ttft_s is not None or c.tpot_s is not None:
        # plans carry 6 significant figures (assemble._r): a headroom at the planned rate may round 5e-6 below it
        assert pr.max_rps_within_slo is not None and pr.max_rps_within_slo >= w.requests_per_s * w.peak_to_average \
            * (1 - 5e-6)
    if c.budget_usd_per_month is not None:
        assert p.monthly_cost_usd <= c.budget_usd_per_month + 0.01
    assert pr.memory_per_gpu_bytes <= pr.memory_capacity_per_gpu_bytes
    assert pr.throughput_rps >= w.requests_per_s * w.peak_to_average * (1 - 1e-6)
    assert p.dtype in c.precisions and p.dtype in ACCURACY[c.max_accuracy_loss]
    for part in p.parts:
        assert part.placement in c.placements or p.placement == "hybrid"
        if part.placement == "cloud":
            reg = cat.regions[(part.provider, part.region or "")]
            inst = next(i for i in cat.instances if (i.instance, i.region) == (part.instance, part.region))
            assert privacy_ok(c, "cloud", reg, inst.dedicated)
            if c.privacy == "restricted":
                assert part.purchase == "on-demand"
        else:
            srv = next(s for s in cat.onprem_servers if s.sku == part.instance)
            assert privacy_ok(c, "on-prem", None, True, srv.geography)
    assert p.security.private_networking == (c.privacy in ("confidential", "restricted", "air-gapped"))
    assert p.security.encryption_at_rest


@SETTINGS
@given(cat=catalogs(), spec=specs())
def test_every_plan_meets_every_constraint(cat: Catalog, spec: Spec) -> None:
    try:
        rec = recommend(spec, cat)
    except InfeasibleError as e:
        assert e.binding and e.exit_code == 3
        return
    for p in rec.plans:
        check_plan(p, spec, cat)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    privacy=st.sampled_from(("public", "internal", "confidential", "restricted", "air-gapped")),
    regions=st.one_of(st.none(), st.lists(st.one_of(
        st.sampled_from(("eu", "us", "uk", "apac", "eu-west-1", "us-east-1", "europe-west4", "eastus", "ca")),
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,11}", fullmatch=True)), min_size=1, max_size=4).map(tuple)),
    dedicated=st.booleans(),
    placements=st.lists(st.sampled_from(("cloud", "on-prem", "edge", "hybrid")), min_size=1, unique=True).map(tuple),
    sensitive=st.floats(0, 1),
)
def test_privacy_can_never_be_broken(privacy: str, regions: tuple[str, ...] | None, dedicated: bool,
                                     placements: tuple[str, ...], sensitive: float) -> None:
    """On the embedded catalog, with any constraints, no cloud part ever violates the privacy class: every part
    that may receive the spec's data (all but a hybrid's marked-public side) passes the spec's full check, and
    every part, whatever it receives, stays inside allowed_regions. Names the catalog does not know are refused."""
    cat = Catalog.load()
    c = Constraints(privacy=privacy, allowed_regions=regions, dedicated_tenancy=dedicated,  # type: ignore[arg-type]
                    placements=placements)  # type: ignore[arg-type]
    spec = Spec(name="p", model=ModelSpec(preset="llama-2-7b"),
                workload=InferenceWorkload(requests_per_s=2, sensitive_traffic_fraction=sensitive,
                                           local_traffic_fraction=1 - sensitive if 0 < sensitive < 1 else 0.0),
                constraints=c)
    try:
        rec = recommend(spec, cat, top=30)  # 30 plans: each is simulated at its planned load (issue 12)
    except InfeasibleError:
        return
    except SpecError as e:
        known = {r.region.lower() for r in cat.regions.values()} | {r.geography for r in cat.regions.values()}
        assert regions and any(r.lower() not in known for r in regions) and "unknown region" in str(e)
        return
    for p in rec.plans:
        for part in p.parts:
            if part.placement != "cloud":
                continue
            assert privacy != "air-gapped"
            reg = cat.regions[(part.provider, part.region or "")]
            names = {r.lower() for r in regions} if regions is not None else None
            assert names is None or reg.region in names or reg.geography in names
            receives = "public" if part.routing == "marked-public" else privacy
            assert part.data_class == receives
            if receives == "restricted":
                inst = next(i for i in cat.instances if (i.instance, i.region) == (part.instance, part.region))
                assert dedicated and regions is not None and inst.dedicated and part.tenancy == "dedicated"
            if part.routing == "marked-public":  # the other side takes every request not marked public
                safe = [q for q in p.parts if q is not part]
                assert safe and all(q.placement != "cloud" and q.routing == "not-marked-public" for q in safe)
