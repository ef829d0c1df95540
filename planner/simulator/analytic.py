"""Closed-form latency under load: cheap enough for the optimizer to prune with, before it simulates.

Each formula is a small pure function naming its source. The LLM model (:func:`llm_analytic`) composes them:

- Decode with prefill stalls. A tagged request decodes for O - 1 steps. The other decoding sequences form an
  infinite-server (M/G/inf) population, so their number is Poisson with mean m = lambda (O - 1) tau (Takacs;
  Kleinrock 1975, Vol. 1, Sec. 4.6), and its mean batch is 1 + m. Every request that arrives meanwhile adds its
  prompt's marginal step time Delta_p to one (or, chunked, several) of the tagged request's steps (the
  "generation stall" of Sarathi-Serve, Agrawal et al., OSDI 2024, Sec. 3; the prefill-decode interference of
  DistServe, Zhong et al., OSDI 2024, Sec. 2.2). Mean time per output token:
  ``tau = t_d(1 + m) / (1 - lambda Delta_p)``, solved as a fixed point. At a fixed batch b (a saturated replica
  whose finished sequences are replaced at once, b / (O - 1) admissions per step) this is the
  ``TPOT(b) + b Delta_p / (O - 1)`` of :func:`tpot_with_stalls`.
- TPOT percentiles: the number of stalls one request sees is Poisson(lambda (O - 1) tau) (PASTA, Wolff 1982), so
  TPOT_q = t_d + poisson_quantile(q) x Delta_p / (O - 1). ITL_q = t_d + Delta_p x poisson_quantile(lambda tau, q)
  (prompts admitted in one step).
- TTFT: the residual of the step in progress (renewal theory: E[S^2] / 2E[S], Kleinrock 1975, Sec. 5.2), the
  request's own prefill step(s), and the wait for the step token budget, a G/G/1 queue of prompt tokens served at
  ``max_num_batched_tokens - b`` per step (Kingman 1961), with an exponential tail (Kingman's heavy-traffic
  limit) for percentiles.

Arrival variability per replica after the router splits the stream: :func:`split_ca2` (Whitt 1983, QNA).
Non-LLM dynamic batching: :func:`batcher_analytic`.

How close it is (tests/test_simulator.py checks it): within 15% of the simulated p50 TTFT and TPOT at light
load; under heavy load it is a lower bound on the simulated p90 and p99, so a configuration it rejects is truly
over its SLO (safe pruning).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.simulator.costs import BatchCost, StepCost
from planner.simulator.engines import ContinuousBatching, DynamicBatching, Router

INF = math.inf


# --------------------------------------------------------------------------------------- queueing pieces


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with ``offered_load`` a = lambda / mu (Erlang's C
    formula; Kleinrock 1975, Vol. 1, Eq. 3.42). 1 when a >= c."""
    c, a = servers, offered_load
    if a <= 0:
        return 0.0
    if a >= c:
        return 1.0
    term = 1.0
    total = 1.0
    for k in range(1, c):
        term *= a / k
        total += term
    last = term * a / c / (1.0 - a / c)
    return last / (total + last)


def kingman_wait(rho: float, ca2: float, cs2: float, mean_service_s: float) -> float:
    """Mean wait in a G/G/1 queue: rho / (1 - rho) x (ca^2 + cs^2) / 2 x E[S] (Kingman 1961, "The single server
    queue in heavy traffic"). Exact for M/M/1; inf when rho >= 1."""
    if rho <= 0:
        return 0.0
    if rho >= 1:
        return INF
    return rho / (1.0 - rho) * (ca2 + cs2) / 2.0 * mean_service_s


def allen_cunneen_wait(servers: int, rho: float, ca2: float, cs2: float, mean_service_s: float) -> float:
    """Mean wait in a G/G/c queue: Erlang-C(c, c rho) / (c (1 - rho)) x (ca^2 + cs^2) / 2 x E[S] (Allen 1990,
    "Probability, Statistics and Queueing Theory", Sec. 6; the Allen-Cunneen approximation)."""
    if rho <= 0:
        return 0.0
    if rho >= 1:
        return INF
    pw = erlang_c(servers, servers * rho)
    return pw / (servers * (1.0 - rho)) * (ca2 + cs2) / 2.0 * mean_service_s


