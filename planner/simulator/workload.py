"""What a simulation serves: when requests arrive and how long their prompts and answers are.

- Open loop (``rate_rps``): arrivals do not wait for responses. Inter-arrival times are exponential (a Poisson
  process) by default; ``arrival_cv`` > 1 draws them from a gamma distribution with that coefficient of
  variation (shape 1/cv^2): the burstiness model of vLLM's ``vllm bench serve --burstiness B`` (gamma shape B,
  so cv = 1/sqrt(B)) and of BurstGPT (Wang et al. 2024), which fits gamma inter-arrivals to real LLM traffic.
  ``peak_to_average`` multiplies the mean rate: the planner sizes for the peak.
- Closed loop (``concurrency``): that many clients each send their next request when the previous one returns
  (plus ``think_time_s``), as ``vllm bench serve --max-concurrency`` with an unbounded request rate does.

Token lengths (:class:`Lengths`) are fixed, uniform around a mean (``spread`` is the relative half-width:
vLLM's ``--random-range-ratio`` samples uniformly in [n(1 - r), n(1 + r)]), or a small histogram.

Randomness: arrivals and lengths come from separate ``random.Random`` streams derived from ``seed``, and arrival
times are unit-rate draws divided by the rate, so two simulations with the same seed at different rates see the
same requests in the same order, only closer together (common random numbers: the load-headroom search relies on
it to be monotone).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from planner.errors import InputError

if TYPE_CHECKING:
    from planner.specs import Spec

MAX_REQUESTS = 5_000_000


@dataclass(frozen=True, slots=True)
class Lengths:
    """A token-length distribution: ``fixed(n)``, ``uniform(mean, spread)`` or ``from_histogram(pairs)``."""

    mean: float
    spread: float = 0.0
    """relative half-width of a uniform distribution around ``mean`` (0: fixed)"""
    histogram: tuple[tuple[int, float], ...] | None = None
    """(length, weight) pairs; when given, ``mean`` is their weighted mean"""

    def __post_init__(self) -> None:
        if self.histogram is not None:
            if not self.histogram or any(n < 1 or w < 0 or not math.isfinite(w) for n, w in self.histogram) \
                    or sum(w for _, w in self.histogram) <= 0:
                raise InputError(f"token-length histogram {list(self.histogram)[:6]} needs lengths >= 1 and "
                                 "non-negative weights with a positive sum",
                                 fix="give pairs like [[128, 0.5], [1024, 0.5]]")
            return
        if not (math.isfinite(self.mean) and self.mean >= 1):
            raise InputError(f"token length mean {self.mean!r} must be a finite number >= 1", fix="e.g. 512")
        if not (0.0 <= self.spread < 1.0):
            raise InputError(f"token length spread {self.spread!r} must be in [0, 1)",
                             fix="0 for fixed lengths, e.g. 0.5 for uniform in [0.5 n, 1.5 n]")

    @staticmethod
    def fixed(n: int) -> Lengths:
        return Lengths(mean=float(n))

    @staticmethod
    def uniform(mean: float, spread: float) -> Lengths:
        return Lengths(mean=float(mean), spread=float(spread))

    @staticmethod
    def from_histogram(pairs: list[tuple[int, float]] | tuple[tuple[int, float], ...]) -> Lengths:
        pairs_t = tuple((int(n), float(w)) for n, w in pairs)
        total = sum(w for _, w in pairs_t) or 1.0
        mean = sum(n * w for n, w in pairs_t) / total
        return Lengths(mean=max(1.0, mean), histogram=pairs_t)

    @property
    def low(self) -> int:
        if self.histogram is not None:
            return min(n for n, w in self.histogram if w > 0)
        return max(1, round(self.mean * (1.0 - self.spread)))

    @property
    def high(self) -> int:
        if self.histogram is not None:
            return max(n for n, w in self.histogram if w > 0)
        return max(1, round(self.mean * (1.0 + self.spread)))

    @property
    def expected(self) -> float:
        """Exact mean of what :meth:`sample` draws."""
        if self.histogram is not None:
            total = sum(w for _, w in self.histogram)
            return sum(n * w for n, w in self.histogram) / total
        return (self.low + self.high) / 2.0

    @property
    def second_moment(self) -> float:
        """E[n^2] of what :meth:`sample` draws (the queueing approximations need the variance)."""
        if self.histogram is not None:
            total = sum(w for _, w in self.histogram)
            return sum(n * n * w for n, w in self.histogram) / total
        lo, hi = self.low, self.high
        m = hi - lo + 1  # discrete uniform on lo..hi
        return (lo + hi) ** 2 / 4.0 + (m * m - 1) / 12.0

    def draw(self, rng: random.Random, count: int) -> list[int]:
        """``count`` lengths from ``rng``."""
        if self.histogram is not None:
            values = [n for n, _ in self.histogram]
            weights = [w for _, w in self.histogram]
            return rng.choices(values, weights=weights, k=count)
        lo, hi = self.low, self.high
        if lo == hi:
            return [lo] * count
        m = hi - lo + 1
        r = rng.random
        return [lo + int(r() * m) for _ in range(count)]

    def describe(self) -> str:
        if self.histogram is not None:
            return "histogram " + ", ".join(f"{n}:{w:g}" for n, w in self.histogram)
        if self.low == self.high:
            return str(self.low)
        return f"{self.low}-{self.high} (uniform, mean {self.expected:g})"


@dataclass(frozen=True, slots=True)
class Workload:
    """Arrivals and request shapes. Exactly one of ``rate_rps`` (open loop) and ``concurrency`` (closed loop)."""

    input_tokens: Lengths = Lengths(mean=512.0)
    output_tokens: Lengths = Lengths(mean=256.0)
    rate_rps: float | None = None
    """open loop: mean arrival rate before ``peak_to_average``"""
    concurrency: int | None = None
    """closed loop: clients, each with one request in flight"""
    requests: int = 2000
    arrival_cv: float = 1.0
    """coefficient of variation of inter-arrival times: 1 Poisson, > 1 bursty (gamma)"""
    peak_to_average: float = 1.0
    think_time_s: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.rate_rps is None) == (self.concurrency is None):
            raise InputError("a workload needs exactly one of a request rate (open loop) and a concurrency "
                             f"(closed loop); got rate={self.rate_rps!r}, concurrency={self.concurrency!r}",
                             fix="pass --rate R or --concurrency N")
        if self.rate_rps is not None and not (math.isfinite(self.rate_rps) and self.rate_rps > 0):
            raise InputError(f"request rate {self.rate_rps!r} must be a positive finite number", fix="e.g. 10")
        if self.concurrency is not None and not (1 <= self.concurrency <= 1_000_000):
            raise InputError(f"concurrency {self.concurrency!r} must be between 1 and 1,000,000", fix="e.g. 32")
        if not (1 <= self.requests <= MAX_REQUESTS):
            raise InputError(f"requests {self.requests!r} must be between 1 and {MAX_REQUESTS:,}", fix="e.g. 2000")
        if not (math.isfinite(self.arrival_cv) and 0.05 <= self.arrival_cv <= 20):
            raise InputError(f"arrival coefficient of variation {self.arrival_cv!r} must be in [0.05, 20]",
                             fix="1 for Poisson arrivals, 2-4 for bursty traffic")
        if not (math.isfinite(self.peak_to_average) and 1.0 <= self.peak_to_average <= 100.0):
            raise InputError(f"peak_to_average {self.peak_to_average!r} must be in [1, 100]", fix="e.g. 2")
        if not (math.isfinite(self.think_time_s) and self.think_time_s >= 0):
            raise InputError(f"think time {self.think_time_s!r} must be >= 0 seconds", fix="e.g. 0")

    @property
    def open_loop(self) -> bool:
        return self.rate_rps is not None

    @property
    def effective_rate(self) -> float:
        """Arrival rate simulated (open loop): the mean rate times the peak factor."""
        return (self.rate_rps or 0.0) * self.peak_to_average

    def with_rate(self, rate_rps: float) -> Workload:
        return Workload(input_tokens=self.input_tokens, output_tokens=self.output_tokens, rate_rps=rate_rps,
                        requests=self.requests, arrival_cv=self.arrival_cv, peak_to_average=self.peak_to_average,
                        seed=self.seed)

    # ------------------------------------------------------------------------------------------- sampling
    def lengths(self) -> tuple[list[int], list[int]]:
        """(prompt lengths, output lengths) of every request, from the seed's length stream."""
        rng = random.Random(self.seed * 1_000_003 + 17)
        return self.input_tokens.draw(rng, self.requests), self.output_tokens.draw(rng, self.requests)

    def unit_gaps(self) -> list[float]:
        """Inter-arrival gaps of a unit-rate process (mean 1) with this CV, from the seed's arrival stream."""
        rng = random.Random(self.seed * 1_000_003 + 5)
        n = self.requests
        cv = self.arrival_cv
        if abs(cv - 1.0) < 1e-12:
            ex = rng.expovariate
            return [ex(1.0) for _ in range(n)]
        shape = 1.0 / (cv * cv)
        scale = cv * cv  # mean shape x scale = 1
        gv = rng.gammavariate
        return [gv(shape, scale) for _ in range(n)]

    def arrival_times(self) -> list[float]:
        """Open loop: absolute arrival times, the first at its first gap (not at 0)."""
        rate = self.effective_rate
        t = 0.0
        out = []
        for g in self.unit_gaps():
            t += g
            out.append(t / rate)
        return out


def spec_lengths(spec: Spec, image_tokens: int = 0) -> tuple[Lengths, Lengths]:
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
