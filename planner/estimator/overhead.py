"""The serving runtime's own per-request time as a distribution, and how it changes with the load.

A server that was idle wakes up for a request: its threads were asleep, the CPU may be in a deep idle state at a
low clock, its caches cold. Li et al., "Tales of the Tail: Hardware, OS, and Application-level Sources of Tail
Latency" (SoCC 2014, Sec. 4) measure this on a memcached server: power saving and thread wake-ups add latency at
low load that goes away when the server is busy. Measured here with ``mlplan calibrate`` (Triton 2.51 and Ray
Serve 2.60 on a 2-thread VM, 2026-12-01): a request sent back to back on one connection pays 0.4 ms (Triton) and
5 ms (Ray), one after 20-250 ms of idle 1.8-2.0 ms and 6.5-11 ms; under an open-loop load from a pool of
connections the median stays near the idle figure up to 80 req/s (Triton) and falls to half of it at 400-800
req/s. Which connection and which thread were idle matters as well as the server, so the idle time alone does
not predict it; the rate does, for a given client. So a figure measured at one load does not hold at another,
and the calibration measures it at several rates.

The model: at a Poisson rate per replica, the runtime's time is the distribution measured at that rate (median
and p99, interpolated linearly in log rate between the measured rates, the nearest one beyond them), a point mass
at the median for the lower half and an exponential tail through the median and the p99 above it
(:func:`tail_quantile`).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence

LN50 = math.log(50.0)


def tail_quantile(p50: float, p99: float, percentile: float) -> float:
    """The ``percentile`` (0-100) of a distribution with median ``p50`` and 99th percentile ``p99``: the median
    below 50, above it the exponential tail o(q) = p50 + (p99 - p50) ln(0.5 / (1 - q)) / ln 50."""
    if percentile <= 50.0 or p99 <= p50:
        return p50
    tail = 1.0 - min(percentile, 99.999) / 100.0
    return p50 + (p99 - p50) * math.log(0.5 / tail) / LN50


def tail_mean(p50: float, p99: float) -> float:
    """The mean of :func:`tail_quantile`'s distribution: half of it at the median, half an exponential tail of
    scale (p99 - p50) / ln 50 above it."""
    return p50 + 0.5 * max(0.0, p99 - p50) / LN50


def at_rate(rows: Sequence[tuple[float, float, float]], rate_rps: float) -> tuple[float, float]:
    """(median, p99) at ``rate_rps`` from rows (rate, median, p99) of increasing rate: linear in log rate between
    the two rows around it, the nearest row's figures outside them."""
    rates = [r for r, _, _ in rows]
    i = bisect.bisect_left(rates, rate_rps)
    if i == 0:
        return rows[0][1], rows[0][2]
    if i == len(rows):
        return rows[-1][1], rows[-1][2]
    (r0, a0, b0), (r1, a1, b1) = rows[i - 1], rows[i]
    t = math.log(rate_rps / r0) / math.log(r1 / r0)
    return a0 + t * (a1 - a0), b0 + t * (b1 - b0)


def beside_path_cores(rows: Sequence[tuple[float, float]], path_cpu_s: float, rate_rps: float) -> float:
    """Cores the runtime's processes keep busy beside the request path at a Poisson ``rate_rps`` per replica, from
    ``rows`` (rate, CPU seconds per request measured at that rate, above the idle background; increasing rate) and
    ``path_cpu_s``, the CPU a request itself takes on the path (the least any rate measured: the work no load
    spreads).

    A server's CPU per request falls as its load rises: a wake-up, a timer, a poll of an idle connection is shared
    by the requests that arrive together (Li et al., SoCC 2014, Sec. 4: the same wake-ups that add latency at low
    load). Measured on the Ray demo (Ray Serve 2.60 on a 2-thread VM, 2026-12-02, ``mlplan calibrate``'s runs):
    25.8, 18.8, 15.8, 13.6 and 10.9 ms per request at 10, 30, 60, 100 and 150 req/s, while one request at 10 req/s
    took 14 ms end to end; so most of the low-rate figure is work no request waits for. That work still takes the
    host's cores: rate x (cpu(rate) - ``path_cpu_s``), with cpu(rate) linear in log rate between the measured
    rates (:func:`at_rate`), the first one's below them (the work falls to nothing with the rate), and above the
    last rate what it measured (nothing was measured there to say it grows). 0 without rows."""
    if not rows or rate_rps <= 0:
        return 0.0
    rate = min(rate_rps, rows[-1][0])
    return rate * max(0.0, cpu_at_rate(rows, rate) - path_cpu_s)


def cpu_at_rate(rows: Sequence[tuple[float, float]], rate_rps: float) -> float:
    """The CPU per request at ``rate_rps`` from ``rows`` (rate, CPU seconds per request; increasing rate): linear
    in log rate between them (:func:`at_rate`), the nearest row's beyond them."""
    cpu, _ = at_rate([(r, c, c) for r, c in rows], rate_rps)
    return cpu


def peak_beside_path_cores(rows: Sequence[tuple[float, float]], path_cpu_s: float) -> float:
    """The most :func:`beside_path_cores` comes to at any rate: at a measured rate, or where r x (cpu(r) - path)
    peaks between two of them (with t the position in log rate, L = ln(r1 / r0), a = cpu0 - path and
    b = cpu1 - cpu0 < 0, its derivative vanishes at t = -a / b - 1 / L)."""
    best = max((r * max(0.0, c - path_cpu_s) for r, c in rows), default=0.0)
    for (r0, c0), (r1, c1) in itertools.pairwise(rows):
        a, b, span = c0 - path_cpu_s, c1 - c0, math.log(r1 / r0)
        if b < 0 and a > 0:
            t = min(1.0, max(0.0, -a / b - 1.0 / span))
            best = max(best, r0 * math.exp(t * span) * max(0.0, a + t * b))
    return best