def split_ca2(ca2: float, replicas: int, router: Router) -> float:
    """Squared CV of the arrivals one replica sees when a router splits a stream of squared CV ``ca2`` over
    ``replicas`` (Whitt 1983, "The queueing network analyzer", Sec. 4): round robin sums ``replicas`` consecutive
    gaps (ca^2 / n); random (Bernoulli) splitting gives p ca^2 + 1 - p with p = 1/n. Load-aware routers
    (least outstanding, power of two) are given the round-robin value: they balance at least as well."""
    n = max(1, replicas)
    if n == 1:
        return ca2
    if router == "random":
        p = 1.0 / n
        return p * ca2 + 1.0 - p
    return ca2 / n


def wait_quantile(mean_wait_s: float, p_wait: float, q: float) -> float:
    """q-th percentile of a waiting time that is 0 with probability 1 - ``p_wait`` and exponential otherwise
    (the heavy-traffic waiting time of a G/G/1 queue is exponential: Kingman 1962): (E[W] / p) ln(p / (1 - q))."""
    if mean_wait_s <= 0 or p_wait <= 0:
        return 0.0
    if not math.isfinite(mean_wait_s):
        return INF
    tail = 1.0 - q / 100.0
    if tail >= p_wait:
        return 0.0
    return mean_wait_s / p_wait * math.log(p_wait / max(tail, 1e-12))


def poisson_quantile(mu: float, q: float) -> int:
    """Smallest k with P(Poisson(mu) <= k) >= q / 100."""
    if mu <= 0:
        return 0
    target = q / 100.0
    if mu > 200:  # normal approximation with continuity correction
        z = _normal_quantile(target)
        return max(0, math.ceil(mu + z * math.sqrt(mu) - 0.5))
    p = math.exp(-mu)
    cdf = p
    k = 0
    while cdf < target and k < 10_000:
        k += 1
        p *= mu / k
        cdf += p
    return k


def _normal_quantile(p: float) -> float:
    """Inverse standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9)."""
    p = min(max(p, 1e-12), 1 - 1e-12)
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    if p < 0.02425:
        s = math.sqrt(-2 * math.log(p))
        return (((((c[0] * s + c[1]) * s + c[2]) * s + c[3]) * s + c[4]) * s + c[5]) / \
            ((((d[0] * s + d[1]) * s + d[2]) * s + d[3]) * s + 1)
    if p > 1 - 0.02425:
        return -_normal_quantile(1 - p)
    s = p - 0.5
    r = s * s
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * s / \
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)


def tpot_with_stalls(decode_step_s: float, prefill_stall_s: float, batch: float, output_tokens: float) -> float:
    """Mean time per output token of a replica that keeps ``batch`` sequences decoding: every decode step carries
    batch / (O - 1) newly admitted prompts (one per finished sequence), each adding ``prefill_stall_s`` to it:
    TPOT(b) + b x Delta_p / (O - 1) (Sarathi-Serve, Agrawal et al. 2024, Sec. 3: generation stalls)."""
    if output_tokens <= 1:
        return decode_step_s
    return decode_step_s + batch * prefill_stall_s / (output_tokens - 1.0)


# --------------------------------------------------------------------------------------------- LLM


@dataclass(frozen=True, slots=True)
class Analytic:
    """Closed-form percentiles of one replica at one arrival rate (seconds; inf when the rate is over capacity)."""

    rate_rps: float
    stable: bool
    decode_batch: float
    step_s: float
    ttft: tuple[float, float, float]
    tpot: tuple[float, float, float]
    itl: tuple[float, float, float]
    e2e: tuple[float, float, float]
    utilization: float

    def at(self, metric: str, q: float) -> float:
        """Interpolated percentile of ``ttft`` / ``tpot`` / ``itl`` / ``e2e`` between p50, p90 and p99."""
        p50, p90, p99 = getattr(self, metric)
        if q <= 50:
            return float(p50)
        if q <= 90:
            return float(p50 + (p90 - p50) * (q - 50) / 40.0)
        return float(p90 + (p99 - p90) * min(1.0, (q - 90) / 9.0))


