"""Load headroom: the highest request rate at which a percentile SLO still holds, found by simulation.

A bracketing search over the arrival rate: from a starting rate, double (or halve) until one rate meets every SLO
and the next does not, then bisect geometrically to a relative tolerance. Every probe simulates the same seeded
workload (common random numbers: the same requests, only closer together), so the measured percentiles rise with
the rate and the search is well behaved. Cost: one simulation per probe (about 2 + log2(range / tolerance);
``benchmarks/simulator_speed.py`` measures it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from planner.errors import InputError
from planner.simulator.costs import BatchCost, StepCost
from planner.simulator.engines import Cluster, ContinuousBatching, DynamicBatching
from planner.simulator.metrics import SLO_METRICS, SimResult
from planner.simulator.sim import simulate
from planner.simulator.workload import Workload

METRICS = tuple(SLO_METRICS)


@dataclass(frozen=True, slots=True)
class Headroom:
    """Result of :func:`max_rate_within_slo`."""

    max_rps: float
    """highest probed rate meeting every SLO (0.0 if none did)"""
    first_failing_rps: float | None
    """lowest probed rate that missed one (None if none did up to the search's ceiling)"""
    limiting: str | None
    """the SLO missed first above ``max_rps`` (e.g. "ttft_s p99 0.41 s > 0.30 s")"""
    evaluations: int
    probes: tuple[tuple[float, bool], ...]


def slo_misses(result: SimResult, slos: Mapping[str, float], percentile: float) -> list[str]:
    """Each SLO (``ttft_s``, ``tpot_s``, ``itl_s``, ``latency_s``; seconds) the result misses at ``percentile``,
    as a line naming the measured value; empty when all hold. A run that did not serve every request misses."""
    out = []
    if result.completed < result.requests:
        out.append(f"only {result.completed} of {result.requests} requests completed")
    for name, limit in slos.items():
        if name not in SLO_METRICS:
            raise InputError(f"unknown SLO metric {name!r}", fix=f"use one of {', '.join(METRICS)}")
        dist = result.metric(name)
        if dist.count == 0:
            continue
        v = dist.at(percentile)
        if not (v <= limit):
            out.append(f"{name} p{percentile:g} {v:.4g} s > {limit:.4g} s")
    return out


def highest_passing_rate(passes: Callable[[float], bool], start_rps: float, *, ceiling: float,
                         rel_tol: float = 0.02, max_evaluations: int = 30, growth: float = 2.0
                         ) -> tuple[float | None, float | None]:
    """(highest rate found to pass, lowest rate found to fail; None where none was), for a ``passes`` that is
    monotone in the rate: from ``start_rps``, multiply by ``growth`` (up to ``ceiling``) or halve (down to start /
    2^20) until one rate passes and the next does not, then bisect geometrically until the two are within
    ``rel_tol``; at most ``max_evaluations`` calls of ``passes``. A ``growth`` below 2 suits a start that is
    usually just below the answer (a calibrated proposal)."""
    lo: float | None = None
    hi: float | None = None
    n = 1
    r = min(start_rps, ceiling)
    if passes(r):
        lo = r
        while n < max_evaluations and lo < ceiling:
            r = min(lo * growth, ceiling)
            n += 1
            if passes(r):
                lo = r
            else:
                hi = r
                break
    else:
        hi = r
        floor = start_rps / 2.0**20
        while n < max_evaluations and hi > floor:
            r = hi / 2.0
            n += 1
            if passes(r):
                lo = r
                break
            hi = r
    if lo is not None and hi is not None:
        while n < max_evaluations and hi / lo - 1.0 > rel_tol * (1.0 + 1e-9):  # a bracket one rel_tol wide is done
            mid = math.sqrt(lo * hi)
            n += 1
            if passes(mid):
                lo = mid
            else:
                hi = mid
    return lo, hi


def max_rate_within_slo(run: Callable[[float], SimResult], slos: Mapping[str, float], percentile: float = 99.0,
                        *, start_rps: float, rel_tol: float = 0.02, max_evaluations: int = 30,
                        ceiling_rps: float | None = None) -> Headroom:
    """Highest rate r with every SLO met by ``run(r)`` at ``percentile``, to within ``rel_tol`` (relative).

    ``run`` maps a total request rate to a simulation result (e.g. the same seeded workload at that rate).
    ``ceiling_rps`` stops the upward doubling (default 2^20 x ``start_rps``)."""
    if not (math.isfinite(start_rps) and start_rps > 0):
        raise InputError(f"start rate {start_rps!r} must be a positive finite number", fix="e.g. 1.0")
    if not (0 < percentile <= 100):
        raise InputError(f"percentile {percentile!r} must be in (0, 100]", fix="e.g. 99")
    if not slos:
        raise InputError("no SLO to search against", fix="give at least one of ttft_s, tpot_s, latency_s")
    ceiling = ceiling_rps if ceiling_rps is not None else start_rps * 2.0**20
    probes: list[tuple[float, bool]] = []
    first_miss: dict[float, str] = {}

    def ok(r: float) -> bool:
        misses = slo_misses(run(r), slos, percentile)
        probes.append((r, not misses))
        if misses:
            first_miss[r] = misses[0]
        return not misses

    lo, hi = highest_passing_rate(ok, start_rps, ceiling=ceiling, rel_tol=rel_tol, max_evaluations=max_evaluations)
    return Headroom(max_rps=lo or 0.0, first_failing_rps=hi, limiting=first_miss.get(hi) if hi else None,
                    evaluations=len(probes), probes=tuple(probes))


def headroom(workload: Workload, engine: ContinuousBatching | DynamicBatching, cost: StepCost | BatchCost,
             cluster: Cluster | None, slos: Mapping[str, float], percentile: float = 99.0, *,
             rel_tol: float = 0.02, warmup_fraction: float = 0.1) -> Headroom:
    """:func:`max_rate_within_slo` over ``workload`` (open loop; its rate is the starting point) simulated on
    ``cluster``; the first ``warmup_fraction`` of requests is left out of the percentiles."""
    if not workload.open_loop:
        raise InputError("load headroom is a request rate: give an open-loop workload (a rate)", fix="use --rate")
    warm = int(workload.requests * warmup_fraction)

    def run(rate: float) -> SimResult:
        return simulate(workload.with_rate(rate / workload.peak_to_average), engine, cost, cluster, warmup=warm)

    return max_rate_within_slo(run, slos, percentile, start_rps=workload.effective_rate, rel_tol=rel_tol)
