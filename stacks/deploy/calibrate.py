"""``mlplan calibrate DIR``: measure what the serving runtime adds to each request on this host, and write the
figures into the catalog overlay, so that the next plan is sized with this host's figures instead of the defaults
measured on another machine (``planner.estimator.calibration``).

The plan in ``DIR`` is served here (``mlplan deploy --target local``: Ray Serve or Triton, or the deployment
already running from that folder) and measured with the client of :mod:`stacks.deploy.loadtest`, after the
server's idle background CPU:

- **Overhead at each rate** (``by_rate``): open-loop Poisson runs at rates from 10 req/s up, about 2.5x apart
  (``RATE_LADDER``), to what the client's connections can send (at most ``CLIENT_MAX_RPS``, which is measured too
  where it is well beyond the last rung) or the first rate the server falls behind at (then the rates midway down
  to the last rung it kept up with), each as ``SEGMENTS`` runs, one in each of ``SEGMENTS`` passes up the ladder
  (:func:`ladder_passes`). Each row is the median and p99 latency
  of all the requests of those runs, less the simulated ones of the same plan at that rate with no overhead
  (:func:`stacks.deploy.loadtest.simulate_plan`: the model, the runtime's CPU work and their queueing): what the
  runtime adds at that load (:mod:`planner.estimator.overhead` says why it changes with the load and how the planner
  reads the rows). ``overhead_ms`` / ``overhead_p99_ms`` are the largest of the rows
  (what the planner sizes with).
- **CPU per request** (``cpu_ms_per_request``, and ``cpu_ms`` in each ``by_rate`` row): utime + stime of every
  process of the server's session (from /proc) over each rate's runs, less the idle background, per completed
  request. It falls as the rate rises (idle wake-ups are shared by more requests: 25.8 ms at 10 req/s, 10.9 at 150
  on the Ray demo). The highest rate's figure is the request's own work (it bounds the capacity); what a lower
  rate measured beyond it is work beside the request path that still takes the host's cores
  (``planner.estimator.overhead.beside_path_cores``), which the rows' simulations count as the planner does.
- **Front share** (``front_share``, runtimes with a front process: Ray Serve's proxy, ``FRONT_PROCESS``): that
  process's part of the server's CPU over the highest rate's runs; the simulator serves it as a stage ahead of
  the replica (``planner.simulator.engines.FrontStage``).
- **Speed states** (``cpu_states``): the host's speed moves between runs (each run's CPU per request at one rate
  differs from the next by 5-16% here), and a queue near the capacity reads every slower stretch as a longer tail.
  Each run of the top ``STATE_RATES`` kept rates gives its CPU per request over its rate's pooled figure; those
  ratios, sorted and split into at most ``MAX_STATES`` equal groups, give one factor per group (their means,
  scaled to mean 1). The planner and the rows' simulations run the plan once in each state and pool the requests
  (``RuntimeCost.states``, ``planner.simulator.sim.simulate_states``).
- **Background** (``background_cores``): the server's CPU while idle, which the request path shares the host
  with. The rows' simulations also count the load client's own CPU (this process's, per request), which takes
  the same cores while measuring.

The overlay gets one ``serving_calibrations`` row per (host, runtime): the part's on-prem sku or instance type.
Only that section of the file is rewritten (the rest, comments included, is kept), atomically, and the result is
loaded as a catalog before it replaces the file.
"""

from __future__ import annotations

import math
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from planner.errors import CatalogError, DeployError, InputError
from planner.simulator.metrics import Dist

