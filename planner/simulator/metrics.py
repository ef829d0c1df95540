"""Percentiles and the result of a simulation.

Percentiles interpolate linearly between order statistics (NumPy's default ``linear`` method), as vLLM's
``vllm bench serve`` and NVIDIA's genai-perf report theirs, so simulated and measured figures compare like for
like. Definitions follow ``vllm bench serve``:

- TTFT: arrival to the first output token.
- TPOT: per request, (end-to-end - TTFT) / (output tokens - 1); requests with one output token have none.
- ITL: every gap between two consecutive tokens of a request, pooled over all requests.
- end-to-end: arrival to the last token.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any


def percentile(sorted_values: list[float] | tuple[float, ...], q: float) -> float:
    """Linear-interpolation percentile (q in [0, 100]) of an ascending sequence; NaN when empty."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if n == 1:
        return float(sorted_values[0])
    pos = (n - 1) * min(100.0, max(0.0, q)) / 100.0
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


def weighted_percentile(values: list[float], weights: list[float], q: float) -> float:
    """Percentile of a sample given as (value, weight) pairs, ``values`` ascending: the smallest value whose
    cumulative weight reaches q% of the total (each pair stands for ``weight`` equal samples)."""
    if not values:
        return math.nan
    total = 0.0
    cum = []
    for w in weights:
        total += w
        cum.append(total)
    target = total * min(100.0, max(0.0, q)) / 100.0
    i = bisect_left(cum, target)
    return float(values[min(i, len(values) - 1)])


class LogHistogram:
    """Weighted samples in log-spaced bins of relative width 1/``BINS_PER_E`` (0.05%): the simulator adds one
    (value, weight) per step or run, and percentiles are read back within 0.05%. Mean and max are exact."""

    BINS_PER_E = 2000.0

    __slots__ = ("bins", "max", "total", "weighted_sum")

    def __init__(self) -> None:
        self.bins: dict[int, float] = {}
        self.total = 0.0
        self.weighted_sum = 0.0
        self.max = 0.0

    def add(self, value: float, weight: float) -> None:
        if value <= 0.0 or weight <= 0:
            return
        k = int(math.log(value) * self.BINS_PER_E)
        b = self.bins
        b[k] = b.get(k, 0.0) + weight
        self.total += weight
        self.weighted_sum += value * weight
        if value > self.max:
            self.max = value

    @classmethod
    def value(cls, k: int) -> float:
        """Representative value of bin ``k`` (its geometric middle)."""
        return math.exp((k + 0.5) / cls.BINS_PER_E)

    def dist(self) -> Dist:
        if not self.bins:
            return Dist.of([])
        return Dist.of_histogram(self.bins, self.weighted_sum / self.total, self.max)


@dataclass(frozen=True, slots=True)
class Dist:
    """Summary of one latency distribution (seconds)."""

    p50: float
    p90: float
    p99: float
    mean: float
    max: float
    count: int
    _sorted: tuple[float, ...] = field(default=(), repr=False, compare=False)
    _weights: tuple[float, ...] | None = field(default=None, repr=False, compare=False)

    @property
    def samples(self) -> tuple[float, ...]:
        """The sorted values the percentiles were taken over (empty for a histogram's summary)."""
        return self._sorted if self._weights is None else ()

    @staticmethod
    def of(values: list[float]) -> Dist:
        s = sorted(values)
        if not s:
            nan = math.nan
            return Dist(nan, nan, nan, nan, nan, 0)
        return Dist(p50=percentile(s, 50), p90=percentile(s, 90), p99=percentile(s, 99),
                    mean=math.fsum(s) / len(s), max=s[-1], count=len(s), _sorted=tuple(s))

    @staticmethod
    def of_histogram(hist: dict[int, float], mean: float, maximum: float) -> Dist:
        """From a log-binned histogram {bin: weight} (:class:`LogHistogram`) with its exact mean and max."""
        if not hist:
            nan = math.nan
            return Dist(nan, nan, nan, nan, nan, 0)
        keys = sorted(hist)
        vals = [min(maximum, LogHistogram.value(k)) for k in keys]
        wts = [hist[k] for k in keys]
        cum = list(accumulate(wts))
        tw = cum[-1]

        def at(q: float) -> float:
            return float(vals[min(bisect_left(cum, tw * q / 100.0), len(vals) - 1)])

        return Dist(p50=at(50), p90=at(90), p99=at(99), mean=mean, max=maximum, count=round(tw),
                    _sorted=tuple(vals), _weights=tuple(wts))

    @staticmethod
    def pooled(dists: list[Dist]) -> Dist:
        """The distribution of all of ``dists``' samples together (each sample counts once, a histogram's by its
        weight)."""
        if all(d._weights is None for d in dists):
            return Dist.of([v for d in dists for v in d._sorted])
        pairs = sorted((v, w) for d in dists
                       for v, w in zip(d._sorted, d._weights if d._weights is not None else [1.0] * len(d._sorted),
                                       strict=True))
        if not pairs:
            return Dist.of([])
        vals, wts = [v for v, _ in pairs], [w for _, w in pairs]
        total = math.fsum(d.mean * d.count for d in dists if d.count)
        count = sum(d.count for d in dists)
        return Dist(p50=weighted_percentile(vals, wts, 50), p90=weighted_percentile(vals, wts, 90),
                    p99=weighted_percentile(vals, wts, 99), mean=total / max(1, count),
                    max=max(d.max for d in dists if d.count), count=count, _sorted=tuple(vals), _weights=tuple(wts))

    def at(self, q: float) -> float:
        """Any percentile (q in [0, 100])."""
        if self._weights is not None:
            return weighted_percentile(list(self._sorted), list(self._weights), q)
        if not self._sorted and self.count == 0:
            return math.nan
        return percentile(self._sorted, q)

    def as_dict(self) -> dict[str, float | int]:
        return {"p50_s": self.p50, "p90_s": self.p90, "p99_s": self.p99, "mean_s": self.mean, "max_s": self.max,
                "count": self.count}


