"""Collective communication under model parallelism: ring all-reduce (Patarasuk & Yuan 2009), all-to-all for
expert parallelism (pairwise exchange, Thakur, Rabenseifner & Gropp 2005; GShard, Lepikhin et al. 2020), the TP
scaling loss and the pipeline bubble (GPipe, Huang et al. 2019)."""

from __future__ import annotations

import math

from planner.estimator import calibration as cal
from planner.estimator.shape import Shape


def ring_allreduce_s(message_bytes: float, n: int, link_bytes_per_s: float) -> float:
    """Ring all-reduce of ``message_bytes`` over ``n`` GPUs: each sends and receives 2(n-1)/n of the message
    (Patarasuk & Yuan 2009; NCCL busbw) at the achievable link bandwidth, plus a fixed latency."""
    if n <= 1:
        return 0.0
    return (2.0 * (n - 1) / n * message_bytes / (link_bytes_per_s * cal.ALLREDUCE_BANDWIDTH_EFFICIENCY)
            + cal.ALLREDUCE_LATENCY_S)


def all_to_all_s(message_bytes: float, n: int, link_bytes_per_s: float) -> float:
    """All-to-all where each of ``n`` GPUs holds ``message_bytes`` spread over all destinations: pairwise exchange,
    (n-1) steps each of message/n bytes (Thakur, Rabenseifner & Gropp 2005, "Optimization of Collective
    Communication Operations in MPICH", IJHPCA 19(1): T = (n-1) alpha + (n-1)/n x M x beta)."""
    if n <= 1:
        return 0.0
    return ((n - 1) / n * message_bytes / (link_bytes_per_s * cal.ALLREDUCE_BANDWIDTH_EFFICIENCY)
            + (n - 1) * cal.P2P_LATENCY_S)


def moe_all_to_all_s(s: Shape, tokens: float, ep: int, tp: int, link_bytes_per_s: float, act_bytes: float) -> float:
    """Extra communication of expert parallelism for one forward over ``tokens`` tokens, all MoE layers: per layer
    a dispatch and a combine all-to-all of each token's hidden state to its top-k experts (GShard, Lepikhin et al.
    2020; DeepSpeed-MoE, Rajbhandari et al. 2022), minus the tensor-parallel all-reduce of the MoE output that EP
    over the whole TP group no longer needs (vLLM ``--enable-expert-parallel``)."""
    if ep <= 1 or not s.moe_layers:
        return 0.0
    msg = tokens * s.experts_per_token * s.hidden * act_bytes
    saved = ring_allreduce_s(tokens * s.hidden * act_bytes, tp, link_bytes_per_s) if ep == tp else 0.0
    return s.moe_layers * max(0.0, 2.0 * all_to_all_s(msg, ep, link_bytes_per_s) - saved)


def tp_scaling_efficiency(tp: int) -> float:
    """Per-GPU compute efficiency left under ``tp``-way tensor parallelism (smaller GEMMs per GPU, kernel
    boundaries at every all-reduce): TP_EFFICIENCY_PER_DOUBLING ** log2(tp). Megatron-LM (Shoeybi et al. 2019)
    reports 77% scaling efficiency at 8-way model parallelism."""
    return float(cal.TP_EFFICIENCY_PER_DOUBLING ** math.log2(tp)) if tp > 1 else 1.0


def pipeline_bubble_fraction(pp: int, microbatches: int) -> float:
    """Idle fraction of a pipeline of ``pp`` stages fed ``microbatches`` micro-batches: (p-1)/(m+p-1) (GPipe,
    Huang et al. 2019; Narayanan et al. 2021). At batch 1 (a single prefill) it is (p-1)/p: PP adds memory, not
    speed."""
    return (pp - 1) / (microbatches + pp - 1) if pp > 1 else 0.0