Say = Callable[[str], None]
RUNTIMES = ("ray", "triton")
"""runtimes ``mlplan deploy --target local`` serves, so the ones this module can measure"""
RATE_LADDER = (10.0, 25.0, 60.0, 150.0, 400.0, 1000.0, 2500.0, 6000.0)
"""rates measured at, about 2.5x apart, up to the top rate. Below 10 req/s the server is idle between requests
whatever the rate (the overhead is the idle figure), and a run long enough for a p99 would take minutes."""
FIRST_RATE_RPS = RATE_LADDER[0]
SECONDS_PER_RATE = 90.0
"""longest the runs at one rate last together (fewer requests at the low rates): at 10 req/s, 900 requests, whose
p99 lies between their ninth and tenth slowest. It was 45 s until 2026-12-02: the 10 req/s row's p99 over 418
requests read 5.56 ms on Triton against 4.27 and 4.53 at 25 and 60 req/s, and the plan's p99 at 5 req/s, which
reads the first row, came out 31% above the 4.23 ms that 3,000 requests measured there (benchmarks/slo_local.py,
run N); a tail read from four or five requests moves by a third from one calibration to the next."""
MIN_SECONDS_PER_RUN = 8.0
"""shortest each run of a rate lasts (more requests at the high rates), as each run of benchmarks/slo_local.py
does. Near the server's capacity a queue that starts empty takes seconds to reach the tail it keeps (an M/G/1
queue relaxes in about S / (1 - sqrt(rho))^2: 1.5 s for a 4 ms stage at rho 0.9), and the simulation each row is
fit against reads that steady tail. Runs of 2.7 s at 191.7 req/s on the Ray demo measured a p99 of 51.5 and 61.6
ms, and runs of 8 s at 193.7 req/s half an hour later 189, 269 and 122 ms; the row's overhead p99 came out 0 (the
simulation above the short runs) and the plan promised that rate within its SLO (2026-12-02). Until then a rate's
runs together lasted at least 8 s. At 800 req/s, 1,500 requests take 1.9 s and one pause of the host sets their
p99: Triton's 800 req/s row read an overhead p99 of 3.25 ms over 1,500 requests, where 6,400 requests at that rate
in benchmarks/slo_local.py measured a p99 of 2.09 ms in all (2026-12-02)."""
DEFAULT_REQUESTS = 1500
"""requests per rate (what benchmarks/slo_local.py measures a rate's p99 over); SECONDS_PER_RATE bounds the low
rates, MIN_SECONDS_PER_RUN the high ones"""
MIN_REQUESTS = 80
CLIENT_MAX_RPS = 800.0
"""The open-loop client of stacks.deploy.loadtest (Python threads) sends at most about this many requests/s on a
2-core machine next to a server (measured with benchmarks/slo_local.py: at 1,000 req/s its own scheduling wait
dominates the tail)."""
IDLE_S = 5.0
TOP_RUNG_RATIO = 1.5
"""the ladder ends at its top rate too where that is at least this far above the last rung (the rungs are 2.5x
apart: a top just above a rung adds a run that says little more)"""
STATE_RATES = 2
"""the top kept rates whose runs give the host's speed states (``cpu_states``): the highest rates' CPU per request
is the request's own work, where the idle background a run subtracts is the smallest part of it"""
MAX_STATES = 3
"""speed states at most: a simulation runs once per state"""
CONCURRENCY = 64
"""connections of the load client: more in flight than that means the server did not keep up"""
SEGMENTS = 3
"""runs per rate (with different seeds), one in each of SEGMENTS passes up the ladder (:func:`ladder_passes`). A
rate's percentiles are those of all their requests together: the median over the runs of each run's p99 (how this
module read them before 2026-12-02) came out below the p99 of one run of 1,500 requests at the same rate in 3 of 4
trials on the Ray demo (25 and 60 req/s: 13.0, 21.6, 17.2, 22.9 ms against 18.5, 16.8, 28.4, 24.4), as a median of
three tail estimates over 200 requests each will: pauses of the host are part of the tail a user sees, and the
pooled p99 keeps them (15.7, 21.6, 27.7, 38.8). The runs of a rate were back to back until late on 2026-12-02;
spread over the calibration's minutes, each rate's tail is this host's over that time, not one minute's: two runs of
1,500 requests at 57 req/s on the Ray demo, a minute apart, measured a p99 of 37.6 and 22.0 ms
(benchmarks/slo_local.py, 2026-12-02), and the row of 60 req/s that predicted them had been measured in one stretch
20 minutes before."""


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids`` from /proc (seconds); processes that are gone count 0."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


