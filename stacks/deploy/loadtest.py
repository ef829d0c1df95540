"""Open-loop load against a deployed plan: Poisson arrivals at a fixed rate, measured latency percentiles next to
the plan's prediction.

Open loop: request i is sent at its scheduled time t_i whether or not earlier ones have returned (a closed-loop
client that waits for responses slows down with the server and hides queueing: Schroeder, Wierman &
Harchol-Balter, NSDI 2006, "Open versus closed: a cautionary tale"). The client is bounded: at most
``concurrency`` requests in flight (one persistent HTTP connection per worker thread) and at most
``max_requests`` in all. A request that finds every worker busy waits at the client; its latency is still
counted from its scheduled time (no coordinated omission: the wait is the server's doing), and the client wait is
reported on its own.

Request shapes (the plan's):

- LLM plans: ``POST {endpoint}/v1/completions`` (OpenAI-compatible: vLLM, Ray Serve LLM) with a prompt of
  ``input_tokens`` words, ``max_tokens`` = ``output_tokens``, ``ignore_eos`` (vLLM's extension, so every answer
  has that length) and ``stream`` on: TTFT is the first streamed token, TPOT (last - first) / (tokens - 1).
- Ray Serve: ``POST {endpoint}`` ``{"inputs": [[...]]}`` (one example of the plan's first input).
- Triton: the KServe v2 HTTP protocol, ``POST {endpoint}/v2/models/<model>/infer``.

The plan's prediction at the tested rate is simulated (``planner.simulator``) with the plan's serving settings,
when the plan folder's spec and catalog resolve; the plan's own single figures are shown too.
"""

from __future__ import annotations

import contextlib
import gc
import http.client
import json
import math
import queue
import random
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.errors import DeployError, InputError, MlplanError
from planner.plan import RuntimeCost
from planner.simulator.metrics import Dist

MAX_REQUESTS = 1_000_000


@dataclass(frozen=True)
class Target:
    """What to send: one request body to one URL, and how to read the answer."""

    kind: str
    """llm, ray or triton"""
    url: str
    body: bytes
    check: Callable[[Any], None] | None = None
    stream: bool = False


@dataclass
class _Sample:
    scheduled: float
    start: float = 0.0
    first: float = 0.0
    end: float = 0.0
    tokens: int = 0
    error: str | None = None


@dataclass(frozen=True)
class LoadResult:
    """Measured figures of one open-loop run (seconds)."""

    rate_rps: float
    duration_s: float
    planned: int
    sent: int
    completed: int
    errors: int
    wall_s: float
    latency: Dist
    """scheduled send to the last byte (or last token)"""
    service: Dist
    """actual send to the last byte: ``latency`` less the client-side wait"""
    client_wait: Dist
    ttft: Dist | None = None
    tpot: Dist | None = None
    first_error: str | None = None
    max_in_flight: int = 0
    stopped_early: bool = False
    send_offsets: tuple[float, ...] = field(default=(), repr=False)
    """actual send times relative to the start (for checking that the load is open loop)"""

    @property
    def throughput_rps(self) -> float:
        return self.completed / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rate_rps": self.rate_rps, "duration_s": self.duration_s, "planned": self.planned, "sent": self.sent,
            "completed": self.completed, "errors": self.errors, "first_error": self.first_error,
            "wall_s": round(self.wall_s, 3), "throughput_rps": round(self.throughput_rps, 3),
            "max_in_flight": self.max_in_flight, "stopped_early": self.stopped_early,
            "latency": _dist(self.latency), "service": _dist(self.service), "client_wait": _dist(self.client_wait),
        }
        if self.ttft is not None and self.tpot is not None:
            out |= {"ttft": _dist(self.ttft), "tpot": _dist(self.tpot)}
        return out


def _dist(d: Dist) -> dict[str, float | int | None]:
    def r(x: float) -> float | None:
        return round(x, 6) if math.isfinite(x) else None

    return {"p50_s": r(d.p50), "p90_s": r(d.p90), "p99_s": r(d.p99), "mean_s": r(d.mean), "count": d.count}


