"""How fast is the serving simulator (planner/simulator) on one core?

Goal (issue 12): 2,000 requests in 50 ms or less, 20,000 in 0.5 s or less. Each row simulates one workload with
the estimator as the cost model (planner.simulator.estimator_costs) and reports the CPU time of the calling
process (``time.process_time``: one core, not disturbed by other processes' wall-clock share), the minimum over
several repeats (this machine's 2 cores are shared; the median is shown too). Then the cost of the load-headroom
search (a bracketing search of simulations) and of one closed-form analytic evaluation.

    .venv/bin/python benchmarks/simulator_speed.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from planner.catalog import Catalog  # noqa: E402
from planner.estimator import profile  # noqa: E402
from planner.models import resolve  # noqa: E402
from planner.simulator import Cluster, ContinuousBatching, Lengths, Workload, simulate  # noqa: E402
from planner.simulator.analytic import llm_analytic  # noqa: E402
from planner.simulator.estimator_costs import llm_replica, nonllm_replica  # noqa: E402
from planner.simulator.headroom import headroom  # noqa: E402
from planner.specs import ModelSpec  # noqa: E402


def cpu_times(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(min, median) CPU seconds of ``fn`` over ``repeat`` runs, and its last result."""
    out: Any = None
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.process_time()
        out = fn()
        times.append(time.process_time() - t0)
    return min(times), statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cat = Catalog.load()
    h100 = profile(cat.accelerator("h100-sxm"))
    l4 = profile(cat.accelerator("l4"))
    llama = llm_replica(resolve(ModelSpec(preset="llama-3-8b")), h100, "bf16", input_tokens=512, output_tokens=256)
    small_kv = ContinuousBatching(max_num_seqs=256, max_num_batched_tokens=2048, kv_capacity_tokens=40_000)
    resnet = nonllm_replica(resolve(ModelSpec(preset="resnet-50")), l4, "fp16", max_batch_size=16,
                            max_queue_delay_s=0.002)
    resnet_ray = nonllm_replica(resolve(ModelSpec(preset="resnet-50")), l4, "fp16", runtime="ray",
                                max_batch_size=16, max_queue_delay_s=0.002)
    fixed = {"input_tokens": Lengths.fixed(512), "output_tokens": Lengths.fixed(256)}
    varied = {"input_tokens": Lengths.uniform(512, 0.8), "output_tokens": Lengths.uniform(256, 0.8)}
    cases: list[tuple[str, Callable[[int], Any], float]] = [
        ("vLLM llama-3-8b H100, 512/256, 20 req/s",
         lambda n: simulate(Workload(rate_rps=20, requests=n, **fixed), llama.engine, llama.cost), 20),
        ("  same, lengths uniform +-80%, gamma CV 3",
         lambda n: simulate(Workload(rate_rps=20, requests=n, arrival_cv=3.0, **varied), llama.engine,
                            llama.cost), 20),
        ("  same, KV 40k tokens (preempts)",
         lambda n: simulate(Workload(rate_rps=20, requests=n, **fixed), small_kv, llama.cost), 20),
        ("  4 replicas, power of two, 80 req/s",
         lambda n: simulate(Workload(rate_rps=80, requests=n, **fixed), llama.engine, llama.cost,
                            Cluster(replicas=4, router="power_of_two")), 80),
        ("  closed loop, 64 clients",
         lambda n: simulate(Workload(concurrency=64, requests=n, **fixed), llama.engine, llama.cost), 0),
        ("Triton resnet-50 L4, max batch 16, 2 ms, 1500/s",
         lambda n: simulate(Workload(rate_rps=1500, requests=n), resnet.engine, resnet.cost), 1500),
        ("Ray Serve resnet-50 L4, same",
         lambda n: simulate(Workload(rate_rps=1500, requests=n), resnet_ray.engine, resnet_ray.cost), 1500),
    ]
    print(f"{'case':48} {'requests':>8} {'min ms':>8} {'median':>8} {'us/req':>7} {'goal ms':>8}  met  "
          f"{'p99 e2e':>9} {'preempt':>7}")
    for label, run, _rate in cases:
        for n, goal in ((2000, 50.0), (20000, 500.0)):
            lo, med, res = cpu_times(lambda run=run, n=n: run(n), args.repeat if n == 2000 else max(2,
                                                                                                 args.repeat // 2))
            print(f"{label if n == 2000 else '':48} {n:>8,} {lo * 1e3:>8.1f} {med * 1e3:>8.1f} "
                  f"{lo / n * 1e6:>7.1f} {goal:>8.0f}  {'yes' if lo * 1e3 <= goal else 'NO ':3}  "
                  f"{res.e2e.p99:>8.3f}s {res.preemptions:>7}")
    # the load-headroom search: the highest rate at which p99 TTFT <= 200 ms and p99 TPOT <= 30 ms
    w = Workload(rate_rps=5.0, requests=2000, **fixed)
    slos = {"ttft_s": 0.2, "tpot_s": 0.03}
    lo, med, h = cpu_times(lambda: headroom(w, llama.engine, llama.cost, Cluster(), slos, 99, rel_tol=0.02),
                           max(2, args.repeat // 2))
    print(f"\nload headroom, vLLM llama-3-8b H100 512/256, SLO p99 TTFT <= 200 ms and TPOT <= 30 ms, 2,000 "
          f"requests per probe, 2% tolerance:\n  {h.max_rps:.2f} req/s (first miss at {h.first_failing_rps:.2f}: "
          f"{h.limiting}); {h.evaluations} simulations in {lo * 1e3:.0f} ms CPU (median {med * 1e3:.0f} ms)")
    n_eval = 2000
    t0 = time.process_time()
    for i in range(n_eval):
        llm_analytic(llama.cost, llama.engine, rate_rps=1.0 + i % 25, input_tokens=512, output_tokens=256)
    dt = (time.process_time() - t0) / n_eval
    print(f"analytic bound (llm_analytic), one evaluation: {dt * 1e6:.0f} us")


if __name__ == "__main__":
    main()