FRONT_PROCESS = {"ray": "ray::ProxyActor"}
"""How the runtime's front process (the one each request passes before the replica's) names itself in
/proc/<pid>/cmdline: Ray sets its actors' process titles to ``ray::<class>``, and Serve's HTTP proxy is the
``ProxyActor`` (ray/serve/_private/proxy.py)."""


def front_pids(pids: list[int], runtime: str) -> list[int]:
    """Those of ``pids`` that are ``runtime``'s front process (FRONT_PROCESS); none for a runtime without one."""
    prefix = FRONT_PROCESS.get(runtime)
    if prefix is None:
        return []
    out = []
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(prefix.encode()):
                out.append(pid)
        except OSError:
            continue
    return out


def server_pids(folder: Any) -> list[int]:
    """Every live process of the local servers the deploy state of ``folder`` records (their sessions)."""
    from serving.launch import session_members
    from stacks.deploy.state import DeployState

    state = DeployState(folder.state_dir, folder.plan.id)
    rec = state.target("local") or {}
    out: list[int] = []
    for r in rec.get("resources", []):
        if r.get("sid"):
            out.extend(session_members(int(r["sid"])))
    return out


@dataclass(frozen=True)
class RateRun:
    """One open-loop Poisson run: latency percentiles and the server's CPU per request."""

    rate_rps: float
    completed: int
    errors: int
    max_in_flight: int
    p50_s: float
    p99_s: float
    cpu_s_per_request: float
    front_share: float | None = None
    """the front process's share of ``cpu_s_per_request`` (None: the runtime has none, or it was not found)"""
    client_cpu_s_per_request: float = 0.0
    """CPU the load client (this process) spent per request: it shares the host's cores with the server"""
    run_cpu_s: tuple[float, ...] = ()
    """each run's own CPU per request (``cpu_s_per_request`` is that of all of them together)"""

    @property
    def overloaded(self) -> bool:
        """Requests failed, or the client ran out of connections: a queue was building (an open-loop run's served
        rate is the Poisson count over the run, which at 100 requests is +-10% of the rate by chance alone)."""
        return overloaded(self.errors, self.max_in_flight)


def overloaded(errors: int, max_in_flight: int) -> bool:
    """A run with errors, or with every one of the client's CONCURRENCY connections in flight at once: the server
    fell behind."""
    return errors > 0 or max_in_flight >= CONCURRENCY


def calibration_rates(back_to_back_s: float, top_rps: float | None = None) -> list[float]:
    """The RATE_LADDER up to ``top_rps`` (default: what the client can send, its CONCURRENCY connections each with
    one request of ``back_to_back_s`` at a time, at most CLIENT_MAX_RPS), then that top rate where it is
    TOP_RUNG_RATIO above the last rung; always the first. A server whose stages
    overlap (Ray Serve's proxy and replica) or that batches serves more than one request per ``back_to_back_s``:
    the ladder stops earlier where a rate overloads it (:func:`measure`). It stopped at one client back to back
    before 2026-12-02, which on the Ray demo ended at 60 or at 150 req/s as one request took just above or below
    6.7 ms, and the capacity planned from the two calibrations differed by half."""
    top = top_rps or min(CLIENT_MAX_RPS, CONCURRENCY / max(back_to_back_s, 1e-6))
    rates = [r for i, r in enumerate(RATE_LADDER) if i == 0 or r <= top * 1.0001]
    # and the top itself where it is well beyond the last rung: the CPU per request kept falling above it (Triton
    # on the demo, 2026-12-02: 0.68 ms at 400 req/s, 0.39 at 800), and a rate beyond the rows reads the last one
    return [*rates, round(top, 3)] if top >= TOP_RUNG_RATIO * rates[-1] else rates


@dataclass(frozen=True)
class _Segment:
    """One run of a rate in :func:`ladder_passes`: its latencies and what the server, its front process and the
    client spent while it ran (CPU seconds, idle background included)."""

    samples: tuple[float, ...]
    completed: int
    errors: int
    max_in_flight: int
    wall_s: float
    cpu_s: float
    front_cpu_s: float
    client_cpu_s: float

    @property
    def overloaded(self) -> bool:
        return overloaded(self.errors, self.max_in_flight)