# --------------------------------------------------------------------------------------------- the client


def poisson_schedule(rate_rps: float, duration_s: float, max_requests: int, seed: int = 0) -> list[float]:
    """Send offsets (seconds from the start) of a Poisson process of ``rate_rps`` over ``duration_s``, at most
    ``max_requests`` of them."""
    rng = random.Random(seed)
    out: list[float] = []
    t = 0.0
    while len(out) < max_requests:
        t += rng.expovariate(rate_rps)
        if t > duration_s:
            break
        out.append(t)
    return out


class _Conn:
    """One persistent HTTP/1.1 connection, reopened after an error."""

    def __init__(self, url: str, timeout_s: float) -> None:
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise InputError(f"endpoint {url!r} is not an http(s) URL", fix="pass --endpoint http://HOST:PORT/")
        self.https = u.scheme == "https"
        self.host = u.hostname
        self.port = u.port
        self.path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self.timeout_s = timeout_s
        self.conn: http.client.HTTPConnection | None = None

    def _open(self) -> http.client.HTTPConnection:
        if self.conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = cls(self.host, self.port, timeout=self.timeout_s)
            conn.connect()
            if conn.sock is not None:  # no Nagle delay on small requests (as HTTP benchmark clients do)
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conn = conn
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.close()
            self.conn = None

    def send(self, target: Target, s: _Sample) -> None:
        s.start = time.perf_counter()
        try:
            conn = self._open()
            conn.request("POST", self.path, body=target.body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            if resp.status >= 400:
                text = resp.read()[:200]
                raise ValueError(f"HTTP {resp.status}: {text!r}")
            if target.stream:
                self._read_stream(resp, s)
            else:
                data = resp.read()
                s.end = s.first = time.perf_counter()
                if target.check is not None:
                    target.check(json.loads(data))
            if resp.getheader("connection", "").lower() == "close":
                self.close()
        except (OSError, ValueError, KeyError, TypeError, AttributeError, http.client.HTTPException) as e:
            self.close()
            s.error = f"{type(e).__name__}: {e}"
            s.end = time.perf_counter()

    @staticmethod
    def _read_stream(resp: http.client.HTTPResponse, s: _Sample) -> None:
        """Server-sent events of an OpenAI-compatible streaming completion: one ``data:`` line per chunk."""
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                break
            chunk = json.loads(payload)
            choices = chunk.get("choices") or [{}]
            if choices[0].get("text") or choices[0].get("delta", {}).get("content"):
                now = time.perf_counter()
                if s.tokens == 0:
                    s.first = now
                s.tokens += 1
        s.end = time.perf_counter()
        if s.tokens == 0:
            raise ValueError("the stream carried no token")


def quiet_gc() -> None:
    """Move every object this process holds to the collector's permanent generation (``gc.freeze``: a splice of its
    lists, no scan), so that a full collection while the load runs scans only what the run allocates: the client
    stops every thread for it (the GIL), and each request scheduled meanwhile is late by the pause. Measured
    2026-12-02: a full collection took 22.8 ms in the middle of an 800 req/s run of a fresh process, and in
    benchmarks/slo_local.py (which holds every earlier run's results) the second 800 req/s run against Triton read
    a p99 of 85 and 87 ms in two benchmarks, against 1.8-4.0 ms in the first. No ``gc.collect`` first: in a process
    that holds much (the test suite's), one took most of a second, which the callers would count as the client's
    CPU per request. :func:`open_loop` calls ``gc.unfreeze`` when it has sent and received everything."""
    gc.freeze()


def open_loop(target: Target, *, rate_rps: float, duration_s: float, max_requests: int = 10_000,
              concurrency: int = 64, timeout_s: float = 30.0, seed: int = 0, warmup: int = 0,
              stop_after_errors: int | None = None, stop_when_saturated: bool = False,
              on_progress: Callable[[int, int], None] | None = None) -> LoadResult:
    """Send a Poisson stream of ``target`` requests at ``rate_rps`` for ``duration_s`` (at most
    ``max_requests``), with at most ``concurrency`` in flight; ``warmup`` unmeasured requests go first, one at a
    time. Stops scheduling once ``stop_after_errors`` requests failed (default: 5% of the planned, at least 10),
    and with ``stop_when_saturated`` once all ``concurrency`` are in flight at once (the server fell behind: a
    calibration needs to know that, not how far behind it would fall)."""
    if not (math.isfinite(rate_rps) and rate_rps > 0):
        raise InputError(f"rate {rate_rps!r} must be a positive number of requests/s", fix="e.g. --rate 10")
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise InputError(f"duration {duration_s!r} must be a positive number of seconds", fix="e.g. --duration 30")
    if not (1 <= max_requests <= MAX_REQUESTS):
        raise InputError(f"max requests {max_requests!r} must be between 1 and {MAX_REQUESTS:,}", fix="e.g. 5000")
    if not (1 <= concurrency <= 4096):
        raise InputError(f"concurrency {concurrency!r} must be between 1 and 4096", fix="e.g. 64")
    offsets = poisson_schedule(rate_rps, duration_s, max_requests, seed)
    planned = len(offsets)
    give_up = stop_after_errors if stop_after_errors is not None else max(10, planned // 20)
    warm = _Conn(target.url, timeout_s)
    for _ in range(warmup):
        warm.send(target, _Sample(time.perf_counter()))
    warm.close()

    jobs: queue.Queue[_Sample | None] = queue.Queue()
    samples: list[_Sample] = []
    lock = threading.Lock()
    state = {"done": 0, "errors": 0, "in_flight": 0, "max_in_flight": 0}
    stop = threading.Event()

    def worker() -> None:
        conn = _Conn(target.url, timeout_s)
        try:
            while True:
                s = jobs.get()
                if s is None:
                    return
                with lock:
                    state["in_flight"] += 1
                    state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
                    if stop_when_saturated and state["in_flight"] >= concurrency:
                        stop.set()
                conn.send(target, s)
                with lock:
                    state["in_flight"] -= 1
                    state["done"] += 1
                    if s.error is not None:
                        state["errors"] += 1
                        if state["errors"] >= give_up:
                            stop.set()
                    done = state["done"]
                if on_progress is not None:
                    on_progress(done, planned)
        finally:
            conn.close()

    n_workers = max(1, min(concurrency, planned))
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(n_workers)]
    for th in threads:
        th.start()
    quiet_gc()
    t0 = time.perf_counter()
    try:
        for off in offsets:
            if stop.is_set():
                break
            delay = t0 + off - time.perf_counter()
            if delay > 0:
                stop.wait(delay)
                if stop.is_set():
                    break
            s = _Sample(scheduled=t0 + off)
            samples.append(s)
            jobs.put(s)
    except BaseException:  # interrupted (Ctrl-C, a deploy's SIGTERM): drop what is queued, let workers end
        stop.set()
        gc.unfreeze()
        with contextlib.suppress(queue.Empty):
            while True:
                jobs.get_nowait()
        raise
    finally:
        for _ in threads:
            jobs.put(None)
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    gc.unfreeze()
    ok = [s for s in samples if s.error is None and s.end > 0]
    errors = [s for s in samples if s.error is not None]
    stream = target.stream
    return LoadResult(
        rate_rps=rate_rps, duration_s=duration_s, planned=planned, sent=len(samples), completed=len(ok),
        errors=len(errors), wall_s=wall,
        latency=Dist.of([s.end - s.scheduled for s in ok]), service=Dist.of([s.end - s.start for s in ok]),
        client_wait=Dist.of([max(0.0, s.start - s.scheduled) for s in ok]),
        ttft=Dist.of([s.first - s.scheduled for s in ok]) if stream else None,
        tpot=Dist.of([(s.end - s.first) / (s.tokens - 1) for s in ok if s.tokens > 1]) if stream else None,
        first_error=errors[0].error if errors else None, max_in_flight=state["max_in_flight"],
        stopped_early=stop.is_set(), send_offsets=tuple(s.start - t0 for s in samples if s.start > 0),
    )


# ------------------------------------------------------------------------------------ the plan's request


def llm_body(model: str, input_tokens: int, output_tokens: int) -> bytes:
    """An OpenAI completions request of about ``input_tokens`` prompt tokens (one short word each) that
    streams exactly ``output_tokens`` tokens (vLLM ``ignore_eos``)."""
    prompt = " ".join(["hello"] * max(1, input_tokens - 1))
    return json.dumps({"model": model, "prompt": prompt, "max_tokens": max(1, output_tokens), "temperature": 0.0,
                       "ignore_eos": True, "stream": True}).encode()


def target_for(folder: Any, endpoint: str | None = None) -> Target:
    """The request a load test sends to the deployed plan in ``folder`` (a ``PlanFolder``): at ``endpoint``,
    else at the endpoint the deploy state (``DIR/.mlplan/state.json``) records."""
    from stacks.deploy.local import build_request
    from stacks.deploy.state import DeployState

    plan = folder.plan
    record: dict[str, Any] = {}
    if folder.state_dir.exists():
        state = DeployState(folder.state_dir, plan.id)
        for name in reversed(state.active_targets()):
            rec = state.target(name) or {}
            servers = [r for r in rec.get("resources", []) if r.get("kind") in ("ray", "triton")]
            if servers:
                record = dict(servers[0])
            if rec.get("endpoint") and not endpoint and not record:
                record = {"kind": plan.serving.runtime, "endpoint": rec["endpoint"]}
            if record:
                break
    if endpoint:
        record = {**record, "endpoint": endpoint}
    if not record.get("endpoint"):
        raise DeployError(f"{folder.root}: no deployed endpoint is recorded",
                          fix=f"run `mlplan deploy {folder.root}` first, or pass --endpoint URL")
    if plan.model.kind == "llm":
        base = str(record["endpoint"]).rstrip("/")
        url = base if base.endswith("/v1/completions") else base + "/v1/completions"
        return Target(kind="llm", url=url, body=llm_body(plan.model.name, plan.model.input_tokens or 512,
                                                          plan.model.output_tokens or 256), stream=True)
    kind = str(record.get("kind") or plan.serving.runtime)
    if kind == "triton" and not record.get("model"):
        raise DeployError("the deploy state records no Triton model name", fix="deploy again with mlplan deploy")
    url, body, check = build_request(plan, {**record, "kind": kind})
    return Target(kind=kind, url=url, body=body, check=check)


def prediction(folder: Any, rate_rps: float, url: str = "", requests: int = 2000,
               client_cpu_s_per_request: float = 0.0) -> dict[str, Any]:
    """The plan's latency at ``rate_rps``: simulated with its serving settings (when the plan folder's spec and
    catalog resolve; else ``simulated`` is None with the reason), next to the plan's own single figures. A load
    that runs next to the server (a loopback ``url``) also takes the host's cores with its own
    ``client_cpu_s_per_request`` (:func:`simulate_plan`)."""
    plan = folder.plan
    p = plan.predicted
    out: dict[str, Any] = {"plan": {"ttft_s": p.ttft_s, "tpot_s": p.tpot_s, "latency_s": p.latency_s,
                                    "throughput_rps": p.throughput_rps}}
    for metric in ("ttft", "tpot", "latency"):
        for q in (50, 90, 99):
            v = getattr(p, f"{metric}_p{q}_s", None)  # the percentile fields a plan may carry
            if v is not None:
                out["plan"][f"{metric}_p{q}_s"] = v
    host = urllib.parse.urlsplit(url).hostname or ""
    local = host in ("127.0.0.1", "localhost", "::1")
    try:
        out["simulated"] = simulate_plan(folder, rate_rps, requests=requests, with_rtt=not local,
                                         client_cpu_s_per_request=client_cpu_s_per_request if local else 0.0)
        out["simulated_note"] = (f"network RTT left out: the load runs next to the server, and its "
                                 f"{client_cpu_s_per_request * 1e3:.2f} ms of CPU per request takes the server's "
                                 "cores" if local else None)
    except (MlplanError, ValueError) as e:  # a plan whose spec or catalog cannot be rebuilt here (ValueError:
        # pydantic's ValidationError): the measured figures stand alone
        out["simulated"] = None
        out["simulated_note"] = f"not simulated: {type(e).__name__}: {e}"[:240]
    return out


def overlay_path(folder: Any) -> Path | None:
    """The spec's catalog overlay of the plan in ``folder``, found as given, next to the plan folder, or above;
    None when the spec names none or it is not found."""
    overlay = (folder.data.get("spec") or {}).get("catalog_overlay")
    if not overlay:
        return None
    root = Path(folder.root)
    for cand in (Path(overlay), root / overlay, *(parent / overlay for parent in root.parents)):
        if cand.is_file():
            return Path(cand)
    return None


def _catalog(folder: Any) -> Any:
    """The catalog the plan was made with (the spec's overlay where it is found)."""
    from planner.catalog import Catalog

    found = overlay_path(folder)
    return Catalog.load(str(found) if found is not None else None)


def simulate_plan(folder: Any, rate_rps: float, *, requests: int = 2000, seed: int = 0,
                  with_rtt: bool = True, serving: RuntimeCost | None = None,
                  client_cpu_s_per_request: float = 0.0) -> dict[str, Any]:
    """Simulate the plan in ``folder`` at ``rate_rps`` total: its replicas, runtime, batching settings and
    router, timed by the estimator (``planner.simulator``), with what the runtime adds per request as the plan
    was sized (its first part's ``runtime_cost``; ``serving`` replaces it). ``client_cpu_s_per_request``: the CPU
    a load client on the server's own host spends per request (a local load test), which takes that host's
    cores from the server's processes (``planner.simulator.estimator_costs.host_slowdown``). Percentiles in
    seconds, per metric."""
    from planner.estimator import profile
    from planner.estimator.shape import nonllm_seq
    from planner.models import resolve
    from planner.simulator import RUNTIME_ROUTER, Cluster, Lengths, Workload, simulate_states
    from planner.simulator.estimator_costs import llm_replica, nonllm_replica
    from planner.simulator.workload import spec_lengths
    from planner.specs import Spec

    plan = folder.plan
    spec = Spec.model_validate(folder.data.get("spec") or {})
    arch = resolve(spec.model)
    hw = profile(_catalog(folder).accelerator(plan.accelerator))
    srv, w = plan.serving, spec.workload
    runtime = srv.runtime
    serving = serving or plan.parts[0].runtime_cost
    if arch.is_llm:
        i = plan.model.input_tokens or getattr(w, "input_tokens", 512)
        o = plan.model.output_tokens or getattr(w, "output_tokens", 256)
        eng = next((part.engine for part in plan.parts if part.engine is not None), None)
        rm = llm_replica(arch, hw, plan.dtype, tp=plan.tensor_parallel, pp=plan.pipeline_parallel,
                         input_tokens=i, output_tokens=o, max_num_seqs=srv.max_batch_size,
                         max_num_batched_tokens=eng.max_num_batched_tokens if eng is not None else None,
                         memory_headroom=spec.constraints.memory_headroom)
        models = [rm]
        prompt, output = spec_lengths(spec, i - w.input_tokens) if w.kind == "inference" else (Lengths.fixed(i),
                                                                                          Lengths.fixed(o))
        wl = Workload(rate_rps=rate_rps, requests=requests, seed=seed, input_tokens=prompt, output_tokens=output,
                      arrival_cv=getattr(w, "burstiness", 1.0))
    else:
        # one replica model per speed state of the host (RuntimeCost.states; one without a spread)
        models = [nonllm_replica(arch, hw, plan.dtype, runtime="ray" if runtime == "ray" else "triton",
                                 max_batch_size=srv.max_batch_size, max_queue_delay_s=srv.max_queue_delay_us / 1e6,
                                 preferred_batch_sizes=tuple(p for p in srv.preferred_batch_sizes
                                                             if p <= srv.max_batch_size),
                                 seq=nonllm_seq(arch, w),  # as the optimizer times non-LLM batches
                                 host_vcpu=plan.parts[0].node.replica_vcpu(plan.parts[0].accelerator_count),
                                 cpu_s_per_request=s.cpu_s_per_request, cpu_processes=s.cpu_processes,
                                 replicas=plan.replicas, front_share=s.front_share,
                                 other_cores=(s.busy_cores(rate_rps / plan.replicas)
                                              + client_cpu_s_per_request * rate_rps))
                  for s in serving.states()]
        rm = models[0]
        wl = Workload(rate_rps=rate_rps, requests=requests, seed=seed, arrival_cv=getattr(w, "burstiness", 1.0))
    rtt = plan.predicted.network_rtt_s if with_rtt else 0.0
    cluster = Cluster(replicas=plan.replicas, router=RUNTIME_ROUTER.get(runtime, "round_robin"),
                      max_ongoing_requests=srv.max_ongoing_requests if runtime == "ray" else None, network_s=rtt,
                      front=rm.front)
    res = simulate_states(wl, rm.engine, [(m.cost, m.front) for m in models], cluster, warmup=requests // 10)

    def pct(d: Dist, net: bool = True) -> dict[str, float]:
        """Percentiles of ``d`` plus, for a latency the user sees, the runtime's overhead at each percentile
        at this rate per replica (``RuntimeCost.overhead_at``, as the planner adds it to the plan's figures)."""
        def add(q: float) -> float:
            return serving.overhead_at(q, rate_rps / plan.replicas) if net else 0.0

        return {"p50_s": d.p50 + add(50), "p90_s": d.p90 + add(90), "p99_s": d.p99 + add(99),
                "mean_s": d.mean + (serving.overhead_mean(rate_rps / plan.replicas) if net else 0.0)}

    out = {"latency": pct(res.e2e), "throughput_rps": res.throughput_rps, "requests": requests,
           "network_s": rtt + serving.overhead_s, "replicas": plan.replicas, "router": cluster.router}
    if arch.is_llm:
        out |= {"ttft": pct(res.ttft), "tpot": pct(res.tpot, net=False)}
    return out


def run(path: str | Path, *, rate_rps: float, duration_s: float, max_requests: int = 10_000,
        concurrency: int = 64, endpoint: str | None = None, timeout_s: float = 30.0, seed: int = 0,
        warmup: int = 5, on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """``mlplan loadtest``: load the plan folder, send the open-loop load, return measured vs predicted."""
    from stacks.folder import load_folder

    folder = load_folder(path)
    target = target_for(folder, endpoint)
    cpu0 = time.process_time()
    result = open_loop(target, rate_rps=rate_rps, duration_s=duration_s, max_requests=max_requests,
                       concurrency=concurrency, timeout_s=timeout_s, seed=seed, warmup=warmup,
                       on_progress=on_progress)
    client = (time.process_time() - cpu0) / max(1, result.completed)
    return {"plan_id": folder.plan.id, "url": target.url, "kind": target.kind, "measured": result.as_dict(),
            "predicted": prediction(folder, rate_rps, target.url, client_cpu_s_per_request=client)}


def report_rows(report: dict[str, Any]) -> list[list[str]]:
    """Rows metric / percentile / measured / simulated prediction / plan figure, for the CLI table."""
    m, pred = report["measured"], report["predicted"]
    sim = pred.get("simulated") or {}
    plan = pred.get("plan") or {}
    rows = []
    metrics = [("ttft", "TTFT"), ("tpot", "TPOT"), ("latency", "latency")] if "ttft" in m else [("latency",
                                                                                                "latency")]
    for key, label in metrics:
        for q in (50, 90, 99):
            meas = (m.get(key) or {}).get(f"p{q}_s")
            s = (sim.get(key) or {}).get(f"p{q}_s") if sim else None
            pv = plan.get(f"{key}_p{q}_s", plan.get(f"{key}_s") if q == 50 else None)
            rows.append([label, f"p{q}", _ms(meas), _ms(s), _ms(pv)])
    return rows


def _ms(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v * 1e3:,.1f} ms" if v < 10 else f"{v:,.2f} s"
