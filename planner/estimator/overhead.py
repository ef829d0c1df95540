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
