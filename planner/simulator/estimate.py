"""``mlplan estimate --rate R / --concurrency N``: simulated percentiles of one model on one accelerator shape.

The CLI calls :func:`simulate_estimate` and prints what it returns; all the logic is here (pure, no I/O).
"""

from __future__ import annotations

from typing import Any

from planner.errors import InputError
from planner.estimator.hardware import HardwareProfile
from planner.models.arch import ModelArch
from planner.simulator.engines import RUNTIME_ROUTER, Cluster
from planner.simulator.estimator_costs import llm_replica, nonllm_replica
from planner.simulator.sim import simulate
from planner.simulator.workload import Lengths, Workload

IDLE_NOTE = ("idle figures: one request alone on an idle replica, no queueing; pass --rate R (open loop) or "
             "--concurrency N (closed loop) for percentiles under load")


def simulate_estimate(arch: ModelArch, hw: HardwareProfile, dtype: str, *, tp: int = 1, pp: int = 1,
                      input_tokens: int, output_tokens: int, rate_rps: float | None = None,
                      concurrency: int | None = None, requests: int = 2000, replicas: int = 1,
                      max_num_seqs: int | None = None, max_batch_size: int | None = None,
                      max_queue_delay_s: float = 0.0, runtime: str | None = None, arrival_cv: float = 1.0,
                      seed: int = 0, memory_headroom: float = 0.1) -> dict[str, Any]:
    """Simulate ``requests`` requests at ``rate_rps`` (open loop) or ``concurrency`` (closed loop) on
    ``replicas`` replicas; returns a JSON-ready dict of percentiles (seconds) and the engine settings used.

    LLMs run on a vLLM V1 engine with that GPU's defaults (``max_num_seqs`` overridable); other models on a
    Triton dynamic batcher (``max_batch_size``, default 8, ``max_queue_delay_s``), or Ray Serve with
    ``runtime="ray"``."""
    if (rate_rps is None) == (concurrency is None):
        raise InputError("give exactly one of --rate and --concurrency", fix="e.g. --rate 10 or --concurrency 32")
    w = Workload(input_tokens=Lengths.fixed(input_tokens), output_tokens=Lengths.fixed(output_tokens),
                 rate_rps=rate_rps, concurrency=concurrency, requests=requests, arrival_cv=arrival_cv, seed=seed)
    if arch.is_llm:
        rm = llm_replica(arch, hw, dtype, tp=tp, pp=pp, input_tokens=input_tokens, output_tokens=output_tokens,
                         memory_headroom=memory_headroom, max_num_seqs=max_num_seqs)
        rt = runtime or "vllm"
    else:
        rt = runtime or "triton"
        rm = nonllm_replica(arch, hw, dtype, runtime=rt, max_batch_size=max_batch_size or 8,
                            max_queue_delay_s=max_queue_delay_s, seq=input_tokens, tp=tp, replicas=replicas)
    cluster = Cluster(replicas=replicas, router=RUNTIME_ROUTER.get(rt, "round_robin"), front=rm.front)
    res = simulate(w, rm.engine, rm.cost, cluster, warmup=requests // 10 if requests >= 50 else 0)
    engine = {k: getattr(rm.engine, k) for k in rm.engine.__dataclass_fields__}
    out: dict[str, Any] = {
        "mode": "open loop" if rate_rps is not None else "closed loop",
        "rate_rps": rate_rps, "concurrency": concurrency, "requests": requests, "replicas": replicas,
        "runtime": rt, "router": cluster.router, "engine": engine,
        "latency": _pct(res.e2e),
        "throughput_rps": res.throughput_rps, "mean_queue_length": res.mean_queue_length,
        "max_queue_length": res.max_queue_length, "mean_batch": res.mean_batch, "utilization": res.utilization,
        "idle": {"ttft_s": rm.estimate.ttft_s, "tpot_s": rm.estimate.tpot_s, "latency_s": rm.estimate.latency_s},
    }
    if arch.is_llm:
        out |= {"ttft": _pct(res.ttft), "tpot": _pct(res.tpot), "itl": _pct(res.itl),
                "output_tokens_per_s": res.output_tokens_per_s, "preemptions": res.preemptions}
    return out


def _pct(d: Any) -> dict[str, float]:
    return {"p50_s": d.p50, "p90_s": d.p90, "p99_s": d.p99, "mean_s": d.mean}


def load_table(load: dict[str, Any]) -> tuple[str, list[str], list[list[str]], str]:
    """(title, columns, rows, footer) that show :func:`simulate_estimate`'s result (or the idle note)."""
    if load.get("mode") == "idle":
        return "", [], [], str(load["note"])
    what = (f"{load['rate_rps']:g} req/s open loop" if load["rate_rps"] is not None
            else f"{load['concurrency']} clients closed loop")
    knobs = ", ".join(f"{k} {v}" for k, v in load["engine"].items() if v not in (None, ()) and k != "block_size")
    title = f"under load: {what}, {load['requests']} simulated requests ({load['runtime']}: {knobs})"
    idle = load["idle"]
    keys = [("TTFT", "ttft", idle["ttft_s"]), ("TPOT", "tpot", idle["tpot_s"]), ("ITL", "itl", None)] \
        if "ttft" in load else []
    keys.append(("latency", "latency", idle["latency_s"]))
    rows = [[label, *(_ms(load[key][k]) for k in ("p50_s", "p90_s", "p99_s")), _ms(base) if base else ""]
            for label, key, base in keys]
    footer = (f"throughput {load['throughput_rps']:.3g} req/s, queue mean {load['mean_queue_length']:.3g} / max "
              f"{load['max_queue_length']}, mean batch {load['mean_batch']:.3g}")
    if "preemptions" in load:
        footer += f", preemptions {load['preemptions']}"
    return title, ["metric", "p50", "p90", "p99", "idle"], rows, footer


def _ms(v: float) -> str:
    return f"{v * 1e3:,.2f} ms" if v < 1 else f"{v:,.2f} s"
