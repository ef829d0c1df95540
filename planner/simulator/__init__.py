"""A serving simulator: latency percentiles of a deployment under load, fast enough to run inside the planner.

Pure (no I/O), deterministic under a seed, standard library only. ``simulate(workload, engine, cost, cluster)``
replays an open- or closed-loop workload on data-parallel replicas of a vLLM-style continuous-batching engine or
a Triton / Ray Serve dynamic batcher, timed by an injected cost model (:mod:`planner.simulator.costs`), and
returns TTFT, TPOT / ITL and end-to-end percentiles, throughput, queue length and preemptions
(:class:`~planner.simulator.metrics.SimResult`).
"""

from __future__ import annotations

from planner.simulator.costs import AffineBatchCost, AffineStepCost, BatchCost, StepCost
from planner.simulator.engines import (
    ROUTERS,
    RUNTIME_ROUTER,
    Cluster,
    ContinuousBatching,
    DynamicBatching,
    FrontStage,
    vllm_defaults,
)
from planner.simulator.metrics import Dist, SimResult, percentile
from planner.simulator.sim import simulate, simulate_states
from planner.simulator.workload import Lengths, Workload

__all__ = [
    "ROUTERS",
    "RUNTIME_ROUTER",
    "AffineBatchCost",
    "AffineStepCost",
    "BatchCost",
    "Cluster",
    "ContinuousBatching",
    "Dist",
    "DynamicBatching",
    "FrontStage",
    "Lengths",
    "SimResult",
    "StepCost",
    "Workload",
    "percentile",
    "simulate",
    "simulate_states",
    "vllm_defaults",
]
