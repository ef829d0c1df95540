"""Size a replica set so its latency SLOs hold at the planned peak rate: the planner's link to the simulator.

A spec's SLOs (``ttft_s``, ``tpot_s``, ``latency_s``) are percentiles (``slo_percentile``) at the planned peak
rate R = ``requests_per_s`` x ``peak_to_average``. A replica shape (accelerator, dtype, TP, PP, EP, runtime) is
sized in three tiers, each cheaper than the next and each a lower bound on the replica count of the next, so the
optimizer simulates only the shapes that can still rank (:func:`planner.optimizer.recommend`):

0. utilization: N >= R / (saturated throughput x ``planning_utilization``) at the decode batch the TPOT SLO allows
   without prefill stalls (the old rule). Exact when the spec has no latency SLO.
1. bound: the engine settings are decided (below) and the closed-form model (:mod:`planner.simulator.analytic`:
   prefill stalls, queueing) gives the highest per-replica rate meeting the SLOs; divided into R, with a safety
   factor, it bounds N from below.
2. simulated: N is the smallest replica count whose replicas, each at R / N, meet every SLO at the percentile in
   the event-driven simulation (:func:`planner.simulator.simulate`), and never below the utilization rule.

Why one replica at R / N stands for the cluster: the routers mlplan deploys split a Poisson stream into
independent Poisson streams of rate R / N (kube-proxy's random choice per connection: Bernoulli thinning), so
every replica sees the same load and the pooled percentiles are one replica's; Ray Serve's power-of-two router
balances better than random, so for it the figure is conservative. Bursty (gamma) arrivals are split with
Whitt's QNA rule (:func:`planner.simulator.analytic.split_ca2`). Simulations are memoized per shape, engine
settings and per-replica rate, so plans that differ by region, price or hybrid side share them.

Engine settings the simulation uses, and the plan then carries (the emitters write them verbatim):

- LLMs (vLLM V1 / TensorRT-LLM in-flight batching): ``max_num_seqs`` is the largest batch whose time per output
  token *with prefill stalls* (``tpot_with_stalls``: TPOT(b) + b x prefill / (O - 1), Sarathi-Serve) meets the
  TPOT SLO, so even a full replica keeps its TPOT; ``max_num_batched_tokens`` is vLLM's default for the GPU (at
  least ``max_num_seqs``); the KV cache is what the estimator leaves after weights. Continuous batching admits
  new requests at the next step: the batch wait is 0.
- Other models (Triton dynamic batcher / Ray Serve ``@serve.batch``): ``max_batch_size`` is the option's batch;
  the batch wait is chosen by simulation between 0 and what the latency SLO leaves after two batch latencies
  (capped at 10 ms): the one that needs fewer replicas, then the one with the lower percentile latency.

Request counts: a percentile q estimated from n samples has about n (1 - q) samples above it. Each simulation
measures ``requests_for(q)`` = 20 / (1 - q) requests (2,000 at p99; at least 400), after a warm-up of a tenth as
many that starts from an empty replica and is left out: 20 samples above the p99 put the estimate's rank within
+-4.4 (one standard deviation of a binomial count: sqrt(n q (1 - q))), i.e. between the true p98.8 and p99.2.
Every simulation is seeded (``SEED``), so a plan is reproducible bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from planner.catalog.schema import Accelerator, EdgeDevice
from planner.estimator.calibration import SERVING_OVERHEAD_S
from planner.estimator.inference import InferenceEstimate
from planner.optimizer.options import Miss, OptionEvaluator, ReplicaOption
from planner.simulator.analytic import kingman_wait, llm_analytic, split_ca2, tpot_with_stalls, wait_quantile
from planner.simulator.costs import AffineBatchCost, BatchCost, StepCost
from planner.simulator.engines import RUNTIME_ROUTER, Cluster, ContinuousBatching, DynamicBatching, vllm_defaults
from planner.simulator.headroom import slo_misses
from planner.simulator.metrics import SimResult
from planner.simulator.sim import simulate
from planner.simulator.workload import Lengths, Workload
from planner.specs import Spec

SEED = 12
"""Seed of every planning simulation (any fixed value: plans must be reproducible)."""
TAIL_SAMPLES = 10
"""Simulated requests above the SLO percentile: see the module docstring."""
MIN_REQUESTS = 400
MIN_SCREENING = 300
MAX_REQUESTS = 20_000
BOUND_SAFETY = 1.3
"""The closed-form rate bound is multiplied by this before it bounds the replica count from below: the analytic
model is a lower bound on the simulated p90 / p99 under load (tests/test_simulator.py) but only within 15% of the
p50 at light load, so a margin keeps it on the optimistic side (tests/test_slo.py checks it on the examples)."""
MAX_DELAY_S = 0.010
"""Longest batch wait the planner considers (Triton's examples use 100-10,000 us; beyond 10 ms the wait dominates
small models' latency)."""
MAX_REPLICAS = 100_000
GRID_PER_OCTAVE = 12
"""Load headroom is located on the per-replica rate grid 2^(k / 12): one step is 5.9%, and probes at the same grid
rate are shared by every network distance of a shape (memoized)."""
GRID_STEP = 2.0 ** (1.0 / GRID_PER_OCTAVE)
OVERLOAD_THROUGHPUT = 0.85
"""A simulation whose replica served less than this fraction of the arrival rate (requests / first arrival to
last completion vs the arrival rate) is overloaded: its queue grows with the run's length, so a finite run's
percentiles understate a steady state that does not exist; it misses."""


def requests_for(percentile: float) -> int:
    """Measured requests a simulation needs for ``percentile``: TAIL_SAMPLES above it, within bounds."""
    tail = max(1e-6, 1.0 - percentile / 100.0)
    return max(MIN_REQUESTS, min(MAX_REQUESTS, math.ceil(TAIL_SAMPLES / tail)))


def lengths(spec: Spec, image_tokens: int = 0) -> tuple[Lengths, Lengths]:
    """(prompt, output) token-length distributions of the spec's workload; ``image_tokens`` are added to every
    prompt (vision-language models)."""
    w = spec.workload
    assert w.kind == "inference"

    def one(mean: int, spread: float, bins: Any, extra: int) -> Lengths:
        if bins:
            return Lengths.from_histogram([(b.tokens + extra, b.weight) for b in bins])
        if spread > 0:
            return Lengths.uniform(mean + extra, spread * mean / (mean + extra) if extra else spread)
        return Lengths.fixed(mean + extra)

    return (one(w.input_tokens, w.input_tokens_spread, w.input_tokens_histogram, image_tokens),
            one(w.output_tokens, w.output_tokens_spread, w.output_tokens_histogram, 0))


def screening_requests(percentile: float) -> int:
    """Measured requests of a screening simulation (locating a replica count or the capacity): a quarter of the
    full count, at least MIN_SCREENING; a full-length simulation confirms every replica count the planner keeps."""
    return max(MIN_SCREENING, requests_for(percentile) // 4)


def confident_percentile(percentile: float, samples: int) -> float:
    """The percentile whose sample estimate bounds the true ``percentile`` from above with one-sigma confidence:
    of n samples, n (1 - q) lie above the true q-th percentile on average, with a binomial standard deviation
    sqrt(n q (1 - q)); reading the order statistic that many fewer from the top gives an upper bound (84%
    one-sided, normal approximation). E.g. p99 of 1,000 samples: the 6.9th largest, p99.31."""
    if samples <= 0:
        return percentile
    q = percentile / 100.0
    above = samples * (1.0 - q)
    sigma = math.sqrt(samples * q * (1.0 - q))
    return 100.0 * (1.0 - max(0.5, above - sigma) / samples)


def _grid(rate: float) -> int:
    """Index of the largest grid rate at or below ``rate``."""
    return math.floor(math.log2(max(rate, 1e-12)) * GRID_PER_OCTAVE + 1e-9)


def _rate(k: int) -> float:
    return float(2.0 ** (k / GRID_PER_OCTAVE))


def preferred_batch_sizes(batch: int) -> tuple[int, ...]:
    """Triton ``preferred_batch_size``: the powers of two from a quarter of the batch up to it, and the batch."""
    b = max(1, batch)
    return tuple(sorted({min(b, 2**k) for k in range(int(math.log2(b)) + 1) if 2**k >= max(1, b // 4)} | {b}))


def max_ongoing_requests(batch: int, llm: bool) -> int:
    """Requests one replica accepts at once (Ray Serve ``max_ongoing_requests``; TensorRT-LLM's queue): an LLM
    replica its running batch, a batcher two batches (one running, one forming)."""
    return max(1, batch if llm else 2 * batch)


def rule_delay_s(batch: int, latency_slo_s: float | None, batch_latency_s: float) -> float:
    """The batch wait the latency SLO leaves after two batch latencies, capped at MAX_DELAY_S (0 for batch 1)."""
    if batch <= 1:
        return 0.0
    slack = (latency_slo_s or 0.1) - 2.0 * batch_latency_s
    return max(0.0, min(slack, MAX_DELAY_S))


@dataclass(frozen=True, slots=True)
class LoadFigures:
    """What one replica set does at one total request rate (seconds, network and serving overhead included)."""

    rate_rps: float
    """total rate (all replicas)"""
    replicas: int
    ttft: tuple[float, float, float] | None
    """p50, p90, p99 (LLMs)"""
    tpot: tuple[float, float, float] | None
    latency: tuple[float, float, float]
    """end to end"""
    utilization: float
    mean_batch: float
    requests: int


@dataclass
class _Shape:
    """One replica shape's engine, cost model and tuned option fields (the same for every network distance)."""

    llm: bool
    engine: ContinuousBatching | DynamicBatching
    cost: StepCost | BatchCost
    tuned: dict[str, Any]
    """ReplicaOption fields the engine settings decide (batch, rps, ...)"""
    overhead_s: float
    """the runtime's per-request serving time"""
    router: str
    ongoing: int | None
    label: str
    alternatives: tuple[DynamicBatching, ...] = ()
    """batcher settings still to choose between (batch wait candidates)"""
    miss: Miss | None = None


@dataclass
class _Sizing:
    """What the sizer knows about one (shape, network, rate) to size."""

    tier: int
    replicas: int
    option: ReplicaOption
    hw: Accelerator | EdgeDevice
    figures: LoadFigures | None = None
    miss: Miss | None = None
    failed: int | None = None
    """the largest replica count known to miss an SLO"""
    capacity: float | None = None
    """per-replica rate (grid) up to which the SLOs hold, by screening simulations"""


@dataclass(frozen=True)
class _Key:
    hw: str
    dtype: str
    tp: int
    pp: int
    ep: int
    runtime: str
    rtt_s: float
    rps: float
    utilization: float
    floor: int

    @property
    def shape(self) -> tuple[str, str, int, int, int, str]:
        return (self.hw, self.dtype, self.tp, self.pp, self.ep, self.runtime)


class SloSizer:
    """Replica counts and engine settings that hold the spec's SLOs at the planned peak rate (see the module
    docstring); memoized for one ``recommend`` call."""

    def __init__(self, spec: Spec, ev: OptionEvaluator) -> None:
        self.spec = spec
        self.ev = ev
        w, c = spec.workload, spec.constraints
        assert w.kind == "inference"
        self.q = c.slo_percentile
        self.slos: dict[str, float] = {}
        if ev.arch.is_llm:
            for k in ("ttft_s", "tpot_s", "latency_s"):
                v = getattr(c, k)
                if v is not None:
                    self.slos[k] = v
        elif c.latency_s is not None:
            self.slos["latency_s"] = c.latency_s
        self.cv = w.burstiness
        self.requests = requests_for(self.q)
        self.screening = screening_requests(self.q)
        self.prompt, self.output = lengths(spec, ev.input_tokens - w.input_tokens if ev.arch.is_llm else 0)
        self._shapes: dict[tuple[Any, ...], _Shape] = {}
        self._sizings: dict[_Key, _Sizing] = {}
        self._sims: dict[tuple[Any, ...], SimResult] = {}
        self._bounds: dict[tuple[Any, ...], float] = {}
        self.simulations = 0
        self.simulated_requests = 0

    # ----------------------------------------------------------------------------------------- public
    @property
    def has_slo(self) -> bool:
        return bool(self.slos)

    def size(self, hw: Accelerator | EdgeDevice, opt: ReplicaOption, *, runtime: str, rtt_s: float, rps: float,
             utilization: float, floor: int = 1) -> tuple[ReplicaOption, int] | Miss:
        """(option with its engine settings, replicas) for ``rps`` at the tier reached so far, or a Miss when the
        SLOs cannot hold at any replica count. The option's ``tier`` says which rule gave the count and its
        ``sizing_key`` promotes it (:meth:`promote`)."""
        key = _Key(hw.id, opt.dtype, opt.tp, opt.pp, opt.ep, runtime, round(rtt_s, 6), round(rps, 9), utilization,
                   floor)
        s = self._sizings.get(key)
        if s is None:
            n = max(floor, _replicas_for(rps, opt.rps, utilization))
            s = self._sizings[key] = _Sizing(0, n, replace(opt, tier=0, sizing_key=key), hw)
            if not self.has_slo:  # nothing to hold: the utilization rule is the count; tune the engine only
                self._promote(key, 1)
        if s.miss is not None:
            return s.miss
        return s.option, s.replicas

    def current(self, key: Any) -> tuple[ReplicaOption, int] | None:
        """(option, replicas) a sizing has reached, None if the SLOs cannot hold."""
        s = self._sizings[key]
        return None if s.miss is not None else (s.option, s.replicas)

    def tier(self, key: Any) -> int:
        return self._sizings[key].tier

    def promote(self, key: Any) -> None:
        """Raise a sizing one tier (utilization -> bound -> simulated)."""
        self._promote(key, self._sizings[key].tier + 1)

    def figures(self, key: Any) -> LoadFigures:
        """Percentiles at the planned rate of a sized option (simulated if not yet)."""
        s = self._sizings[key]
        if s.figures is None:
            if s.tier < 1:
                self._promote(key, 1)
            shape = self._shape(key)
            res = self._simulate(shape, shape.engine, key.rps / s.replicas, s.replicas, self.requests)
            s.figures = self._figures(shape, key, res, s.replicas)
            s.option = replace(s.option, load=s.figures)
        return s.figures

    def option(self, key: Any) -> ReplicaOption:
        return self._sizings[key].option

    def max_rps_within_slo(self, key: Any) -> float | None:
        """Load headroom: the highest total rate at which the sized replica set still meets every SLO (None
        without SLOs): the replica count times the highest per-replica rate that passes, located on the rate
        grid (GRID_STEP) by screening simulations between the planned per-replica rate (which passes at full
        length) and the rate of one replica fewer (which misses); never below the planned rate."""
        if not self.has_slo:
            return None
        s = self._sizings[key]
        if s.tier < 2:
            self._promote(key, 2)
        if s.miss is not None:
            return None
        if s.capacity is None:
            shape = self._shape(key)
            n = s.replicas
            lo_rate = key.rps / n
            hi_rate = key.rps / s.failed if s.failed else None
            s.capacity = self._capacity(shape, shape.engine, key, n, lo_rate, hi_rate)
        return float(max(key.rps, s.capacity * s.replicas))

    def engine_of(self, key: Any) -> ContinuousBatching | DynamicBatching:
        return self._shape(key).engine

    def network_s(self, key: Any) -> float:
        return float(key.rtt_s + self._shape(key).overhead_s)

    # ---------------------------------------------------------------------------------------- tiers
    def _promote(self, key: _Key, tier: int) -> None:
        s = self._sizings[key]
        if s.tier >= tier or s.miss is not None:
            return
        shape = self._shape(key)
        if shape.miss is not None:
            s.miss, s.tier = shape.miss, 2
            return
        n_util = max(key.floor, _replicas_for(key.rps, shape.tuned["rps"], key.utilization))
        if s.tier < 1:
            n = n_util
            if self.has_slo:
                n = max(n, _replicas_for(key.rps, self._rate_bound(shape, key) * BOUND_SAFETY, 1.0))
            s.tier, s.replicas = (1 if self.has_slo else 2), min(n, MAX_REPLICAS)  # no SLO: the count is exact
            s.option = replace(s.option, tier=s.tier, **shape.tuned)
        if tier < 2 or not self.has_slo:
            return
        # tier 2: the smallest replica count that passes in simulation, for each batch-wait candidate still open
        start = max(n_util, _replicas_for(key.rps, self._rate_bound(shape, key), 1.0))
        best: tuple[int, float, ContinuousBatching | DynamicBatching, int | None] | None = None
        last_miss = ""
        for engine in shape.alternatives or (shape.engine,):
            found = self._smallest(shape, engine, key, start, n_util)
            if isinstance(found, str):
                last_miss = found
                continue
            n, failed = found
            lat = self._simulate(shape, engine, key.rps / n, n).e2e.at(self.q)
            if best is None or (n, lat) < (best[0], best[1]):
                best = (n, lat, engine, failed)
        s.tier = 2
        if best is None:
            s.miss = Miss("latency", last_miss, math.inf, 1.0)
            return
        n, _, engine, failed = best
        if shape.alternatives:  # the batch wait is chosen: it is the shape's from now on
            assert isinstance(engine, DynamicBatching)
            shape.engine = engine
            shape.tuned["queue_delay_s"] = engine.max_queue_delay_s
            shape.alternatives = ()
        s.replicas, s.failed = n, failed
        s.option = replace(s.option, tier=2, **shape.tuned)
        s.figures = None
        self.figures(key)

    def _smallest(self, shape: _Shape, engine: ContinuousBatching | DynamicBatching, key: _Key, start: int,
                  floor: int) -> tuple[int, int | None] | str:
        """(smallest replica count N >= ``floor`` whose replicas pass at R / N in a full-length simulation, the
        largest count known to miss or None), searched from ``start``: counts are located with screening
        simulations and every count kept is confirmed at full length. A line naming the miss when even
        MAX_REPLICAS replicas miss."""
        rps = key.rps

        def full(m: int) -> bool:
            return self._passes(shape, engine, rps / m, m, key, self.requests)

        def screen(m: int) -> bool:
            return self._passes(shape, engine, rps / m, m, key, self.screening)

        n = max(floor, min(start, MAX_REPLICAS))
        failed: int | None = None
        if not (screen(n) and full(n)):
            # up: gallop and bisect with screening simulations, then confirm at full length
            lo, step, hi = n, 1, 0
            while lo < MAX_REPLICAS:
                cand = min(MAX_REPLICAS, lo + step)
                if screen(cand):
                    hi = cand
                    break
                lo, step = cand, step * 2
            if not hi:
                misses = self._misses(shape, self._simulate(shape, engine, rps / MAX_REPLICAS, MAX_REPLICAS,
                                                            self.screening), key)
                return (f"{shape.label}: {misses[0] if misses else 'an SLO is missed'} at p{self.q:g} even at "
                        f"{rps / MAX_REPLICAS:.3g} req/s per replica")
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if screen(mid):
                    hi = mid
                else:
                    lo = mid
            n, failed = hi, lo
            while not full(n):  # the screening was optimistic: one more replica at a time
                failed = n
                n += 1
                if n > MAX_REPLICAS:
                    return f"{shape.label}: no replica count up to {MAX_REPLICAS:,} meets the SLOs"
            return n, failed
        # down: while one replica fewer still passes (screening first, then full length)
        while n > floor:
            if screen(n - 1) and full(n - 1):
                n -= 1
            else:
                return n, n - 1
        return n, None

    def _capacity(self, shape: _Shape, engine: ContinuousBatching | DynamicBatching, key: _Key, n: int,
                  lo_rate: float, hi_rate: float | None) -> float:
        """The highest per-replica rate that passes with ``n`` replicas, between ``lo_rate`` (passes) and
        ``hi_rate`` (misses; None: unknown, found by doubling), to one grid step, by screening simulations
        at grid rates (shared by every network distance of the shape)."""

        def ok(r: float) -> bool:
            return self._passes(shape, engine, r, n, key, self.screening)

        lo_k = _grid(lo_rate)
        if hi_rate is None:
            sat = 4.0 * max(lo_rate, float(shape.tuned.get("rps") or 0.0))
            step = GRID_PER_OCTAVE // 2
            guess = _grid(self._rate_bound(shape, key)) + 1  # the closed form: usually above the capacity
            hi_k = guess if guess > lo_k + 1 else lo_k + step
            while ok(_rate(hi_k)):
                lo_k = hi_k
                if _rate(lo_k) > sat:  # beyond what the replica can serve: no SLO binds before overload
                    return _rate(lo_k)
                step *= 2
                hi_k = lo_k + step
        else:
            hi_k = max(lo_k + 1, math.ceil(math.log2(hi_rate) * GRID_PER_OCTAVE - 1e-9))
        while hi_k - lo_k > 1:
            mid = (lo_k + hi_k) // 2
            if ok(_rate(mid)):
                lo_k = mid
            else:
                hi_k = mid
        return max(lo_rate, _rate(lo_k))

    # ---------------------------------------------------------------------------------------- shapes
    def _shape(self, key: _Key) -> _Shape:
        shape = self._shapes.get(key.shape)
        if shape is None:
            shape = self._shapes[key.shape] = self._build(self._sizings[key].hw, key)
        return shape

    def _build(self, hw: Accelerator | EdgeDevice, key: _Key) -> _Shape:
        from planner.estimator.shape import shape_of
        from planner.simulator.estimator_costs import EstimatorBatchCost

        ev, c = self.ev, self.spec.constraints
        runtime = key.runtime
        overhead = SERVING_OVERHEAD_S.get(runtime, 0.0)
        router = RUNTIME_ROUTER.get(runtime, "random")
        base = self._sizings[key].option
        label = _option_label(base)
        if ev.arch.is_llm:
            est = ev.base_estimate(hw, key.dtype, key.tp, key.pp, key.ep)
            return self._llm_shape(hw, est, base, overhead, router, label)
        kind: Literal["ray", "triton"] = "ray" if runtime == "ray" else "triton"
        ongoing = max_ongoing_requests(base.batch, False) if runtime == "ray" else None
        if isinstance(hw, EdgeDevice):
            lat = (base.latency_s or 0.0) - key.rtt_s - overhead  # the device's own time for one request
            return _Shape(False, DynamicBatching(runtime=kind, max_batch_size=1),
                          AffineBatchCost(fixed_s=max(1e-9, lat), per_item_s=0.0),
                          {"queue_delay_s": 0.0, "rps": base.rps}, overhead, router, ongoing, label)
        prof = ev.profile_of(hw)
        w = self.spec.workload
        assert w.kind == "inference"
        bcost = EstimatorBatchCost(shape_of(ev.arch), prof, key.dtype, max(1, w.input_tokens), key.tp)
        b = base.batch
        delays = sorted({0.0, round(rule_delay_s(b, c.latency_s, bcost.batch_s(b)), 6)})
        alts = tuple(DynamicBatching(runtime=kind, max_batch_size=b, max_queue_delay_s=d,
                                     preferred_batch_sizes=preferred_batch_sizes(b) if kind == "triton" else ())
                     for d in delays)
        engine = alts[-1]
        return _Shape(False, engine, bcost, {"queue_delay_s": engine.max_queue_delay_s, "rps": base.rps}, overhead,
                      router, ongoing,
                      label, alternatives=alts if self.has_slo and len(alts) > 1 else ())

    def _llm_shape(self, hw: Accelerator | EdgeDevice, est: InferenceEstimate, base: ReplicaOption,
                   overhead: float, router: str, label: str) -> _Shape:
        from planner.simulator.estimator_costs import EstimatorStepCost, kv_capacity_tokens

        c = self.spec.constraints
        dm = est.decode
        assert dm is not None
        cost = EstimatorStepCost(dm)
        d_tokens, _ = vllm_defaults(self.ev.profile_of(hw).memory_bytes, hw.id)
        kv = kv_capacity_tokens(est, base.dtype, c.memory_headroom)
        i_mean, o_mean = self.prompt.expected, self.output.expected
        ctx = i_mean + o_mean / 2.0

        def stalled_tpot(b: int) -> float:
            """Time per output token of a full replica: TPOT(b) plus the stalls of the prompts it admits."""
            room = max(1, max(d_tokens, b) - b)
            chunks = max(1, math.ceil(i_mean / room))
            chunk = math.ceil(i_mean / chunks)
            dec = cost.step_s(0, b, int(b * ctx))
            stall = max(0.0, cost.step_s(chunk, b, int(b * ctx), chunk * chunk / 2.0) - dec) * chunks
            return tpot_with_stalls(dec, stall, b, o_mean)

        cap = max(1, base.max_batch or base.batch)
        b = cap
        if c.tpot_s is not None and stalled_tpot(cap) > c.tpot_s:
            lo, hi = 1, cap
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if stalled_tpot(mid) <= c.tpot_s:
                    lo = mid
                else:
                    hi = mid
            b = lo
        engine = ContinuousBatching(max_num_seqs=b, max_num_batched_tokens=max(d_tokens, b),
                                    kv_capacity_tokens=max(16, kv), block_size=16)
        rps = dm.throughput_at(b) / dm.output_tokens
        tuned = {"batch": b, "rps": rps, "tokens_per_s": rps * dm.output_tokens, "tpot_s": dm.tpot(b),
                 "max_num_batched_tokens": engine.max_num_batched_tokens, "queue_delay_s": 0.0}
        miss = None
        worst = -(-(self.prompt.high + self.output.high - 1) // 16)
        if worst > (engine.kv_blocks or 0):
            miss = Miss("memory", f"{label}: the longest request ({self.prompt.high} + {self.output.high} tokens) "
                        f"needs more KV cache than the {kv:,} tokens the replica keeps", worst * 16.0, float(kv))
        return _Shape(True, engine, cost, tuned, overhead, router, None, label, miss=miss)

    # --------------------------------------------------------------------------------------- checks
    def _rate_bound(self, shape: _Shape, key: _Key) -> float:
        """Highest per-replica rate the closed forms say meets the SLOs (a bisection on a log scale; the
        saturated rate for models they do not cover): :func:`planner.simulator.analytic.llm_analytic`, its TTFT
        raised to :func:`prefill_queue_ttft` where that is higher. Memoized per shape and network."""
        mkey = (key.shape, key.rtt_s)
        hit = self._bounds.get(mkey)
        if hit is None:
            hit = self._bounds[mkey] = self._rate_bound_of(shape, key)
        return hit

    def _rate_bound_of(self, shape: _Shape, key: _Key) -> float:
        sat = float(shape.tuned.get("rps") or 0.0)
        if not shape.llm or sat <= 0:
            return sat
        assert isinstance(shape.engine, ContinuousBatching)
        slos = self._net_slos(shape, key)
        floor = sat / 1024.0
        if slos is None:
            return floor
        i_mean, o_mean = self.prompt.expected, self.output.expected
        cv2 = max(0.0, self.prompt.second_moment / max(1.0, i_mean) ** 2 - 1.0)
        engine, cost = shape.engine, shape.cost
        assert not isinstance(cost, AffineBatchCost)
        checks = [(m, slos[k]) for m, k in (("ttft", "ttft_s"), ("tpot", "tpot_s"), ("e2e", "latency_s"))
                  if k in slos]
        t_p = cost.step_s(round(i_mean), 0, 0, i_mean * i_mean / 2.0)  # type: ignore[union-attr]
        room = max(1, engine.max_num_batched_tokens - 1)
        chunks = max(1, math.ceil(i_mean / room))
        ctx = i_mean + o_mean / 2.0

        def ok(r: float) -> bool:
            a = llm_analytic(cost, engine, rate_rps=r, input_tokens=i_mean,  # type: ignore[arg-type]
                             output_tokens=o_mean, input_cv2=cv2, arrival_ca2=1.0)
            if not a.stable:
                return False
            b = max(1, round(a.decode_batch))
            td = cost.step_s(0, b, int(b * ctx))  # type: ignore[union-attr]
            ttft_q = prefill_queue_ttft(t_p, td, chunks, r, cv2, self.q)
            for m, v in checks:
                got = a.at(m, self.q)
                if m == "ttft":
                    got = max(got, ttft_q)
                elif m == "e2e":
                    got = max(got, ttft_q + (o_mean - 1.0) * a.at("tpot", self.q))
                if not got <= v:
                    return False
            return True

        if not ok(floor):
            return floor
        lo, hi = floor, sat * 1.5
        for _ in range(6):  # 10.6 octaves / 2^6: within 12%, enough for a bound and a starting point
            mid = math.sqrt(lo * hi)
            if ok(mid):
                lo = mid
            else:
                hi = mid
        return lo

    def _net_slos(self, shape: _Shape, key: _Key) -> dict[str, float] | None:
        """The SLOs a simulation without network must meet (TTFT and end-to-end less the network and serving
        time); None if the network alone spends one."""
        net = key.rtt_s + shape.overhead_s
        out = {}
        for k, v in self.slos.items():
            left = v - net if k in ("ttft_s", "latency_s") else v
            if left <= 0:
                return None
            out[k] = left
        return out

    def _misses(self, shape: _Shape, res: SimResult, key: _Key, confident: bool = False) -> list[str]:
        """What ``res`` misses at the SLO percentile; ``confident``: at its upper one-sigma bound
        (:func:`confident_percentile`), as the planner checks the replica counts it keeps."""
        slos = self._net_slos(shape, key)
        if slos is None:
            return [f"the network and serving time ({(key.rtt_s + shape.overhead_s) * 1e3:.1f} ms) leave "
                    "nothing of the SLO"]
        q = confident_percentile(self.q, res.measured) if confident else self.q
        out = slo_misses(res, slos, q)
        if res.throughput_rps < OVERLOAD_THROUGHPUT * res.arrival_rate_rps:
            out.append(f"overloaded: {res.throughput_rps:.3g} req/s served of {res.arrival_rate_rps:.3g} arriving")
        return out

    def _passes(self, shape: _Shape, engine: ContinuousBatching | DynamicBatching, rate: float, n: int,
                key: _Key, requests: int) -> bool:
        if not self.slos:
            return True
        return not self._misses(shape, self._simulate(shape, engine, rate, n, requests), key,
                                confident=requests >= self.requests)

    def _simulate(self, shape: _Shape, engine: ContinuousBatching | DynamicBatching, rate: float, n: int,
                  requests: int | None = None) -> SimResult:
        """One replica at ``rate`` (one of ``n`` behind the runtime's router), without network time, measuring
        ``requests`` (default: the full count) after a warm-up of a tenth as many; memoized."""
        requests = requests or self.requests
        ca2 = split_ca2(self.cv * self.cv, n, shape.router)  # type: ignore[arg-type]
        cv = round(math.sqrt(ca2), 3)
        key = (id(shape.cost), engine, round(rate, 12), cv, requests)
        hit = self._sims.get(key)
        if hit is None:
            warm = max(1, requests // 10)
            w = Workload(input_tokens=self.prompt if shape.llm else Lengths.fixed(1),
                         output_tokens=self.output if shape.llm else Lengths.fixed(1), rate_rps=rate,
                         requests=requests + warm, arrival_cv=max(0.05, cv), seed=SEED)
            hit = self._sims[key] = simulate(w, engine, shape.cost, Cluster(1, "round_robin", shape.ongoing),
                                             warmup=warm)
            self.simulations += 1
            self.simulated_requests += requests + warm
        return hit

    def _figures(self, shape: _Shape, key: _Key, res: SimResult, n: int) -> LoadFigures:
        net = key.rtt_s + shape.overhead_s

        def p(d: Any, add: float) -> tuple[float, float, float]:
            return (d.at(50) + add, d.at(90) + add, d.at(99) + add)

        return LoadFigures(rate_rps=key.rps, replicas=n, ttft=p(res.ttft, net) if shape.llm else None,
                           tpot=p(res.tpot, 0.0) if shape.llm and res.tpot.count else None,
                           latency=p(res.e2e, net), utilization=res.utilization, mean_batch=res.mean_batch,
                           requests=res.measured)


PREFILL_QUEUE_OPTIMISM = 0.8
"""The queueing part of :func:`prefill_queue_ttft` is taken at this fraction: vLLM serves several waiting prompts
in one step when its token budget allows (bulk service), which a one-at-a-time queue overstates; 0.8 keeps the
bound below the simulated p99 TTFT on the examples (tests/test_slo.py)."""


def prefill_queue_ttft(prefill_s: float, decode_step_s: float, chunks: int, rate_rps: float, prompt_cv2: float,
                       percentile: float) -> float:
    """A closed-form TTFT percentile of one replica whose prompts queue for the GPU one after another: each is
    served in ``chunks`` steps that also carry the decode batch (service S = prefill + chunks x decode step), an
    M/G/1 queue with utilization rho = rate x S. Its mean wait is Kingman's (Kingman 1961; Poisson arrivals, the
    prompt-length spread as the service variability) and its tail exponential with P(wait > 0) = rho (the
    heavy-traffic limit, Kingman 1962): :func:`~planner.simulator.analytic.wait_quantile`. The percentile is the
    request's own prefill plus PREFILL_QUEUE_OPTIMISM x that wait (inf when rho >= 1)."""
    service = prefill_s + chunks * decode_step_s
    rho = rate_rps * service
    if rho >= 1.0:
        return math.inf
    wait = kingman_wait(rho, 1.0, prompt_cv2, service)
    return prefill_s + PREFILL_QUEUE_OPTIMISM * wait_quantile(wait, rho, percentile)


def _replicas_for(rps: float, per_replica: float, utilization: float) -> int:
    if per_replica <= 0:
        return MAX_REPLICAS
    return max(1, min(MAX_REPLICAS, math.ceil(rps / (per_replica * utilization) - 1e-9)))


def _option_label(o: ReplicaOption) -> str:
    return f"{o.accelerator} {o.dtype} tp{o.tp}" + (f" pp{o.pp}" if o.pp > 1 else "") + (f" ep{o.ep}" if o.ep > 1
                                                                                          else "")


def slo_summary(slos: Mapping[str, float], q: float) -> str:
    return ", ".join(f"{k.removesuffix('_s')} p{q:g} <= {v * 1e3:.0f} ms" for k, v in slos.items())