def llm_analytic(cost: StepCost, engine: ContinuousBatching, *, rate_rps: float, input_tokens: float,
                 output_tokens: float, input_cv2: float = 0.0, arrival_ca2: float = 1.0,
                 replicas: int = 1, router: Router = "round_robin", network_s: float = 0.0) -> Analytic:
    """Closed-form TTFT / TPOT / ITL / end-to-end p50, p90, p99 of ``replicas`` vLLM replicas at ``rate_rps``
    (total, split evenly). ``input_cv2`` is the squared CV of prompt lengths, ``arrival_ca2`` the squared CV of
    inter-arrival times (1 Poisson)."""
    lam = rate_rps / max(1, replicas)
    ca2 = split_ca2(arrival_ca2, replicas, router)
    I = max(1.0, input_tokens)  # noqa: E741
    O = max(1.0, output_tokens)  # noqa: E741
    ctx = I + O / 2.0
    M = engine.max_num_batched_tokens

    def t_d(b: float) -> float:
        bi = max(1, round(b))
        return cost.step_s(0, bi, int(bi * ctx))

    # vLLM admits a waiting prompt only into a free slot (len(running) < max_num_seqs): with one slot no prompt
    # ever joins the steps of a sequence that is decoding, so its tokens see no prefill stalls (the next prompt
    # waits for the slot, which the caller's slot queue models)
    one_slot = engine.max_num_seqs <= 1

    def stall(b: float) -> tuple[float, int]:
        """(marginal time of one prompt, spread over its chunks; chunks) when fused into decode steps of b."""
        bi = max(1, round(b))
        room = max(1, M - bi)
        chunks = max(1, math.ceil(I / room))
        if one_slot:
            return 0.0, chunks
        chunk = math.ceil(I / chunks)
        per = cost.step_s(chunk, bi, int(bi * ctx), chunk * chunk / 2.0) - cost.step_s(0, bi, int(bi * ctx))
        return max(0.0, per) * chunks, chunks

    t_p = cost.step_s(round(I), 0, 0, I * I / 2.0)
    b_cap = float(engine.max_num_seqs)
    if engine.kv_capacity_tokens is not None:
        b_cap = min(b_cap, engine.kv_capacity_tokens / (I + O / 2.0))  # mean KV of a running sequence
    unstable = Analytic(rate_rps, False, b_cap, INF, (INF,) * 3, (INF,) * 3, (INF,) * 3, (INF,) * 3, 1.0)
    if lam <= 0:
        d1 = t_d(1)
        return Analytic(0.0, True, 1.0, d1, (t_p + network_s,) * 3, (d1,) * 3, (d1,) * 3,
                        (t_p + network_s + (O - 1) * d1,) * 3, 0.0)
    tau = t_d(1)
    m = 0.0
    dp, chunks = stall(1)
    for _ in range(200):
        m = lam * (O - 1.0) * tau  # sequences decoding on average (Little's law): the slots they hold
        if m >= b_cap:
            return unstable
        seen = min(1.0 + m, b_cap)  # the batch a decoding request sees: itself and the others, at most the cap
        dp, chunks = stall(seen)
        rho_p = lam * dp
        if rho_p >= 1.0:
            return unstable
        new = t_d(seen) / (1.0 - rho_p)
        if abs(new - tau) <= 1e-9 * tau:
            tau = new
            break
        tau = new
    else:
        return unstable
    b = min(1.0 + m, b_cap)
    td = t_d(b)
    per_chunk = dp / chunks
    # TPOT: stalls a request sees over its O - 1 decode steps ~ Poisson(lambda (O - 1) tau x chunks)
    mu_stalls = lam * (O - 1.0) * tau * chunks

    def tpot_q(q: float) -> float:
        return td + poisson_quantile(mu_stalls, q) * per_chunk / max(1.0, O - 1.0)

    tpot_mean = tau

    # ITL: one step's stalls ~ Poisson(lambda tau chunks) prompts' chunks
    def itl_q(q: float) -> float:
        return td + poisson_quantile(lam * tau * chunks, q) * per_chunk

    # TTFT = residual of the step in progress + the request's own prefill step(s) + the wait for token budget
    p_busy = 1.0 - math.exp(-lam * (t_p + (O - 1.0) * tau))
    es = tau  # mean step
    n_mix = lam * tau * chunks  # prompt chunks per step ~ Poisson
    es2 = td * td + 2 * td * per_chunk * n_mix + per_chunk**2 * (n_mix + n_mix**2)
    residual = p_busy * es2 / (2.0 * es) if es > 0 else 0.0
    own_busy = chunks * td + dp * (1.0 + lam * residual)
    pi_mix = min(1.0, ((1.0 - math.exp(-n_mix)) * td + n_mix * per_chunk) / es) if es > 0 else 0.0
    own = p_busy * own_busy + (1.0 - p_busy) * t_p
    room = max(1.0, M - b)
    rho_tok = lam * tau * I / room
    if rho_tok >= 1.0:
        return unstable
    wq = kingman_wait(rho_tok, ca2, input_cv2, tau * max(1.0, I / room))

    def ttft_q(q: float) -> float:
        tail = 1.0 - q / 100.0
        if tail >= p_busy:  # most arrivals find the replica idle: their own prefill alone
            return network_s + own
        # busy: the residual of the step in progress is uniform over it; the step is a decode step (td) or, a
        # time fraction pi of the time, one carrying a prompt chunk (td + per_chunk)
        res_q = _mixture_residual_quantile(td, td + per_chunk, pi_mix, tail / p_busy)
        return network_s + own_busy + res_q + wait_quantile(wq, rho_tok, q)
    ttft = (ttft_q(50), ttft_q(90), ttft_q(99))
    tpot = (tpot_q(50), tpot_q(90), tpot_q(99))
    itl = (itl_q(50), itl_q(90), itl_q(99))
    e2e = tuple(t + (O - 1.0) * p for t, p in zip(ttft, tpot, strict=True))
    util = min(1.0, p_busy)
    del tpot_mean
    return Analytic(rate_rps, True, b, tau, ttft, tpot, itl, (e2e[0], e2e[1], e2e[2]), util)


