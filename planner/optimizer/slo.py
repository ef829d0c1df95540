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

Request counts: a percentile q estimated from n samples has about n (1 - q) samples above it. A full-length
simulation measures ``requests_for(q)`` = 15 / (1 - q) requests (1,500 at p99; at least 400), after a warm-up of a
tenth as many that starts from an empty replica and is left out. Why 15 at p99: the estimate's spread from seed to
seed, measured (16 seeds, Llama-3-70B fp8 TP4 on H100, 2,048 / 384 tokens, at 1.33 and 2 req/s), is a coefficient of
variation of 8.7% / 6.8% at 1,000 requests, 5.4% / 3.8% at 1,500 and 4.8% / 4.7% at 2,000: queueing makes
neighbouring requests' latencies correlated, so the spread falls slower than the binomial count alone (+-3.9 of 15
samples above the p99, sqrt(n q (1 - q))) suggests, and flattens by 1,500. A kept replica count must pass at the
one-sigma upper bound of the percentile (:func:`confident_percentile`: p99.26 of 1,500), which absorbs most of that
spread; screening simulations (a quarter as many, at least 500) only locate counts and rates. Every simulation is
seeded (``SEED``), so a plan is reproducible bit for bit.
"""

from __future__ import annotations

import math
import statistics
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from planner.catalog.schema import Accelerator, EdgeDevice
from planner.estimator.dtypes import activation_bytes
from planner.estimator.inference import InferenceEstimate
from planner.estimator.memory import kv_elem_bytes, state_elem_bytes
from planner.optimizer.options import Miss, OptionEvaluator, ReplicaOption
from planner.optimizer.runtimes import runtime_cost
from planner.plan import RuntimeCost
from planner.simulator.analytic import (
    allen_cunneen_wait,
    erlang_c,
    kingman_wait,
    llm_analytic,
    split_ca2,
    tpot_with_stalls,
    wait_quantile,
)
from planner.simulator.costs import AffineBatchCost, BatchCost, StepCost
from planner.simulator.engines import RUNTIME_ROUTER, Cluster, ContinuousBatching, DynamicBatching, vllm_defaults
from planner.simulator.headroom import highest_passing_rate, slo_misses
from planner.simulator.metrics import SimResult
from planner.simulator.sim import simulate_states
from planner.simulator.workload import Lengths, Workload, spec_lengths
from planner.specs import Spec

if TYPE_CHECKING:
    from planner.simulator.engines import FrontStage

SEED = 12
"""Seed of every planning simulation (any fixed value: plans must be reproducible)."""
TAIL_SAMPLES = 15
"""Simulated requests above the SLO percentile: see the module docstring."""
MIN_REQUESTS = 400
MIN_SCREENING = 500
MAX_REQUESTS = 20_000
BOUND_SAFETY = 1.0
"""The closed-form rate bound is multiplied by this before it bounds the replica count from below: the analytic
model is a lower bound on the simulated p90 / p99 under load (tests/test_simulator.py) but only within 15% of the
p50 at light load, so a margin keeps it on the optimistic side (tests/test_slo.py checks it on the examples)."""
MAX_DELAY_S = 0.010
"""Longest batch wait the planner considers (Triton's examples use 100-10,000 us; beyond 10 ms the wait dominates
small models' latency)."""
MAX_REPLICAS = 100_000
MIN_RATE_RPS = 1e-6
"""Lowest rate a replica set is sized for (one request in 11.6 days): a hybrid side that a tiny traffic fraction
reaches still gets its replica, simulated at this rate rather than at a rate that rounds to zero."""
NEAR_PROBES = 2
MAX_PROBES = 8
"""Full-length simulations the search of an LLM shape's replica count makes before it hands over to the generic
one (it needs one to three on the examples)."""
GROWTH = 1.25
"""Factor by which the replica count grows while it misses (the estimate it starts from is within 25% on the
examples)."""
SKIP_MARGIN = 0.05
"""A shape is rejected without simulating when the closed form at next to no load (where it is exact) puts it this
far over an SLO."""
CALIBRATION_LIMIT = 4.0
HEADROOM_TOLERANCE = 0.05
"""Every capacity the calibrated closed form proposes for an LLM replica is checked by simulation. Where a screening run
misses (the form misses the cliff where the batch fills up, by a few to tens of percent), the capacity is searched below
the proposal (:func:`planner.simulator.headroom.highest_passing_rate`: from half the proposal or the planned rate,
whichever is higher, then bisecting) until the rate that passes and the one that misses are within 5%; where it passes,
above it, up to MAX_UTILIZATION of the saturated rate (Llama-3.1-8B fp8 on an L40S, 2,048 + 32 tokens: the form proposed
5.8 req/s where the p90 SLOs hold to 8.7). The rate found must then pass a full-length run; where it misses, full-length
runs gallop down from it and bisect (stepping down 5% at a time took up to eight full-length runs per plan). Taking
proposals up to 1.25 x the planned rate unchecked overstated the headroom at the cliff: chat-eu-pii on 8 A10Gs was shown
13.7 req/s where the p99 TTFT reaches its 1 s SLO at 13.0 (1.35-1.6 s at 13.7 over 40,000 requests)."""
HEADROOM_STEPS = 8
"""At most this many simulations per capacity search. Bisecting from the planned rate alone, two steps left the
headroom of a lightly loaded replica up to (proposal / planned rate)^(1/4) low: an H100 replica of Llama-3.1-8B
planned at 0.01 req/s was shown 4 req/s where it holds 25-30 (benchmarks/aiconfigurator_side_by_side.py,
2026-12-01)."""

HEADROOM_GROWTH = 1.25
"""Factor the capacity search steps up by from a calibrated proposal that passed (it is usually within a few
percent of the cliff: doubling cost one more simulation, and bisecting the doubled bracket two, per plan)."""

HEADROOM_GUARD = "one HEADROOM_TOLERANCE step below the rate a full-length run confirmed"
"""Why the LLM headroom shown stops one search step short of the highest rate confirmed: the search ends at the
cliff where queued prompts pile up, and there the p99 TTFT of one run depends on whether a rare queue excursion
falls inside it. chat-eu-pii on 3 x L40S (bf16) confirmed 13.57 req/s at the planner's seed; re-simulated over 6,000
requests with three other seeds its p99 TTFT was 1.24-1.80 s against the 1 s SLO there and 0.97-0.99 of the SLO at
5% less (tests/test_slo.py, test_headroom_is_where_the_slos_stop_holding, 2026-12-01)."""

PREFILL_QUEUE_OPTIMISM = 0.8
"""The queueing part of :func:`prefill_queue_ttft` is taken at this fraction: vLLM serves several waiting prompts
in one step when its token budget allows (bulk service), which a one-at-a-time queue overstates; 0.8 keeps the
bound below the simulated p99 TTFT on the examples (tests/test_slo.py)."""
"""Replica counts above the start tried at full length before switching to screening simulations."""
GRID_PER_OCTAVE = 12
"""Load headroom is located on the per-replica rate grid 2^(k / 12): one step is 5.9%, and probes at the same grid
rate are shared by every network distance of a shape (memoized)."""
GRID_STEP = 2.0 ** (1.0 / GRID_PER_OCTAVE)
BOUND_OCTAVES = 8
"""The closed-form bound looks down to 2^-8 of a replica's saturated rate; a capacity below that is bounded by it,
which keeps the bound a lower bound on the replica count (and such a shape never ranks)."""
MAX_UTILIZATION = 0.9
"""Highest load, as a fraction of a replica's saturated throughput, at which the planner trusts a simulation: closer
to saturation the queue's relaxation time outgrows any affordable run (an L40S serving Llama-3-8B at 93% of its
saturated rate: p99 TTFT 0.27 s over 2,000 requests, 1.4 s over 8,000), so such a load misses by definition."""
SIM_CACHE_SIZE = 512
"""Simulations kept across ``recommend`` calls in one process (least recently used out): a simulation is a pure
function of its key (the cost model's inputs, the engine, the rate, the seed), so a repeated plan or a sibling
spec reuses it."""
_SIM_CACHE: OrderedDict[tuple[Any, ...], SimResult] = OrderedDict()
OVERLOAD_THROUGHPUT = 0.85
"""A simulation whose replica served less than this fraction of the arrival rate (requests / first arrival to
last completion vs the arrival rate) is overloaded: its queue grows with the run's length, so a finite run's
percentiles understate a steady state that does not exist; it misses."""


def requests_for(percentile: float) -> int:
    """Measured requests a simulation needs for ``percentile``: TAIL_SAMPLES above it, within bounds."""
    tail = max(1e-6, 1.0 - percentile / 100.0)
    return max(MIN_REQUESTS, min(MAX_REQUESTS, math.ceil(TAIL_SAMPLES / tail - 1e-6)))


def screening_requests(percentile: float) -> int:
    """Measured requests of a screening simulation (locating a replica count or the capacity): a quarter of the
    full count, at least MIN_SCREENING; a full-length simulation confirms every replica count the planner keeps.
    Where the full count is at most twice MIN_SCREENING (percentiles up to p98), screening is the full count:
    the replica count is then exactly the smallest one whose full-length simulation passes."""
    full = requests_for(percentile)
    return full if full <= 2 * MIN_SCREENING else max(MIN_SCREENING, full // 4)


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


def _qgrid(rate: float) -> int:
    """Index of the largest quarter-octave grid rate at or below ``rate`` (the closed-form bound's grid)."""
    return math.floor(math.log2(max(rate, 1e-12)) * 4 + 1e-9)


def _qrate(j: int) -> float:
    return float(2.0 ** (j / 4))


def preferred_batch_sizes(batch: int) -> tuple[int, ...]:
    """Triton ``preferred_batch_size``: the powers of two from a quarter of the batch up to it, and the batch."""
    b = max(1, batch)
    return tuple(sorted({min(b, 2**k) for k in range(int(math.log2(b)) + 1) if 2**k >= max(1, b // 4)} | {b}))


QUEUE_HORIZON_S = 1.0
"""With no latency SLO, the wait a replica's own queue is sized for (``max_ongoing_requests``)."""
MAX_ONGOING = 1000
"""Cap on ``max_ongoing_requests``: what Ray Serve LLM's ingress builder sets for its own deployments (Ray 2.60,
``ray/llm/_internal/serve/core/ingress/builder.py``)."""


def max_ongoing_requests(batch: int, turnover_s: float | None = None, horizon_s: float | None = None) -> int:
    """Requests one replica accepts at once (Ray Serve ``max_ongoing_requests``; TensorRT-LLM's queue): its
    running batch plus every request that can still start within ``horizon_s`` (the latency SLO: TTFT for an LLM)
    while full batches turn over every ``turnover_s`` (a batcher's full-batch time; an LLM's output length x
    TPOT at the batch), that is batch x (1 + ceil(horizon / turnover)): at least two batches (one running, one
    forming; also the figure where the turnover is not known), at most MAX_ONGOING.

    Why not fewer. A request over the limit is not queued at Ray Serve's router: the router polls the replicas
    with exponential backoff (25, 50, 100, 200, 400, then 500 ms between tries, Ray 2.60
    ``request_router.py``, ``RAY_SERVE_ROUTER_RETRY_*``), so it waits up to half a second after a slot frees,
    and the polls' queue-length probes take the proxy's CPU. Measured on the demo MLP (one Ray Serve replica on
    a 2-thread VM, 2026-12-02): with a limit of 16 (two batches), p99 70-94 ms at 150 req/s and, at 175-200
    req/s, runs that collapsed (the server at 0.3 of its 2 cores, the median request 47-68 s); with 256, p99 34-46
    ms at 150-200 req/s and 1.2 ms less CPU per request. The simulator queues the held requests in order
    (:class:`planner.simulator.Cluster`); with this limit the requests still within the SLO never reach it."""
    b = max(1, batch)
    if not turnover_s or turnover_s <= 0 or not math.isfinite(turnover_s):
        return min(MAX_ONGOING, 2 * b)
    horizon = horizon_s if horizon_s and horizon_s > 0 else QUEUE_HORIZON_S
    return min(MAX_ONGOING, b * (1 + max(1, math.ceil(horizon / turnover_s - 1e-9))))


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
    serving: RuntimeCost
    """what the runtime adds to each request on the host (its overhead at a percentile: ``overhead_at``)"""
    router: str
    ongoing: int | None
    label: str
    cost_key: tuple[Any, ...] = ()
    """what determines ``cost`` (its inputs, by value): simulations are cached under it across calls"""
    alternatives: tuple[DynamicBatching, ...] = ()
    """batcher settings still to choose between (batch wait candidates)"""
    miss: Miss | None = None
    front: FrontStage | None = None
    """the runtime's front process ahead of the replica, where it is on the request path"""
    at_rate: Callable[[float], tuple[StepCost | BatchCost, FrontStage | None]] | None = None
    """(cost, front) at a per-replica rate, where the host's other work changes with the rate (a CPU host whose
    runtime measured its CPU per request at several rates: ``RuntimeCost.busy_cores``); None: ``cost`` and
    ``front`` at every rate"""
    states_at: Callable[[float], tuple[tuple[StepCost | BatchCost, FrontStage | None], ...]] | None = None
    """(cost, front) in each of the host's speed states at a per-replica rate (``RuntimeCost.cpu_states``: a
    calibration that saw the host's speed move), simulated one run each and pooled; None: one speed"""


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
    bound_replicas: int | None = None
    """the tier-1 count (closed-form bound), kept to check that it bounds the simulated one"""
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
    cpu_threads: int
    """the host's threads as far as they change the runtime's cost beside the model (CPU hosts; 0 elsewhere:
    :func:`planner.simulator.estimator_costs.runtime_cpu_threads`): part of the cost"""
    serving: RuntimeCost
    """what the runtime adds to each request on the host"""

    @property
    def shape(self) -> tuple[str, str, int, int, int, str, int, RuntimeCost]:
        return (self.hw, self.dtype, self.tp, self.pp, self.ep, self.runtime, self.cpu_threads, self.serving)


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
        self.prompt, self.output = spec_lengths(spec, ev.input_tokens - w.input_tokens if ev.arch.is_llm else 0)
        self._shapes: dict[tuple[Any, ...], _Shape] = {}
        self._sizings: dict[_Key, _Sizing] = {}
        self._sims: dict[tuple[Any, ...], SimResult] = {}
        self._searched: dict[tuple[Any, ...], tuple[int, ContinuousBatching | DynamicBatching, int | None] | str] = {}
        self._models: dict[tuple[Any, ...], dict[str, float] | None] = {}
        self._bias: dict[str, list[float]] = {}
        self.simulations = 0
        self.simulated_requests = 0

    # ----------------------------------------------------------------------------------------- public
    @property
    def has_slo(self) -> bool:
        return bool(self.slos)

    def size(self, hw: Accelerator | EdgeDevice, opt: ReplicaOption, *, runtime: str, rtt_s: float, rps: float,
             utilization: float, floor: int = 1, host_vcpu: int = 1, serving: RuntimeCost | None = None
             ) -> tuple[ReplicaOption, int] | Miss:
        """(option with its engine settings, replicas) for ``rps`` at the tier reached so far, or a Miss when the
        SLOs cannot hold at any replica count. The option's ``tier`` says which rule gave the count and its
        ``sizing_key`` promotes it (:meth:`promote`). ``host_vcpu``: the replica's hardware threads, which also run
        the serving runtime's own work on a CPU host (:func:`planner.simulator.estimator_costs.host_serving`).
        ``serving``: what the runtime adds to each request on the host (None: the calibration defaults)."""
        from planner.simulator.estimator_costs import runtime_cpu_threads

        rps = max(rps, MIN_RATE_RPS)
        serving = serving or runtime_cost(runtime)
        key = _Key(hw.id, opt.dtype, opt.tp, opt.pp, opt.ep, runtime, round(rtt_s, 6), round(rps, 9), utilization,
                   floor, runtime_cpu_threads(self.ev.profile_of(hw), serving.cpu_s_per_request,
                                              serving.cpu_processes, host_vcpu, serving.peak_busy_cores()), serving)
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
        without SLOs): the replica count times the highest per-replica rate that passes, never below the planned
        rate (which the sizing simulated) nor at or above the rate of one replica fewer (which missed). LLM
        replicas: the closed form's growth with load calibrated to the simulated percentiles at the planned rate
        (:meth:`_llm_capacity`); batchers: simulations on the rate grid (GRID_STEP), cheap for them."""
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
            s.capacity = (self._llm_capacity(shape, key, n, lo_rate, hi_rate) if shape.llm else
                          self._capacity(shape, shape.engine, key, n, lo_rate, hi_rate))
        return float(max(key.rps, s.capacity * s.replicas))

    def engine_of(self, key: Any) -> ContinuousBatching | DynamicBatching:
        return self._shape(key).engine

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
            s.bound_replicas = s.replicas
            s.option = replace(s.option, tier=s.tier, **shape.tuned)
        if tier < 2 or not self.has_slo:
            return
        # tier 2: the smallest replica count that passes in simulation, for each batch-wait candidate still open.
        # Sizings whose shapes step alike (bf16 and fp16 of one GPU) at the same load and network share the answer
        same = (shape.cost_key, shape.engine, shape.alternatives, key.runtime, key.rtt_s, key.rps, key.utilization,
                key.floor)
        found_best = self._searched.get(same)
        if found_best is None:
            found_best = self._searched[same] = self._search(shape, key, n_util)
        s.tier = 2
        if isinstance(found_best, str):  # the line names the shape it was found on ("label: ...")
            s.miss = Miss("latency", f"{shape.label}: {found_best.partition(': ')[2]}", math.inf, 1.0)
            return
        n, engine, failed = found_best
        if shape.alternatives:  # the batch wait is chosen: it is the shape's from now on
            assert isinstance(engine, DynamicBatching)
            shape.engine = engine
            shape.tuned["queue_delay_s"] = engine.max_queue_delay_s
            shape.alternatives = ()
        s.replicas, s.failed = n, failed
        s.option = replace(s.option, tier=2, **shape.tuned)
        s.figures = None
        self.figures(key)

    def _search(self, shape: _Shape, key: _Key, n_util: int
                ) -> tuple[int, ContinuousBatching | DynamicBatching, int | None] | str:
        """(smallest passing replica count, the engine it passes with, the largest count known to miss or None)
        over the shape's batch-wait candidates, or the line naming why none passes."""
        start = max(n_util, self._estimate(shape, key))
        best: tuple[int, float, ContinuousBatching | DynamicBatching, int | None] | None = None
        last_miss = ""
        for engine in shape.alternatives or (shape.engine,):
            found = (self._smallest_llm(shape, key, start, n_util) if shape.llm
                     else self._smallest(shape, engine, key, start, n_util))
            if isinstance(found, str):
                last_miss = found
                continue
            n, failed = found
            lat = self._simulate(shape, engine, key.rps / n, n).e2e.at(self.q)
            if best is None or (n, lat) < (best[0], best[1]):
                best = (n, lat, engine, failed)
        if best is None:
            return last_miss
        return best[0], best[2], best[3]

    def _smallest(self, shape: _Shape, engine: ContinuousBatching | DynamicBatching, key: _Key, start: int,
                  floor: int) -> tuple[int, int | None] | str:
        """(smallest replica count N >= ``floor`` whose replicas pass at R / N in a full-length simulation, the
        largest count known to miss or None), searched from ``start``: counts next to the start are tried at full
        length; a count further away is located by screening simulations (galloping, then bisection) and
        confirmed at full length. A line naming the miss when even MAX_REPLICAS replicas miss."""
        rps = key.rps

        def full(m: int) -> bool:
            return self._passes(shape, engine, rps / m, m, key, self.requests)

        def screen(m: int) -> bool:
            return self._passes(shape, engine, rps / m, m, key, self.screening)

        n = max(floor, min(start, MAX_REPLICAS))
        if full(n):
            # down: one replica fewer (screening first: it usually misses, cheaply); from a start far above the
            # answer, gallop down and bisect with screening simulations as on the way up (one replica at a time
            # once walked 20,000 counts down from MAX_REPLICAS, 7 ms each)
            if n == floor:
                return n, None
            if not (screen(n - 1) and full(n - 1)):
                return n, n - 1
            top = hi = n - 1  # passes at full length
            step = 2
            while True:
                cand = max(floor - 1, hi - step)
                if cand < floor or not screen(cand):  # below the floor is taken to miss
                    lo = cand
                    break
                hi, step = cand, step * 2
        else:
            for _ in range(NEAR_PROBES):  # the estimate is usually within a replica or two
                if n >= MAX_REPLICAS:
                    break
                if full(n + 1):
                    return n + 1, n
                n += 1
            lo, step, hi, top = n, 1, 0, MAX_REPLICAS  # far: gallop and bisect with screening simulations
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
        lo, hi = _bisect(lo, hi, lambda m: not screen(m))
        if not full(hi):  # the screening was optimistic: gallop up and bisect at full length
            lo, step = hi, 1
            while True:
                hi = min(top, lo + step)
                if full(hi):
                    break
                if hi >= MAX_REPLICAS:
                    return f"{shape.label}: no replica count up to {MAX_REPLICAS:,} meets the SLOs"
                lo, step = hi, step * 2
            lo, hi = _bisect(lo, hi, lambda m: not full(m))
        return hi, lo if lo >= floor else None

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
        lo_k, _ = _bisect(lo_k, hi_k, lambda k: ok(_rate(k)))
        return max(lo_rate, _rate(lo_k))

    # ---------------------------------------------------------------------------------------- shapes
    def _shape(self, key: _Key) -> _Shape:
        shape = self._shapes.get(key.shape)
        if shape is None:
            shape = self._shapes[key.shape] = self._build(self._sizings[key].hw, key)
        return shape

    def _build(self, hw: Accelerator | EdgeDevice, key: _Key) -> _Shape:
        from planner.estimator.shape import shape_of
        from planner.simulator.estimator_costs import EstimatorBatchCost, ServedBatchCost, host_serving

        ev, c = self.ev, self.spec.constraints
        runtime = key.runtime
        serving = key.serving
        overhead = serving.overhead_s
        router = RUNTIME_ROUTER.get(runtime, "random")
        base = self._sizings[key].option
        label = _option_label(base)
        if ev.arch.is_llm:
            est = ev.base_estimate(hw, key.dtype, key.tp, key.pp, key.ep)
            return self._llm_shape(hw, est, base, serving, router, label)
        kind: Literal["ray", "triton"] = "ray" if runtime == "ray" else "triton"
        if isinstance(hw, EdgeDevice):
            lat = (base.latency_s or 0.0) - key.rtt_s - overhead  # the device's own time for one request
            cost = AffineBatchCost(fixed_s=max(1e-9, lat), per_item_s=0.0)
            ongoing = max_ongoing_requests(1, lat, c.latency_s)
            return _Shape(False, DynamicBatching(runtime=kind, max_batch_size=1), cost,
                          {"queue_delay_s": 0.0, "rps": base.rps, "max_ongoing": ongoing}, serving, router,
                          ongoing if runtime == "ray" else None, label, cost_key=("edge", cost))
        prof = ev.profile_of(hw)
        w = self.spec.workload
        assert w.kind == "inference"
        inner = EstimatorBatchCost(shape_of(ev.arch), prof, key.dtype, ev.seq, key.tp)

        def served(other: float, s: RuntimeCost = serving
                   ) -> tuple[EstimatorBatchCost | ServedBatchCost, FrontStage | None]:
            return host_serving(inner, prof, s.cpu_s_per_request, s.cpu_processes, key.cpu_threads,
                                front_share=s.front_share, other_cores=other)

        # engine settings from the idle host; each simulation at its rate's (RuntimeCost.busy_cores)
        bcost, front = served(serving.background_cores)
        varies = key.cpu_threads > 0 and serving.peak_busy_cores() > serving.background_cores
        states = serving.states() if key.cpu_threads > 0 else (serving,)

        def states_at(r: float) -> tuple[tuple[EstimatorBatchCost | ServedBatchCost, FrontStage | None], ...]:
            return tuple(served(s.busy_cores(r) if varies else s.background_cores, s) for s in states)
        b = base.batch
        delays = sorted({0.0, round(rule_delay_s(b, c.latency_s, bcost.batch_s(b)), 6)})
        alts = tuple(DynamicBatching(runtime=kind, max_batch_size=b, max_queue_delay_s=d,
                                     preferred_batch_sizes=preferred_batch_sizes(b) if kind == "triton" else ())
                     for d in delays)
        engine = alts[-1]
        full = bcost.batch_s(b)

        def saturated(cost: EstimatorBatchCost | ServedBatchCost, stage: FrontStage | None) -> float:
            # full batches back to back: with the runtime's CPU work on a CPU host; or the front process, if it is
            # the slower stage
            return min(b / cost.batch_s(b), 1.0 / stage.service_s if stage is not None else math.inf)

        # in the host's slowest speed state (its queue grows for as long as the host stays in it, beyond what a
        # finite simulation of that state shows)
        sat = min([saturated(bcost, front),
                   *(saturated(*served(s.background_cores, s)) for s in states if s is not serving)])
        ongoing = max_ongoing_requests(b, full, c.latency_s)
        return _Shape(False, engine, bcost, {"queue_delay_s": engine.max_queue_delay_s, "rps": sat,
                                             "max_ongoing": ongoing}, serving,
                      router, ongoing if runtime == "ray" else None, label,
                      cost_key=("batch", repr(ev.arch), repr(prof), key.dtype, ev.seq, key.tp, runtime,
                                key.cpu_threads, serving.cpu_s_per_request, serving.front_share,
                                serving.background_cores, front,
                                tuple((r.rate_rps, r.cpu_s) for r in serving.by_rate) if varies else (),
                                serving.cpu_states if len(states) > 1 else ()),
                      alternatives=alts if self.has_slo and len(alts) > 1 else (), front=front,
                      at_rate=(lambda r: served(serving.busy_cores(r))) if varies else None,
                      states_at=states_at if len(states) > 1 else None)

    def _llm_shape(self, hw: Accelerator | EdgeDevice, est: InferenceEstimate, base: ReplicaOption,
                   serving: RuntimeCost, router: str, label: str) -> _Shape:
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
            tpot_slo = c.tpot_s
            b, _ = _bisect(1, cap, lambda m: stalled_tpot(m) <= tpot_slo)
        engine = ContinuousBatching(max_num_seqs=b, max_num_batched_tokens=max(d_tokens, b),
                                    kv_capacity_tokens=max(16, kv), block_size=16)
        rps = dm.throughput_at(b) / dm.output_tokens
        tuned = {"batch": b, "rps": rps, "tokens_per_s": rps * dm.output_tokens, "tpot_s": dm.tpot(b),
                 "max_num_batched_tokens": engine.max_num_batched_tokens, "queue_delay_s": 0.0,
                 "max_ongoing": max_ongoing_requests(b, dm.output_tokens * dm.tpot(b), c.ttft_s or c.latency_s)}
        miss = None
        worst = -(-(self.prompt.high + self.output.high - 1) // 16)
        if worst > (engine.kv_blocks or 0):
            miss = Miss("memory", f"{label}: the longest request ({self.prompt.high} + {self.output.high} tokens) "
                        f"needs more KV cache than the {kv:,} tokens the replica keeps", worst * 16.0, float(kv))
        # the step costs follow from the decode model alone, in which the dtype counts only by its element sizes:
        # bf16 and fp16 (same sizes, same tensor rate on the profile) share their simulations
        d = dm.dtype
        cost_key = ("llm", repr(replace(dm, dtype="")), kv_elem_bytes(d), state_elem_bytes(d), activation_bytes(d))
        return _Shape(True, engine, cost, tuned, serving, router, None, label, cost_key=cost_key, miss=miss)

    # --------------------------------------------------------------------------------------- checks
    def _rate_bound(self, shape: _Shape, key: _Key, optimism: float = PREFILL_QUEUE_OPTIMISM) -> float:
        """Highest per-replica rate the closed forms say meets the SLOs, on a quarter-octave grid below 1.5 x
        the saturated rate (the saturated rate itself for models they do not cover). ``optimism`` scales the
        prefill queue's wait: PREFILL_QUEUE_OPTIMISM gives the bound that prunes, 1 the estimate a search starts
        from. Model evaluations are memoized per shape and grid rate, shared by every network distance."""
        sat = float(shape.tuned.get("rps") or 0.0)
        if not shape.llm or sat <= 0:
            return sat
        slos = self._net_slos(shape, key)
        top = _qgrid(sat * 1.5)
        low = top - 4 * BOUND_OCTAVES
        if slos is None:
            return _qrate(low)

        def ok(j: int) -> bool:
            m = self._model(shape, _qrate(j), optimism)
            return m is not None and all(m[k] <= v for k, v in slos.items())

        if not ok(low):
            return _qrate(low)
        lo, _ = _bisect(low, top, ok)
        return _qrate(lo)

    def _model(self, shape: _Shape, r: float, optimism: float = PREFILL_QUEUE_OPTIMISM) -> dict[str, float] | None:
        """The closed-form percentiles of one LLM replica at per-replica rate ``r`` (seconds, no network): TTFT
        from :func:`~planner.simulator.analytic.llm_analytic` raised to :func:`prefill_queue_ttft`, TPOT, and
        end to end; None when the replica cannot keep up. Memoized."""
        mkey = (id(shape.cost), shape.engine, r, optimism)
        if mkey in self._models:
            return self._models[mkey]
        engine, cost = shape.engine, shape.cost
        assert isinstance(engine, ContinuousBatching) and not isinstance(cost, AffineBatchCost)
        i_mean, o_mean = self.prompt.expected, self.output.expected
        cv2 = max(0.0, self.prompt.second_moment / max(1.0, i_mean) ** 2 - 1.0)
        o_cv2 = max(0.0, self.output.second_moment / max(1.0, o_mean) ** 2 - 1.0)
        a = llm_analytic(cost, engine, rate_rps=r, input_tokens=i_mean,  # type: ignore[arg-type]
                         output_tokens=o_mean, input_cv2=cv2, arrival_ca2=1.0)
        out: dict[str, float] | None = None
        if a.stable:
            ctx = i_mean + o_mean / 2.0
            t_p = cost.step_s(round(i_mean), 0, 0, i_mean * i_mean / 2.0)  # type: ignore[union-attr]
            chunks = max(1, math.ceil(i_mean / max(1, engine.max_num_batched_tokens - 1)))
            b = max(1, round(a.decode_batch))
            td = cost.step_s(0, b, int(b * ctx))  # type: ignore[union-attr]
            # prompts of one chunk are admitted as many to a step as the token budget and the free slots allow
            per_step = (max(1, min((engine.max_num_batched_tokens - b) // max(1, round(i_mean)),
                                   engine.max_num_seqs - b)) if chunks == 1 else 1)
            t_k = (cost.step_s(per_step * round(i_mean), 0, 0, per_step * i_mean * i_mean / 2.0)  # type: ignore[union-attr]
                   if per_step > 1 else t_p)
            ttft = max(a.at("ttft", self.q), prefill_queue_ttft(t_p, td, chunks, r, cv2, self.q, optimism, per_step,
                                                                t_k),
                       slot_queue_ttft(t_p, t_p + (o_mean - 1.0) * a.step_s, engine.max_num_seqs, r, self.q,
                                       optimism, o_cv2))
            tpot = a.at("tpot", self.q)
            out = {"ttft_s": ttft, "tpot_s": tpot,
                   "latency_s": max(a.at("e2e", self.q), ttft + (o_mean - 1.0) * tpot)}
        self._models[mkey] = out
        return out

    def _calibrated(self, shape: _Shape, key: _Key, rate: float, n: int) -> Any:
        """The closed form calibrated to a full-length simulation at per-replica ``rate`` (``n`` replicas): each
        metric of the model (:meth:`_model`, optimism 1) scaled by simulated / modelled there, the simulated value
        read at the percentile the planner checks. Returns predict(r) -> {metric: seconds} | None, or None when
        the model has nothing to say there."""
        slos = self._net_slos(shape, key)
        at = self._model(shape, rate, 1.0)
        if slos is None or at is None:
            return None
        res = self._simulate(shape, shape.engine, rate, n, self.requests)
        q = confident_percentile(self.q, res.measured)
        sim = {"ttft_s": res.ttft.at(q), "tpot_s": res.tpot.at(q) if res.tpot.count else 0.0,
               "latency_s": res.e2e.at(q)}
        scale = {k: min(CALIBRATION_LIMIT, max(1.0 / CALIBRATION_LIMIT, sim[k] / at[k])) if at[k] > 0 else 1.0
                 for k in slos}

        def predict(r: float) -> dict[str, float] | None:
            m = self._model(shape, r, 1.0)
            return None if m is None else {k: m[k] * scale[k] for k in slos}

        return predict

    def _predicted_capacity(self, shape: _Shape, key: _Key, predict: Any, lo: float, hi: float) -> float:
        """The highest per-replica rate in [lo, hi] at which ``predict`` meets every SLO (bisection on a log
        scale; ``lo`` when none does)."""
        slos = self._net_slos(shape, key) or {}

        def ok(r: float) -> bool:
            m = predict(r)
            return m is not None and all(m[k] <= v for k, v in slos.items())

        if hi <= lo or not ok(lo):
            return lo
        if ok(hi):
            return hi
        for _ in range(8):  # (hi / lo)^(1/256): finer than the simulations' own spread
            mid = math.sqrt(lo * hi)
            if ok(mid):
                lo = mid
            else:
                hi = mid
        return lo

    def _llm_capacity(self, shape: _Shape, key: _Key, n: int, lo_rate: float, hi_rate: float | None) -> float:
        """An LLM replica's capacity within its SLOs: the closed form calibrated to the simulation at the planned
        per-replica rate ``lo_rate`` (which passes, :meth:`_calibrated`) proposes the highest rate meeting every
        SLO, below ``hi_rate`` (a rate the simulation showed to miss) when known. The proposal is checked by a
        screening simulation; where it misses (the closed form misses the cliff where the batch fills up), the rate
        is searched below the proposal with screening simulations, to HEADROOM_TOLERANCE, and where it passes, above
        it up to the ceiling by HEADROOM_GROWTH steps (the form can also stop short of the cliff). The rate found is
        then confirmed by a full-length simulation, as a kept replica count is; where it misses, full-length runs
        gallop down from it (5%, 10%, 21%, ... lower, not below ``lo_rate``) and bisect to HEADROOM_TOLERANCE;
        HEADROOM_STEPS simulations at most for each search. The capacity is the rate confirmed, less one
        more HEADROOM_TOLERANCE (HEADROOM_GUARD), never below ``lo_rate``, which passed."""
        predict = self._calibrated(shape, key, lo_rate, n)
        if predict is None:
            return lo_rate
        sat = float(shape.tuned.get("rps") or 0.0)
        hi = min(hi_rate if hi_rate is not None else math.inf, MAX_UTILIZATION * sat if sat > 0 else math.inf)
        if not math.isfinite(hi):
            hi = lo_rate * 4.0
        proposed = self._predicted_capacity(shape, key, predict, lo_rate, hi)
        if proposed <= lo_rate:
            return lo_rate
        engine = shape.engine

        def screen(r: float) -> bool:  # the planned rate passed a full-length run: no screening below it
            return r <= lo_rate or self._passes(shape, engine, r, n, key, self.screening)

        def full(r: float) -> bool:
            return r <= lo_rate or self._passes(shape, engine, r, n, key, self.requests)

        # a proposal that passes is usually just short of the cliff (search up from it by HEADROOM_GROWTH, to the
        # ceiling), one that misses overshoots (search down from it, within the planned rate where that is nearer
        # than half of it)
        start, ceiling = ((proposed, max(proposed, hi)) if screen(proposed)
                          else (max(lo_rate, proposed / 2.0), proposed))
        found, _ = highest_passing_rate(screen, start, ceiling=ceiling, rel_tol=HEADROOM_TOLERANCE,
                                        max_evaluations=HEADROOM_STEPS, growth=HEADROOM_GROWTH)
        rate = found or lo_rate
        if not full(rate):  # screening noise: gallop down at full length (steps 5%, 10%, 21%, ...), then bisect
            lo, hi, step = lo_rate, rate, 1.0 + HEADROOM_TOLERANCE
            while hi > lo_rate:
                r = max(lo_rate, hi / step)
                if full(r):
                    lo = r
                    break
                hi, step = r, step * step
            rate = highest_passing_rate(full, lo, ceiling=hi, rel_tol=HEADROOM_TOLERANCE,
                                        max_evaluations=HEADROOM_STEPS)[0] or lo
        # the rate confirmed may sit on the TTFT cliff, where one run passes and the next misses: one step back
        return max(lo_rate, rate / (1.0 + HEADROOM_TOLERANCE))

    def _estimate(self, shape: _Shape, key: _Key) -> int:
        """The replica count a search starts from: the closed form's (optimism 1), its TTFT scaled by how far the
        simulation has been from it on the shapes already sized for this spec (the median ratio, :attr:`_bias`):
        the closed form's TTFT tail error is much the same across shapes of one workload (its TPOT is close)."""
        if not shape.llm:
            return _replicas_for(key.rps, self._rate_bound(shape, key, 1.0), 1.0)
        slos = self._net_slos(shape, key)
        sat = float(shape.tuned.get("rps") or 0.0)
        if slos is None or sat <= 0:
            return 1
        bias = {k: statistics.median(v) for k, v in self._bias.items() if v}

        def predict(r: float) -> dict[str, float] | None:
            m = self._model(shape, r, 1.0)
            return None if m is None else {k: m[k] * bias.get(k, 1.0) for k in slos}

        cap = self._predicted_capacity(shape, key, predict, key.rps / MAX_REPLICAS, sat * 1.5)
        return _replicas_for(key.rps, cap, 1.0)

    def _learn(self, shape: _Shape, key: _Key, n: int) -> None:
        """Record simulated / modelled at a count the search kept (for :meth:`_estimate`)."""
        slos = self._net_slos(shape, key)
        rate = key.rps / n
        at = self._model(shape, rate, 1.0)
        if slos is None or at is None:
            return
        res = self._simulate(shape, shape.engine, rate, n, self.requests)
        q = confident_percentile(self.q, res.measured)
        sim = {"ttft_s": res.ttft.at(q), "tpot_s": res.tpot.at(q) if res.tpot.count else 0.0,
               "latency_s": res.e2e.at(q)}
        for k in slos:
            if k == "ttft_s" and at[k] > 0 and sim[k] > 0:  # the closed form's TTFT tail is its weak part
                self._bias.setdefault(k, []).append(min(CALIBRATION_LIMIT, max(1 / CALIBRATION_LIMIT,
                                                                                sim[k] / at[k])))

    def _smallest_llm(self, shape: _Shape, key: _Key, start: int, floor: int) -> tuple[int, int | None] | str:
        """(smallest replica count N >= ``floor`` whose replicas pass at R / N in a full-length simulation, the
        largest count known to miss or None) for an LLM shape, with full-length simulations only: from the
        estimate ``start``, counts grow by GROWTH until one passes; below the smallest passing count, the closed
        form calibrated there (:meth:`_calibrated`) proposes the count it needs. Once a proposal misses, the search
        closes in between the miss and the pass by the simulated SLO ratios (:meth:`_between`); a bracket left
        when the probes run out is bisected. Every count the answer rests on (the one kept and the one below it)
        is simulated: the calibrated form once decided the count below without a simulation, and near the cliff
        where the queue takes off it erred, on drawn cases, by 27% (3 replicas to 2), 48% (8 to 7) and in calling
        a count that passes unable to keep up (5 to 4), each time costing the plan a replica."""
        rps = key.rps
        engine = shape.engine
        slos = self._net_slos(shape, key) or {}
        idle = self._model(shape, rps / MAX_REPLICAS, 1.0)  # next to no load: the closed form is exact there
        if idle is None or any(idle[k] > v * (1.0 + SKIP_MARGIN) for k, v in slos.items()):
            what = next((f"{k} {idle[k] * 1e3:.4g} ms > {v * 1e3:.4g} ms" for k, v in slos.items()
                         if idle is not None and idle[k] > v), "the replica cannot keep up")
            return f"{shape.label}: {what} even with no queueing (the SLO less network and serving time)"
        lo = floor - 1  # largest count known (or taken) to miss
        hi: int | None = None  # smallest count known to pass
        failed: int | None = None
        n = max(floor, min(start, MAX_REPLICAS))
        guessed = False  # the calibrated form proposes until a guess misses; then the search closes in
        closing = False
        weight = {True: 1.0, False: 1.0}  # Illinois weights of the (pass, miss) ends' log ratios
        moved: bool | None = None  # which end the last closing-in step moved (True: the passing one)
        for _ in range(MAX_PROBES):
            passed = self._passes(shape, engine, rps / n, n, key, self.requests)
            if passed:
                hi = n
            else:
                lo, failed = n, n
                closing = closing or guessed
            if closing:  # the end that stays twice in a row counts half as much (Illinois: no creeping)
                weight[passed] = 1.0
                if moved == passed:
                    weight[not passed] *= 0.5
                moved = passed
            if hi is not None and hi - lo <= 1:
                self._learn(shape, key, hi)
                return hi, failed
            if hi is None:  # still missing: grow
                if n >= MAX_REPLICAS:
                    break
                n = min(MAX_REPLICAS, max(n + 1, math.ceil(n * GROWTH)))
                continue
            if closing:  # a calibrated guess missed: close in on the boundary from here on
                n = self._between(shape, key, lo, hi, weight[False], weight[True])
                continue
            predict = self._calibrated(shape, key, rps / hi, hi)
            if predict is None:
                n = (lo + hi) // 2
            else:
                cap = self._predicted_capacity(shape, key, predict, rps / hi, rps / (lo + 1) if lo >= 0 else rps)
                guess = _replicas_for(rps, cap, 1.0)
                n = min(hi - 1, max(lo + 1, guess)) if guess < hi else (lo + hi + 1) // 2
            guessed = True
        if hi is not None:
            while hi - lo > 1:  # out of probes with a bracket left: bisect it (full-length simulations)
                mid = (lo + hi) // 2
                if self._passes(shape, engine, rps / mid, mid, key, self.requests):
                    hi = mid
                else:
                    lo = failed = mid
            self._learn(shape, key, hi)
            return hi, failed
        return self._smallest(shape, engine, key, n, floor)  # the generic search (screening) takes over

    def _between(self, shape: _Shape, key: _Key, lo: int, hi: int, w_lo: float, w_hi: float) -> int:
        """The next count to simulate between ``lo`` (simulated, misses) and ``hi`` (simulated, passes): for each
        SLO that ``lo`` misses, where the log of its simulated ratio to the SLO (:meth:`_ratios`), interpolated
        linearly in the count, crosses 1 (regula falsi, each end's log ratio weighted by the Illinois rule, Dowell
        & Jarratt 1971: an end kept twice counts half, so the bracket shrinks from both sides); the highest of
        those counts, rounded down (a count that misses narrows the bracket as well as one that passes). The
        midpoint when an end cannot keep up."""
        mid = (lo + hi) // 2
        r_lo, r_hi = self._ratios(shape, key, lo), self._ratios(shape, key, hi)
        if lo < 1 or r_lo is None or r_hi is None:
            return mid
        roots = []
        for k, m_lo in r_lo.items():
            m_hi = r_hi.get(k, 0.0)
            if m_lo > 1.0 and 0.0 < m_hi <= 1.0:
                a, b = w_lo * math.log(m_lo), w_hi * math.log(m_hi)
                roots.append(hi - (hi - lo) * (-b) / (a - b))
        if not roots:
            return mid
        return min(hi - 1, max(lo + 1, math.floor(max(roots))))

    def _ratios(self, shape: _Shape, key: _Key, n: int) -> dict[str, float] | None:
        """Each SLO's ratio of a full-length simulation of ``n`` replicas' figure to it, at the percentile the
        planner checks kept counts at (its upper one-sigma bound); None when the replica cannot keep up."""
        slos = self._net_slos(shape, key)
        rate = key.rps / n
        if slos is None or _beyond_ceiling(shape, rate):
            return None
        res = self._simulate(shape, shape.engine, rate, n, self.requests)
        if res.completed < res.requests or _overloaded(res):
            return None
        q = confident_percentile(self.q, res.measured)
        out = {}
        for k, limit in slos.items():
            dist = res.metric(k)
            if dist.count:
                out[k] = dist.at(q) / limit
        return out

    def _net_slos(self, shape: _Shape, key: _Key) -> dict[str, float] | None:
        """The SLOs a simulation without network must meet (TTFT and end-to-end less the network and serving
        time at the SLO percentile); None if the network alone spends one."""
        net = key.rtt_s + shape.serving.overhead_at(self.q)
        out = {}
        for k, v in self.slos.items():
            left = v - net if k in ("ttft_s", "latency_s") else v
            if left <= 0:
                return None
            out[k] = left
        return out

    def _misses(self, shape: _Shape, res: SimResult, key: _Key, confident: bool = False,
                samples: int | None = None) -> list[str]:
        """What ``res`` misses at the SLO percentile; ``confident``: at its upper one-sigma bound
        (:func:`confident_percentile`) for ``samples`` (default: the run's own), as the planner checks the replica
        counts it keeps."""
        slos = self._net_slos(shape, key)
        if slos is None:
            return [f"the network and serving time ({(key.rtt_s + shape.serving.overhead_at(self.q)) * 1e3:.1f} "
                    "ms) leave "
                    "nothing of the SLO"]
        q = confident_percentile(self.q, samples or res.measured) if confident else self.q
        out = slo_misses(res, slos, q)
        if _overloaded(res):
            out.append(f"overloaded: {res.throughput_rps:.3g} req/s served of {res.arrival_rate_rps:.3g} arriving")
        return out

    def _passes(self, shape: _Shape, engine: ContinuousBatching | DynamicBatching, rate: float, n: int,
                key: _Key, requests: int) -> bool:
        """Whether one replica at ``rate`` meets every SLO: never above MAX_UTILIZATION of its saturated
        throughput (where a finite simulation shows a queue still growing, not a steady state), else by
        simulation."""
        if not self.slos:
            return True
        if _beyond_ceiling(shape, rate):
            return False
        # a screening run reads the percentile a full-length run is checked at (the full run's one-sigma bound),
        # so that the two agree but for sampling noise: read at the plain percentile, screening passed rates that
        # full length then missed, up to 40% above the capacity, and the headroom search spent its full-length
        # runs walking back down (2026-12-01)
        res = self._simulate(shape, engine, rate, n, requests)
        return not self._misses(shape, res, key, confident=True, samples=max(res.measured, self.requests))

    def _simulate(self, shape: _Shape, engine: ContinuousBatching | DynamicBatching, rate: float, n: int,
                  requests: int | None = None) -> SimResult:
        """One replica at ``rate`` (one of ``n`` behind the runtime's router), without network time, measuring
        ``requests`` (default: the full count) after a warm-up of a tenth as many; memoized."""
        requests = requests or self.requests
        ca2 = split_ca2(self.cv * self.cv, n, shape.router)  # type: ignore[arg-type]
        cv = round(math.sqrt(ca2), 3)
        key = (shape.cost_key, engine, round(rate, 12), cv, requests, shape.ongoing,
               repr(self.prompt) if shape.llm else "", repr(self.output) if shape.llm else "")
        hit = self._sims.get(key) or _SIM_CACHE.get(key)
        if hit is None:
            warm = max(1, requests // 10)
            w = Workload(input_tokens=self.prompt if shape.llm else Lengths.fixed(1),
                         output_tokens=self.output if shape.llm else Lengths.fixed(1), rate_rps=rate,
                         requests=requests + warm, arrival_cv=max(0.05, cv), seed=SEED)
            if shape.states_at is not None:
                states = shape.states_at(rate)
            else:
                states = ((shape.cost, shape.front) if shape.at_rate is None else shape.at_rate(rate),)
            hit = simulate_states(w, engine, states, Cluster(1, "round_robin", shape.ongoing), warmup=warm)
            self.simulations += 1
            self.simulated_requests += requests + warm
            _SIM_CACHE[key] = hit
            if len(_SIM_CACHE) > SIM_CACHE_SIZE:
                _SIM_CACHE.popitem(last=False)
        else:
            if key in _SIM_CACHE:
                _SIM_CACHE.move_to_end(key)
        self._sims[key] = hit
        return hit

    def _figures(self, shape: _Shape, key: _Key, res: SimResult, n: int) -> LoadFigures:
        def p(d: Any, net: bool) -> tuple[float, float, float]:
            add = [key.rtt_s + shape.serving.overhead_at(q, key.rps / n) if net else 0.0
                   for q in (50, 90, 99)]
            return (d.at(50) + add[0], d.at(90) + add[1], d.at(99) + add[2])

        return LoadFigures(rate_rps=key.rps, replicas=n, ttft=p(res.ttft, True) if shape.llm else None,
                           tpot=p(res.tpot, False) if shape.llm and res.tpot.count else None,
                           latency=p(res.e2e, True), utilization=res.utilization, mean_batch=res.mean_batch,
                           requests=res.measured)


def slot_queue_ttft(prefill_s: float, sequence_s: float, slots: int, rate_rps: float, percentile: float,
                    optimism: float = PREFILL_QUEUE_OPTIMISM, sequence_cv2: float = 0.0) -> float:
    """A closed-form TTFT percentile of a replica whose ``slots`` (``max_num_seqs``) are full: a request waits
    for a running sequence to finish, a G/G/c queue with c = slots servers each busy ``sequence_s`` per request
    (prefill and every decode step): Erlang's C formula for the chance to wait (Kleinrock 1975, Eq. 3.42), the
    Allen-Cunneen mean wait (:func:`~planner.simulator.analytic.allen_cunneen_wait`, Poisson arrivals, the output
    lengths' spread as the service variability) and an exponential tail
    (:func:`~planner.simulator.analytic.wait_quantile`). The percentile is the request's own prefill plus
    ``optimism`` x that wait (inf when the slots cannot keep up)."""
    c = max(1, slots)
    rho = rate_rps * sequence_s / c
    if rho >= 1.0:
        return math.inf
    p_wait = erlang_c(c, c * rho)
    mean_wait = allen_cunneen_wait(c, rho, 1.0, sequence_cv2, sequence_s)
    return prefill_s + optimism * wait_quantile(mean_wait, p_wait, percentile)


def prefill_queue_ttft(prefill_s: float, decode_step_s: float, chunks: int, rate_rps: float, prompt_cv2: float,
                       percentile: float, optimism: float = PREFILL_QUEUE_OPTIMISM, per_step: int = 1,
                       step_prefill_s: float | None = None) -> float:
    """A closed-form TTFT percentile of one replica whose prompts queue for the GPU: each is served in ``chunks``
    steps that also carry the decode batch (service S = prefill + chunks x decode step), an M/G/1 queue with
    utilization rho = rate x S. One-chunk prompts, ``per_step`` of which fit in a step's token budget, are
    served that many at a time (vLLM admits waiting prompts while the budget lasts): one step carries
    ``step_prefill_s`` (the prefill of ``per_step`` prompts together) and the decode batch, so each prompt's
    share is S = (step_prefill_s + decode step) / per_step. Its mean wait is Kingman's (Kingman 1961; Poisson
    arrivals, the prompt-length spread as the service variability) and its tail exponential with P(wait > 0) =
    rho (the heavy-traffic limit, Kingman 1962): :func:`~planner.simulator.analytic.wait_quantile`. The
    percentile is the request's own prefill plus ``optimism`` x that wait (inf when rho >= 1):
    PREFILL_QUEUE_OPTIMISM for a bound, 1 for an estimate."""
    if per_step > 1 and chunks == 1 and step_prefill_s is not None:
        service = (step_prefill_s + decode_step_s) / per_step
    else:
        service = prefill_s + chunks * decode_step_s
    rho = rate_rps * service
    if rho >= 1.0:
        return math.inf
    wait = kingman_wait(rho, 1.0, prompt_cv2, service)
    return prefill_s + optimism * wait_quantile(wait, rho, percentile)


def _bisect(lo: int, hi: int, low_side: Callable[[int], bool]) -> tuple[int, int]:
    """Narrow ``lo < hi`` to neighbours, ``lo`` on the side where ``low_side`` holds and ``hi`` where it does not
    (``low_side`` is monotone: true up to some point, false beyond; ``lo``/``hi`` are taken as already known)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if low_side(mid):
            lo = mid
        else:
            hi = mid
    return lo, hi


def _beyond_ceiling(shape: _Shape, rate: float) -> bool:
    """A per-replica rate above MAX_UTILIZATION of the shape's saturated throughput, where a finite simulation
    shows a queue still growing rather than a steady state: a miss without simulating."""
    sat = float(shape.tuned.get("rps") or 0.0)
    return sat > 0 and rate > MAX_UTILIZATION * sat


def _overloaded(res: SimResult) -> bool:
    """The run served less than OVERLOAD_THROUGHPUT of what arrived."""
    return res.throughput_rps < OVERLOAD_THROUGHPUT * res.arrival_rate_rps


def _replicas_for(rps: float, per_replica: float, utilization: float) -> int:
    if per_replica <= 0:
        return MAX_REPLICAS
    return max(1, min(MAX_REPLICAS, math.ceil(rps / (per_replica * utilization) - 1e-9)))


def _option_label(o: ReplicaOption) -> str:
    return f"{o.accelerator} {o.dtype} tp{o.tp}" + (f" pp{o.pp}" if o.pp > 1 else "") + (f" ep{o.ep}" if o.ep > 1
                                                                                          else "")


def slo_summary(slos: Mapping[str, float], q: float) -> str:
    return ", ".join(f"{k.removesuffix('_s')} p{q:g} <= {v * 1e3:.0f} ms" for k, v in slos.items())