#: the figure each SLO of a spec bounds
SLO_METRICS: dict[str, str] = {"ttft_s": "ttft", "tpot_s": "tpot", "itl_s": "itl", "latency_s": "e2e"}

@dataclass(frozen=True, slots=True)
class SimResult:
    """What one simulation measured. Latencies include ``network_s`` (the cluster's fixed per-request time)."""

    requests: int
    completed: int
    measured: int
    """requests in the latency distributions (after the warm-up ones)"""
    duration_s: float
    """first arrival to last completion"""
    arrival_rate_rps: float
    throughput_rps: float
    output_tokens_per_s: float
    ttft: Dist
    tpot: Dist
    itl: Dist
    e2e: Dist
    queue_wait: Dist
    mean_queue_length: float
    max_queue_length: int
    mean_in_system: float
    """time-average number of requests in the system (Little's L)"""
    mean_latency_s: float
    """mean time in system over every request (Little's W), excluding ``network_s``"""
    preemptions: int
    mean_batch: float
    """time-average decode batch (LLM) or mean batch size (dynamic batcher)"""
    batches: int
    utilization: float
    """busy time / (duration x replicas)"""
    replicas: int
    llm: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str) -> Dist:
        """``ttft``, ``tpot``, ``itl``, ``e2e`` (alias ``latency``) or ``queue_wait``; an SLO's name (``ttft_s``,
        ``tpot_s``, ``itl_s``, ``latency_s``) gives the figure it bounds."""
        key = SLO_METRICS.get(name) or {"latency": "e2e"}.get(name, name)
        d = getattr(self, key, None)
        if not isinstance(d, Dist):
            raise KeyError(name)
        return d

    @staticmethod
    def pooled(results: list[SimResult]) -> SimResult:
        """Runs of one workload on one cluster in different states of its host (each run one state, equally long
        in requests) as one result: every latency pooled over the runs' requests (:meth:`Dist.pooled`); rates,
        utilization, batch and queue figures the runs' means, weighted by their requests; the throughput the
        least of the runs' (a state that cannot keep up with the arrivals is a queue that grows for as long as the
        host stays in it, which :func:`planner.optimizer.slo` reads as an overload)."""
        if len(results) == 1:
            return results[0]
        n = max(1, sum(r.measured for r in results))

        def mean(f: str) -> float:
            return math.fsum(getattr(r, f) * r.measured for r in results) / n

        first = results[0]
        return SimResult(
            requests=sum(r.requests for r in results), completed=sum(r.completed for r in results), measured=n,
            duration_s=max(r.duration_s for r in results), arrival_rate_rps=mean("arrival_rate_rps"),
            throughput_rps=min(r.throughput_rps for r in results), output_tokens_per_s=mean("output_tokens_per_s"),
            ttft=Dist.pooled([r.ttft for r in results]), tpot=Dist.pooled([r.tpot for r in results]),
            itl=Dist.pooled([r.itl for r in results]), e2e=Dist.pooled([r.e2e for r in results]),
            queue_wait=Dist.pooled([r.queue_wait for r in results]), mean_queue_length=mean("mean_queue_length"),
            max_queue_length=max(r.max_queue_length for r in results), mean_in_system=mean("mean_in_system"),
            mean_latency_s=mean("mean_latency_s"), preemptions=sum(r.preemptions for r in results),
            mean_batch=mean("mean_batch"), batches=sum(r.batches for r in results), utilization=mean("utilization"),
            replicas=first.replicas, llm=first.llm, extra={"states": len(results)})

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.requests, "completed": self.completed, "measured": self.measured,
            "duration_s": self.duration_s, "arrival_rate_rps": self.arrival_rate_rps,
            "throughput_rps": self.throughput_rps, "output_tokens_per_s": self.output_tokens_per_s,
            "e2e": self.e2e.as_dict(), "queue_wait": self.queue_wait.as_dict(),
            "mean_queue_length": self.mean_queue_length, "max_queue_length": self.max_queue_length,
            "mean_in_system": self.mean_in_system, "preemptions": self.preemptions, "mean_batch": self.mean_batch,
            "batches": self.batches, "utilization": self.utilization, "replicas": self.replicas,
        }
        if self.llm:
            out |= {"ttft": self.ttft.as_dict(), "tpot": self.tpot.as_dict(), "itl": self.itl.as_dict()}
        return out