def requests_at(rate: float, requests: int) -> int:
    """Requests measured at ``rate`` in all (over SEGMENTS runs): ``requests``, fewer where they would take over
    SECONDS_PER_RATE, more where a run would take under MIN_SECONDS_PER_RUN, never under MIN_REQUESTS."""
    return max(MIN_REQUESTS, min(requests, int(rate * SECONDS_PER_RATE)),
               SEGMENTS * int(rate * MIN_SECONDS_PER_RUN))


def ladder_passes(rates: list[float], requests: int, run_one: Callable[[float, int, int], _Segment]
                  ) -> list[tuple[float, list[_Segment]]]:
    """Each of ``rates`` measured as SEGMENTS runs of a share of :func:`requests_at` each, one in each of SEGMENTS
    passes up the ladder (``run_one(rate, requests, seed)`` runs one), so that a rate's runs are spread over the
    calibration's minutes. A run that overloads the server (errors, or every connection in flight) ends the ladder
    there: that pass goes no higher, and the later ones stop below it. A rung that overloads at TOP_RUNG_RATIO or
    more above the one below it is followed, in that pass and the later ones, by the rate midway between them
    (geometric mean), and so on while they are that far apart: the top row's CPU per request is the request's own
    work (:func:`fit`), and below the rung where the server falls behind it also holds work beside the path (the Ray
    demo on 2026-12-02: 150 req/s kept up in one pass and fell behind in another in two calibrations, and their top
    row, 60 req/s, read 12.0 ms of CPU per request against 8.7-8.9 at 150 req/s in the calibrations before, so the
    plan's capacity fell from 181 to 128 req/s). A rate added in a later pass has fewer runs. The rates come back in
    order, up to the first that overloaded (whose runs say so), each with its runs."""
    ladder = list(rates)
    parts: list[list[_Segment]] = [[] for _ in ladder]
    top = len(ladder)  # the rates a pass runs
    for k in range(SEGMENTS):
        i = 0
        while i < top:
            seg = run_one(ladder[i], max(1, requests_at(ladder[i], requests) // SEGMENTS), k)
            parts[i].append(seg)
            if not seg.overloaded:
                i += 1
                continue
            top = i
            if i > 0 and ladder[i] >= TOP_RUNG_RATIO * ladder[i - 1]:
                ladder.insert(i, round(math.sqrt(ladder[i - 1] * ladder[i]), 3))  # and run it next
                parts.insert(i, [])
                top = i + 1
                continue
            break
    end = next((i + 1 for i, p in enumerate(parts) if any(s.overloaded for s in p)), len(ladder))
    return list(zip(ladder[:end], parts[:end], strict=True))


def measure(folder: Any, requests: int, say: Say, top_rps: float | None = None,
            idle_s: float = IDLE_S) -> tuple[float, list[RateRun]]:
    """(idle background in cores, one run per calibration rate) against the local server of the deployed
    ``folder``."""
    from stacks.deploy.loadtest import open_loop, target_for

    tgt = target_for(folder)
    pids = server_pids(folder)
    if not pids:
        raise DeployError(f"{folder.root}: the local server's processes are not running",
                          fix=f"run `mlplan status {folder.root}`, then `mlplan deploy {folder.root} --target local`")
    open_loop(tgt, rate_rps=50, duration_s=2, max_requests=100, concurrency=8, warmup=20)  # warm the server
    say(f"measuring the server's idle background ({len(pids)} processes, {idle_s:g} s)")
    front = front_pids(pids, folder.plan.serving.runtime)
    c0, f0, t0 = cpu_seconds(pids), cpu_seconds(front), time.monotonic()
    time.sleep(idle_s)
    idle = max(0.0, (cpu_seconds(pids) - c0) / (time.monotonic() - t0))
    front_idle = max(0.0, (cpu_seconds(front) - f0) / (time.monotonic() - t0))
    b2b = open_loop(tgt, rate_rps=1e5, duration_s=1.0, max_requests=100, concurrency=1)
    rates = calibration_rates(b2b.service.mean, top_rps)
    say(f"one request takes {b2b.service.mean * 1e3:.2f} ms back to back; measuring at "
        f"{', '.join(f'{r:g}' for r in rates)} req/s, or until the server falls behind, {SEGMENTS} times up "
        "that ladder")

    def run_one(rate: float, n: int, seed: int) -> _Segment:
        if rate == rates[0]:
            say(f"  pass {seed + 1} of {SEGMENTS} up the ladder")
        c0, f0, k0 = cpu_seconds(pids), cpu_seconds(front), time.process_time()
        r = open_loop(tgt, rate_rps=rate, duration_s=n / rate, max_requests=n, concurrency=CONCURRENCY, warmup=2,
                      seed=seed, stop_when_saturated=True)
        return _Segment(r.latency.samples, r.completed, r.errors, r.max_in_flight, r.wall_s,
                        cpu_seconds(pids) - c0, cpu_seconds(front) - f0, time.process_time() - k0)

    runs = []
    for rate, parts in ladder_passes(rates, requests, run_one):
        done, wall = sum(p.completed for p in parts), sum(p.wall_s for p in parts)
        work = max(0.0, sum(p.cpu_s for p in parts) - idle * wall)
        cpu = work / max(1, done)
        front_work = max(0.0, sum(p.front_cpu_s for p in parts) - front_idle * wall)
        share = min(1.0, front_work / work) if front and work > 0 else None  # both above their idle background
        client = sum(p.client_cpu_s for p in parts) / max(1, done)
        each = tuple(max(0.0, p.cpu_s - idle * p.wall_s) / max(1, p.completed) for p in parts)
        slowest = max(each)
        pooled = Dist.of([v for p in parts for v in p.samples])
        p50, p99 = pooled.p50, pooled.p99
        runs.append(RateRun(rate, done, sum(p.errors for p in parts), max(p.max_in_flight for p in parts), p50,
                            p99, cpu, share, client, each))
        say(f"  {rate:g} req/s: p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms ({len(parts)} runs), "
            f"server CPU {cpu * 1e3:.2f} ms/request above idle"
            + (f" ({share:.0%} in the front process)" if share is not None else "")
            + f", at most {slowest * 1e3:.2f} in one run; client CPU {client * 1e3:.2f} ms/request, "
              f"{runs[-1].errors} errors ({done} requests)"
            + ("; the server fell behind: not kept" if runs[-1].overloaded else ""))
    return idle, runs


def fit(folder: Any, runs: list[RateRun], idle_cores: float = 0.0) -> dict[str, Any]:
    """The figures of a ``serving_calibrations`` row from the measured runs and the server's idle background
    (``idle_cores``; see the module docstring)."""
    from planner.estimator.calibration import front_share
    from planner.plan import RateOverhead, RuntimeCost
    from stacks.deploy.loadtest import simulate_plan

    kept = [r for r in runs if not r.overloaded]
    if not kept:
        r = runs[0]
        raise DeployError(f"the server could not keep up with {r.rate_rps:g} req/s ({r.errors} errors, "
                          f"{r.max_in_flight} requests in flight)",
                          fix="check the server with `mlplan status DIR`, or calibrate on a quieter machine")
    cpu = kept[-1].cpu_s_per_request
    states = speed_states(kept)
    part = folder.plan.parts[0]
    measured = kept[-1].front_share if front_share(part.runtime) > 0 else None  # a runtime with a front process
    share = front_share(part.runtime, measured)
    per_replica = [round(r.rate_rps / folder.plan.replicas, 6) for r in kept]  # the rows are per replica
    cpus = [round(r.cpu_s_per_request * 1e3, 3) for r in kept]
    # the simulations count the CPU each rate measured beyond the top rate's as work beside the request path
    # (RuntimeCost.busy_cores), as the planner will
    bare = RuntimeCost(overhead_s=0.0, overhead_p99_s=0.0, cpu_s_per_request=cpu,
                       cpu_processes=part.runtime_cost.cpu_processes, front_share=share,
                       background_cores=idle_cores, source="calibration trial", cpu_states=states,
                       by_rate=tuple(RateOverhead(rate_rps=q, p50_s=0.0, p99_s=0.0, cpu_s=c / 1e3)
                                     for q, c in zip(per_replica, cpus, strict=True)))
    rows: list[dict[str, float]] = []
    for r, q, c in zip(kept, per_replica, cpus, strict=True):
        sim = simulate_plan(folder, r.rate_rps, requests=4000, with_rtt=False, serving=bare,
                            client_cpu_s_per_request=r.client_cpu_s_per_request)["latency"]
        p50 = max(0.0, r.p50_s - sim["p50_s"])
        rows.append({"rate_rps": q, "p50_ms": round(p50 * 1e3, 3),
                     "p99_ms": round(max(p50, r.p99_s - sim["p99_s"]) * 1e3, 3), "cpu_ms": c})
    return {"overhead_ms": max(r["p50_ms"] for r in rows), "overhead_p99_ms": max(r["p99_ms"] for r in rows),
            "cpu_ms_per_request": round(cpu * 1e3, 3), "cpu_rate_rps": kept[-1].rate_rps, "by_rate": rows,
            "front_share": None if measured is None else round(measured, 4), "background_cores": round(idle_cores, 4),
            "cpu_states": list(states)}


def speed_states(kept: list[RateRun]) -> tuple[float, ...]:
    """The host's speed states from the runs of the top STATE_RATES ``kept`` rates (see the module docstring):
    each run's CPU per request over its rate's pooled figure, sorted, in at most MAX_STATES equal groups, each
    group's mean scaled so that the states' mean is 1; empty where fewer than two runs measured a CPU figure."""
    ratios = sorted(c / r.cpu_s_per_request for r in kept[-STATE_RATES:] if r.cpu_s_per_request > 0
                    for c in r.run_cpu_s if c > 0)
    if len(ratios) < 2:
        return ()
    k = min(MAX_STATES, len(ratios))
    means = [math.fsum(g) / len(g) for g in (ratios[i * len(ratios) // k:(i + 1) * len(ratios) // k]
                                             for i in range(k))]
    mid = math.fsum(means) / k
    return tuple(round(min(4.0, max(0.25, m / mid)), 3) for m in means)


def overlay_of(folder: Any, overlay: str | Path | None) -> Path:
    """The overlay file to write: ``overlay``, else the spec's ``catalog_overlay`` as the plan found it."""
    if overlay is not None:
        return Path(overlay)
    from stacks.deploy.loadtest import overlay_path

    found = overlay_path(folder)
    if found is None:
        raise InputError(f"{folder.root}: the plan's spec names no catalog overlay to write the figures into",
                         fix="pass --overlay PATH (and set catalog_overlay: PATH in the spec)")
    return found


_SECTION = re.compile(r"^serving_calibrations:.*$")


def write_row(path: Path, row: dict[str, Any]) -> None:
    """Put ``row`` into the ``serving_calibrations`` section of the overlay at ``path`` (replacing the row of the
    same host and runtime), rewriting only that section; checked by loading the result, then written
    atomically."""
    import yaml

    from planner.catalog import Catalog

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    data = yaml.safe_load(text) if text.strip() else {}
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: a catalog overlay must be a mapping of sections")
    rows = [r for r in data.get("serving_calibrations") or []
            if not (isinstance(r, dict) and (r.get("host"), r.get("runtime")) == (row["host"], row["runtime"]))]
    rows.append(row)
    block = yaml.safe_dump({"serving_calibrations": rows}, sort_keys=False, default_flow_style=False)
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _SECTION.match(line)), None)
    if start is None:
        head = [*lines, ""] if lines and lines[-1].strip() else lines
        new = [*head, "# what the serving runtimes add per request on each host, measured by `mlplan calibrate`",
               *block.splitlines()]
    else:
        end = next((i for i in range(start + 1, len(lines))
                    if lines[i] and not lines[i][0].isspace() and not lines[i].startswith(("#", "-"))), len(lines))
        while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
            end -= 1  # comments and blank lines just above the next section belong to it
        new = [*lines[:start], *block.splitlines(), *lines[end:]]
    out = "\n".join(new) + "\n"
    tmp = path.with_name(f".{path.name}.calibrate.tmp")
    tmp.write_text(out, encoding="utf-8")
    try:
        Catalog.load(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def calibrate(path: str | Path, *, overlay: str | Path | None = None, top_rps: float | None = None,
              requests: int = DEFAULT_REQUESTS, say: Say = print) -> dict[str, Any]:
    """``mlplan calibrate``: serve the plan in ``path`` locally (or use its running local deployment), measure,
    write the host's row into the overlay, and return what was written."""
    from stacks.deploy import targets
    from stacks.deploy.state import DeployState
    from stacks.folder import load_folder

    folder = load_folder(path)
    plan = folder.plan
    part = plan.parts[0]
    runtime = plan.serving.runtime
    if runtime not in RUNTIMES or part.target != "local":
        raise InputError(f"{folder.root}: calibrate measures a plan served on this machine (target local, runtime "
                         f"{' or '.join(RUNTIMES)}); this one is {part.target} / {runtime}",
                         fix="plan a spec whose catalog overlay makes this machine the on-prem server "
                             "(see examples/local-demo.yaml)")
    if top_rps is not None and not (FIRST_RATE_RPS <= top_rps <= 10_000):
        raise InputError(f"top rate {top_rps!r} must be a request rate in [{FIRST_RATE_RPS:g}, 10000]",
                         fix="--max-rate 100")
    if not (MIN_REQUESTS <= requests <= 100_000):
        raise InputError(f"requests {requests} must be between {MIN_REQUESTS} and 100,000", fix="--requests 600")
    target = overlay_of(folder, overlay)
    if not target.parent.is_dir():
        raise InputError(f"{target}: its folder does not exist", fix="pass --overlay PATH in an existing folder")
    state = DeployState(folder.state_dir, plan.id)
    ours = "local" not in state.active_targets()
    if ours:
        say(f"serving {plan.id} locally ({runtime}) to measure it")
        targets.deploy(folder.root, "local", opts=targets.Options(smoke_requests=0), say=say)
    try:
        idle, runs = measure(folder, requests, say, top_rps)
    finally:
        if ours:
            targets.destroy(folder.root, "local", say=lambda s: None)
    figures = fit(folder, runs, idle)
    row: dict[str, Any] = {
        "host": part.instance, "runtime": runtime, "overhead_ms": figures["overhead_ms"],
        "overhead_p99_ms": figures["overhead_p99_ms"], "cpu_ms_per_request": figures["cpu_ms_per_request"],
        "by_rate": figures["by_rate"],
        **({"front_share": figures["front_share"]} if figures["front_share"] is not None else {}),
        "background_cores": figures["background_cores"],
        **({"cpu_states": figures["cpu_states"]} if figures["cpu_states"] else {}), "measured": date.today(),
        "source": (f"mlplan calibrate on {socket.gethostname()} ({os.cpu_count()} hardware threads): open-loop "
                   f"Poisson runs at {', '.join(f'{r.rate_rps:g}' for r in runs)} req/s, CPU at "
                   f"{figures['cpu_rate_rps']:g} req/s, idle background {idle:.3f} cores"),
    }
    write_row(target, row)
    say(f"wrote {part.instance} / {runtime} into {target}: overhead {row['overhead_ms']:g} ms median, "
        f"{row['overhead_p99_ms']:g} ms p99 at most ({row['by_rate'][-1]['p50_ms']:g} ms median at "
        f"{row['by_rate'][-1]['rate_rps']:g} req/s); {row['cpu_ms_per_request']:g} ms of CPU per request"
        + (f" (host speed states x{', x'.join(f'{k:g}' for k in row['cpu_states'])})" if row.get("cpu_states") else "")
        + "; plan the spec again to size with them")
    return {"overlay": str(target), "row": {**row, "measured": row["measured"].isoformat()},
            "idle_cores": round(idle, 4),
            "runs": [{"rate_rps": r.rate_rps, "completed": r.completed, "errors": r.errors, "p50_s": r.p50_s,
                      "p99_s": r.p99_s, "cpu_s_per_request": r.cpu_s_per_request} for r in runs]}