def _mixture_residual_quantile(short: float, long: float, p_long: float, tail: float) -> float:
    """x with P(R > x) = ``tail`` when R is uniform on [0, long] with probability ``p_long`` and on [0, short]
    otherwise (the residual life of a length-biased step). P(R > x) is piecewise linear in x, so x is solved in
    closed form: below the shorter length both uniforms contribute, above it only the longer one."""
    if tail >= 1.0:
        return 0.0
    p = min(1.0, max(0.0, p_long))
    a, pa, b, pb = (short, 1.0 - p, long, p) if short <= long else (long, p, short, 1.0 - p)
    if a <= 0.0:
        return b * max(0.0, 1.0 - tail / pb) if pb > 0 else 0.0
    slope = pa / a + (pb / b if b > 0 else 0.0)  # P(R > x) = 1 - slope x on [0, a]
    x = (1.0 - tail) / slope if slope > 0 else 0.0
    if x <= a:
        return max(0.0, x)
    return b * max(0.0, 1.0 - tail / pb) if pb > 0 else a  # on [a, b]: P(R > x) = pb (1 - x / b)


# ------------------------------------------------------------------------------------- dynamic batching


def batcher_analytic(cost: BatchCost, engine: DynamicBatching, *, rate_rps: float, arrival_ca2: float = 1.0,
                     replicas: int = 1, router: Router = "round_robin", network_s: float = 0.0) -> Analytic:
    """Closed-form latency percentiles of ``replicas`` dynamically batched replicas at ``rate_rps``.

    Under load a greedy batcher takes what arrived while the previous batch ran, so the batch size is the fixed
    point b = clamp(lambda S(b) / instances, 1, max_batch_size) (Neuts' general bulk-service rule, Neuts 1967).
    An arrival finds the instance busy with probability rho = lambda S(b) / (instances b): it waits for the
    batch in progress (its residual, uniform over S(b)) and then runs in the next one; otherwise it waits for
    companions (up to the queue delay, or until a preferred size fills) and runs alone or nearly. Waits longer
    than one batch are left out, so under heavy load this is a lower bound (safe for pruning); the replica is
    unstable when even full batches cannot keep up."""
    lam = rate_rps / max(1, replicas)
    del arrival_ca2, router
    B = engine.max_batch_size
    c = engine.instances
    d = engine.max_queue_delay_s
    target = min(engine.preferred_batch_sizes) if engine.preferred_batch_sizes else B
    fill = (target - 1) / lam if lam > 0 and target > 1 else (INF if target > 1 else 0.0)
    form = min(d, fill) if d > 0 else 0.0
    b_idle = max(1, min(B, round(1 + lam * form)))
    s_idle = cost.batch_s(b_idle)
    idle = network_s + form + s_idle
    if lam <= 0:
        return Analytic(0.0, True, 1.0, s_idle, (idle,) * 3, (0.0,) * 3, (0.0,) * 3, (idle,) * 3, 0.0)
    if lam * cost.batch_s(B) >= c * B:
        return Analytic(rate_rps, False, float(B), cost.batch_s(B), (INF,) * 3, (0.0,) * 3, (0.0,) * 3,
                        (INF,) * 3, 1.0)
    b = 1.0
    for _ in range(200):
        nb = min(float(B), max(1.0, lam * cost.batch_s(max(1, round(b))) / c))
        if abs(nb - b) < 1e-9:
            break
        b = nb
    s = cost.batch_s(max(1, round(b)))
    rho = min(1.0, lam * s / (c * b))

    def q_of(q: float) -> float:
        tail = 1.0 - q / 100.0
        if tail >= rho:
            return idle
        return network_s + s + s * (1.0 - tail / rho)

    lats = (q_of(50), q_of(90), q_of(99))
    return Analytic(rate_rps, True, b, s, lats, (0.0,) * 3, (0.0,) * 3, lats, rho)
