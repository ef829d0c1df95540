"""The estimator as the simulator's cost model: step times of a vLLM-style engine and batch times of a
dynamically batched model, from the public pieces of :mod:`planner.estimator.inference`.

A chunked-prefill step is timed with the same per-operator roofline the estimator uses for its two pure cases
(LLM-Viewer, Yuan et al. 2024; Williams et al. 2009), extended to a fused step:

- linear layers: the step's prompt tokens (at the prefill FLOP efficiency) and decode tokens (at the decode FLOP
  efficiency) run as one GEMM per weight matrix, so the weights are read once: max(prompt FLOP time + decode FLOP
  time, weight bytes / bandwidth). MoE steps read the experts the step's tokens route to;
- decode attention over the KV each decoding sequence reads (``DecodeModel.attention_s``), plus the prompt
  chunks' causal attention (``prefill_attention_pairs`` x 4 x layers x d_attn FLOPs, Kaplan et al. 2020);
- under tensor parallelism two ring all-reduces per layer of the step's hidden states (Megatron-LM), whose fixed
  latency is paid once per step;
- one fixed cost per step: the decode step overhead for decode-only steps, the prefill admission cost for steps
  that carry prompt tokens; and every step, one forward pass's per-layer fixed cost
  (``DecodeModel.forward_overhead_s``).

Anchors, so that the simulator reproduces the estimator's idle figures exactly: a decode-only step at batch b and
mean context c is ``DecodeModel.tpot(b, c)``; a whole prompt alone is ``prefill_time_s``. The prefill fixed
cost is not a public field of the estimator, so it is recovered here as ``prefill_time_s(dm)`` minus the
variable part this module computes for the same prompt (it is the calibration's prefill overhead, the forward
pass's fixed cost and the pipeline sends' latency; :attr:`EstimatorStepCost.prefill_fixed_s`).

Also from here: the KV-cache capacity of a replica in tokens (what vLLM's profiler leaves after weights,
runtime overhead and one step's activations) and the non-LLM batch time (``nonllm_batch_latency_s``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from planner.estimator import calibration as cal
from planner.estimator.hardware import HardwareProfile
from planner.estimator.inference import (
    DecodeModel,
    InferenceEstimate,
    attention_flops_per_token,
    estimate_inference,
    expert_fraction,
    kv_sequence_bytes_per_gpu,
    linear_flops_per_token,
    nonllm_batch_latency_s,
    prefill_time_s,
    ring_allreduce_s,
)
from planner.estimator.shape import Shape, shape_of
from planner.models.arch import ModelArch
from planner.simulator.engines import ContinuousBatching, DynamicBatching, FrontStage, vllm_defaults


class EstimatorStepCost:
    """:class:`~planner.simulator.costs.StepCost` of one replica, from the estimator's :class:`DecodeModel`."""

    def __init__(self, dm: DecodeModel) -> None:
        self.dm = dm
        s = dm.shape
        self.window = s.kv_window
        self.layers = s.layers
        self.flops_per_pair = attention_flops_per_token(s, 1.0)  # 4 x layers x d_attn per (query, key) pair
        self.lin_flops_per_prompt_token = linear_flops_per_token(s, with_lm_head=False)
        self.lm_head_flops = 2.0 * s.lm_head_math_params
        self.allreduce_latency_s = ring_allreduce_s(0.0, dm.tp, dm.link_bytes_per_s) if dm.tp > 1 else 0.0
        self._decode: dict[int, tuple[float, float]] = {}
        self.decode_coeffs: Callable[[int], tuple[float, float]] | None = (
            self._affine_decode if s.kv_window is None else None)
        self._prefill: dict[tuple[int, float], float] = {}
        self._fused: dict[tuple[int, int], float] = {}
        t_in = dm.input_tokens
        self.prefill_fixed_s = max(0.0, prefill_time_s(dm) - self.prefill_compute_s(t_in, t_in * t_in / 2.0))
        """fixed cost of a step that carries prompt tokens (recovered from ``prefill_time_s``)"""

    # ------------------------------------------------------------------------------------------- pieces
    def _decode_coeffs(self, b: int) -> tuple[float, float]:
        """(step time at context 0, seconds per context token of the mean sequence) at batch ``b``:
        ``DecodeModel.tpot(b, c)`` is affine in c below the attention window."""
        hit = self._decode.get(b)
        if hit is None:
            dm = self.dm
            base = dm.tpot(b, 0.0)
            probe = 1024.0 if self.window is None else float(min(1024, self.window))
            hit = self._decode[b] = (base, (dm.tpot(b, probe) - base) / probe)
        return hit

    def _affine_decode(self, decode_seqs: int) -> tuple[float, float]:
        """The decode step as (seconds at total context 0, seconds per context token): ``decode_coeffs`` for the
        simulator's runs (offered only without a sliding window, where the step is affine in the context)."""
        base, slope = self._decode.get(decode_seqs) or self._decode_coeffs(decode_seqs)
        return base, slope / decode_seqs

    def decode_s(self, decode_seqs: int, decode_context_tokens: float) -> float:
        """``DecodeModel.tpot(decode_seqs, decode_context_tokens / decode_seqs)``, memoized per batch."""
        base, slope = self._decode_coeffs(decode_seqs)
        c = decode_context_tokens / decode_seqs
        if self.window is not None and c > self.window:
            c = float(self.window)
        return base + slope * c

    def prefill_compute_s(self, prompt_tokens: int, attention_pairs: float) -> float:
        """A prompt chunk's variable time, as ``prefill_time_s`` counts it: linear layers and causal attention
        (each max(FLOPs, bytes)), TP all-reduces, pipeline sends' bandwidth term; no fixed cost."""
        dm = self.dm
        s: Shape = dm.shape
        tp, pp = dm.tp, dm.pp
        pairs = attention_pairs if self.window is None else min(attention_pairs, prompt_tokens * self.window)
        attn_flops = pairs * self.flops_per_pair / tp
        lin_flops = (prompt_tokens * self.lin_flops_per_prompt_token + self.lm_head_flops) / tp
        w_bytes = (dm.shared_weight_bytes + dm.expert_weight_bytes * expert_fraction(s, prompt_tokens)) * pp
        kv_bytes = prompt_tokens * dm.kv_bytes_per_token_per_gpu * pp
        t = (max(lin_flops / dm.prefill_flops_per_s, w_bytes / dm.bytes_per_s)
             + max(attn_flops / dm.prefill_flops_per_s, kv_bytes / dm.bytes_per_s))
        if tp > 1:
            t += 2.0 * s.layers * ring_allreduce_s(prompt_tokens * dm.act_msg_bytes_per_token, tp,
                                                    dm.link_bytes_per_s)
        if pp > 1:
            t += (pp - 1) * prompt_tokens * dm.act_msg_bytes_per_token / dm.link_bytes_per_s
        return t

    def weight_overlap_s(self, prompt_tokens: int, decode_seqs: int) -> float:
        """Time saved by running the prompt and decode tokens of one step through each weight matrix together:
        max(Fp, Wp) + max(Fd, Wd) - max(Fp + Fd, W(p + d)) (per-operator roofline of the fused GEMM)."""
        dm = self.dm
        s = dm.shape
        tp, pp = dm.tp, dm.pp
        n = tp * pp
        bw = dm.bytes_per_s
        mb = max(1.0, decode_seqs / pp)
        fp = (prompt_tokens * self.lin_flops_per_prompt_token + self.lm_head_flops) / tp / dm.prefill_flops_per_s
        fd = pp * (mb * dm.flops_per_token / n) / dm.flops_per_s
        sh, ex = dm.shared_weight_bytes, dm.expert_weight_bytes
        wp = pp * (sh + ex * expert_fraction(s, prompt_tokens)) / bw
        wd = pp * (sh + ex * expert_fraction(s, mb)) / bw
        wf = pp * (sh + ex * expert_fraction(s, prompt_tokens + mb)) / bw
        return max(0.0, max(fp, wp) + max(fd, wd) - max(fp + fd, wf))

    # -------------------------------------------------------------------------------------- StepCost
    def step_s(self, prefill_tokens: int, decode_seqs: int, decode_context_tokens: int,
               prefill_attention_pairs: float = 0.0) -> float:
        if prefill_tokens <= 0:
            if decode_seqs <= 0:
                return 0.0
            base, slope = self._decode.get(decode_seqs) or self._decode_coeffs(decode_seqs)
            c = decode_context_tokens / decode_seqs
            if self.window is not None and c > self.window:
                c = float(self.window)
            return base + slope * c
        pairs = prefill_attention_pairs or prefill_tokens * prefill_tokens / 2.0
        key = (prefill_tokens, pairs)
        t = self._prefill.get(key)
        if t is None:
            if len(self._prefill) > 100_000:
                self._prefill.clear()
            t = self._prefill[key] = self.prefill_compute_s(prefill_tokens, pairs)
        if decode_seqs <= 0:
            return t + self.prefill_fixed_s
        key2 = (prefill_tokens, decode_seqs)
        fused = self._fused.get(key2)
        if fused is None:
            if len(self._fused) > 100_000:
                self._fused.clear()
            step_ovh = self.dm.step_overhead_s + self.dm.forward_overhead_s  # what decode_s carries
            fused = self._fused[key2] = (max(self.prefill_fixed_s, step_ovh) - step_ovh
                                         - self.weight_overlap_s(prefill_tokens, decode_seqs)
                                         - (2.0 * self.layers * self.allreduce_latency_s if self.dm.tp > 1 else 0.0))
        return t + self.decode_s(decode_seqs, decode_context_tokens) + fused


class EstimatorBatchCost:
    """:class:`~planner.simulator.costs.BatchCost` of a non-LLM replica: ``nonllm_batch_latency_s``, memoized."""

    def __init__(self, shape: Shape, hw: HardwareProfile, dtype: str, seq: int, tp: int = 1,
                 flops_efficiency: float | None = None) -> None:
        self.shape = shape
        self.hw = hw
        self.dtype = dtype
        self.seq = seq
        self.tp = tp
        self.flops_efficiency = nonllm_flops_efficiency(hw) if flops_efficiency is None else flops_efficiency
        self._memo: dict[int, float] = {}

    def batch_s(self, batch: int) -> float:
        v = self._memo.get(batch)
        if v is None:
            v = self._memo[batch] = nonllm_batch_latency_s(self.shape, self.hw, self.dtype, batch, self.seq,
                                                            self.flops_efficiency, self.tp)[0]
        return v


UNSPECIFIED_HOST_VCPU = 16
"""Hardware threads of a CPU host no node shape names (``mlplan estimate``): the catalog's ``cpu-x86`` slice is 8
cores / 16 vCPU, which is also what a node shape assumes per accelerator (planner.optimizer.nodes)."""


@dataclass(frozen=True)
class ServedBatchCost:
    """A batch cost plus the serving runtime's CPU work per request, where both run on the same cores (a CPU
    host: calibration.SERVING_CPU_S_PER_REQUEST). A batch of ``b`` takes batch_s(b) = (inner(b) + b x
    ``per_request_s`` / ``spread``) x ``slowdown`` in the replica's process: ``per_request_s`` is the replica's
    part of the work (:func:`host_serving`), ``spread`` the threads it is spread over where the runtime's
    processes are not modelled as stages of their own, ``slowdown`` what the host's other work costs the process
    (:func:`host_slowdown`)."""

    inner: EstimatorBatchCost
    per_request_s: float
    spread: int = 1
    slowdown: float = 1.0

    def batch_s(self, batch: int) -> float:
        return (self.inner.batch_s(batch) + batch * self.per_request_s / self.spread) * self.slowdown


def runtime_cpu_spread(hw: HardwareProfile, cpu_s_per_request: float, processes: int, host_vcpu: int) -> int:
    """Hardware threads the serving runtime's per-request CPU work (``cpu_s_per_request``, in ``processes``
    request-path processes) runs on beside the model: on a CPU host, as many of the replica's ``host_vcpu`` as
    there are processes; 0 where that work costs the model nothing (a GPU host, or no figure)."""
    if hw.kind != "cpu" or cpu_s_per_request <= 0:
        return 0
    return max(1, min(host_vcpu, processes))


def runtime_cpu_threads(hw: HardwareProfile, cpu_s_per_request: float, processes: int, host_vcpu: int,
                        other_cores: float = 0.0) -> int:
    """The host's hardware threads as far as they change the runtime's cost on it: 0 where the runtime's work
    costs the model nothing (:func:`runtime_cpu_spread`), else ``host_vcpu`` up to ``processes`` + the other
    work's cores (rounded up), beyond which every process has a thread of its own (:func:`host_slowdown` is 1)."""
    if not runtime_cpu_spread(hw, cpu_s_per_request, processes, host_vcpu):
        return 0
    return min(host_vcpu, processes + math.ceil(other_cores))


MIN_FREE_CORES = 0.05
"""floor on the cores left to the request path (:func:`host_slowdown`), so that a host busier than its threads
gives a large finite slowdown rather than a division by zero"""


def host_slowdown(host_vcpu: int, spread: int, other_cores: float) -> float:
    """How much slower each of the request path's ``spread`` single-threaded processes runs on a host of
    ``host_vcpu`` hardware threads where other work (the runtime's idle background, a load client on the same
    machine) keeps ``other_cores`` busy: where the threads left, ``host_vcpu`` - ``other_cores``, are fewer than the
    processes, each gets an equal share of them (the Linux CFS gives runnable threads equal CPU time), so
    ``spread`` / (threads left); 1 where every process has a thread. Counted as if the processes were always
    runnable, it is an upper bound on the slowdown. On the Ray demo (2 threads, 0.09-0.11 cores of background, the
    client 0.4-0.8 ms of CPU per request: a 5-10% slowdown) the predicted p99 came within 2% of the measured at
    5-49 req/s and 34% above it at 122 req/s (benchmarks/slo_local.py, 2026-12-02)."""
    free = max(MIN_FREE_CORES, host_vcpu - other_cores)
    return max(1.0, spread / free)


def host_serving(cost: EstimatorBatchCost, hw: HardwareProfile, cpu_s_per_request: float, processes: int,
                 host_vcpu: int, replicas: int = 1, *, front_share: float = 0.0, other_cores: float = 0.0
                 ) -> tuple[EstimatorBatchCost | ServedBatchCost, FrontStage | None]:
    """``cost`` as served by a runtime that spends ``cpu_s_per_request`` of CPU per request in ``processes``
    processes, on ``hw`` with ``host_vcpu`` hardware threads: (the replica's batch cost, the front stage ahead of
    it or None).

    On a CPU host that work runs on the model's cores, slowed by the host's ``other_cores`` of other work
    (:func:`host_slowdown`). Where a request passes a front process (``front_share`` of the work,
    calibration.SERVING_FRONT_SHARE) and then the replica's, on two threads or more (Ray Serve: the node's HTTP
    proxy, then the replica), the front's share is a stage of its own (``replicas``: the cluster's, each on a node
    with its own proxy) and the replica's batches carry the rest; otherwise the batches carry all of it, spread
    over :func:`runtime_cpu_spread` of the threads (on one thread it is serial). Elsewhere (a GPU host's runtime
    runs on cores the model does not use) the model's cost alone and no stage."""
    spread = runtime_cpu_spread(hw, cpu_s_per_request, processes, host_vcpu)
    if not spread:
        return cost, None
    slow = host_slowdown(host_vcpu, spread, other_cores)
    if spread >= 2 and front_share > 0:
        return (ServedBatchCost(cost, cpu_s_per_request * (1.0 - front_share), 1, slow),
                FrontStage(cpu_s_per_request * front_share * slow, replicas))
    return ServedBatchCost(cost, cpu_s_per_request, spread, slow), None


def nonllm_flops_efficiency(hw: HardwareProfile) -> float:
    """The FLOP efficiency ``estimate_inference`` uses for non-LLM models on ``hw`` (the estimator's private
    ``_flops_eff`` with the non-LLM default, repeated here from the calibration constants)."""
    if hw.kind == "gpu":
        return cal.NONLLM_FLOPS_EFFICIENCY
    if hw.kind == "cpu":
        return cal.CPU_FLOPS_EFFICIENCY
    return cal.EDGE_FLOPS_EFFICIENCY.get(hw.kind, cal.NONLLM_FLOPS_EFFICIENCY)


def kv_capacity_tokens(est: InferenceEstimate, dtype: str, memory_headroom: float = 0.1) -> int:
    """KV-cache slots of one replica: the usable memory per GPU (``1 - memory_headroom`` of it, like vLLM's
    ``gpu_memory_utilization``) less weights, runtime overhead and one step's activations, divided by the KV
    bytes one token of this workload's sequences takes per GPU: a whole sequence's cache (each layer as it is:
    sliding windows, MLA latents, recurrent state) over its tokens, so hybrid-attention models count what they
    really keep. ``est`` should be an estimate at batch 1 (its activations are one prefill chunk's)."""
    dm = est.decode
    if dm is None:
        return 0
    ctx = max(1, dm.input_tokens + dm.output_tokens)
    per_token = kv_sequence_bytes_per_gpu(dm.shape, dtype, ctx, dm.tp, dm.pp) / ctx
    if per_token <= 0:
        return 0
    m = est.memory
    usable = est.capacity_bytes_per_gpu * (1.0 - memory_headroom)
    free = usable - m.weights_bytes_per_gpu - m.overhead_bytes_per_gpu - m.activation_bytes_per_gpu
    return max(0, int(free // per_token))


@dataclass(frozen=True)
class ReplicaModel:
    """An engine configuration and its cost model, ready for :func:`planner.simulator.simulate`."""

    engine: ContinuousBatching | DynamicBatching
    cost: EstimatorStepCost | EstimatorBatchCost | ServedBatchCost
    estimate: InferenceEstimate
    front: FrontStage | None = None
    """the runtime's front process ahead of the replica, where it is on the request path (:func:`host_serving`)"""

    @property
    def idle_ttft_s(self) -> float:
        return self.estimate.ttft_s

    @property
    def idle_tpot_s(self) -> float:
        return self.estimate.tpot_s


def llm_replica(arch: ModelArch, hw: HardwareProfile, dtype: str, *, tp: int = 1, pp: int = 1, input_tokens: int,
                output_tokens: int, memory_headroom: float = 0.1, max_num_seqs: int | None = None,
                max_num_batched_tokens: int | None = None) -> ReplicaModel:
    """A vLLM replica of ``arch`` on ``tp`` x ``pp`` of ``hw``: the engine's defaults for that GPU (unless
    given), its KV capacity and the step cost. ``input_tokens`` / ``output_tokens`` are the mean request, used
    for the estimator's own idle figures."""
    est = estimate_inference(arch, hw, dtype, tp=tp, pp=pp, input_tokens=input_tokens, output_tokens=output_tokens,
                             batch=1, memory_headroom=memory_headroom)
    assert est.decode is not None, "llm_replica needs a decoder LLM"
    d_tokens, d_seqs = vllm_defaults(hw.memory_bytes, hw.id)
    seqs = max_num_seqs or d_seqs
    budget = max(max_num_batched_tokens or d_tokens, seqs)
    kv = kv_capacity_tokens(est, dtype, memory_headroom)
    engine = ContinuousBatching(max_num_seqs=seqs, max_num_batched_tokens=budget,
                                kv_capacity_tokens=kv if kv >= cal.KV_BLOCK_TOKENS else cal.KV_BLOCK_TOKENS,
                                block_size=cal.KV_BLOCK_TOKENS)
    return ReplicaModel(engine=engine, cost=EstimatorStepCost(est.decode), estimate=est)


def nonllm_replica(arch: ModelArch, hw: HardwareProfile, dtype: str, *, runtime: str = "triton",
                   max_batch_size: int = 8, max_queue_delay_s: float = 0.0,
                   preferred_batch_sizes: tuple[int, ...] = (), seq: int = 1, tp: int = 1,
                   instances: int = 1, host_vcpu: int = UNSPECIFIED_HOST_VCPU,
                   cpu_s_per_request: float | None = None, cpu_processes: int | None = None,
                   replicas: int = 1, front_share: float | None = None, other_cores: float | None = None
                   ) -> ReplicaModel:
    """A Triton (or Ray Serve, ``runtime="ray"``) replica of a non-LLM model with dynamic batching, on a node of
    ``host_vcpu`` hardware threads (they run the runtime's own work on a CPU host: :func:`host_serving`).
    ``cpu_s_per_request`` / ``cpu_processes``: the runtime's CPU work per request and the processes it is split
    between (a plan part's ``runtime_cost``), ``front_share`` its share in the front process, ``other_cores`` the
    host's other work (the runtime's idle background, a load client beside it); None: the calibration defaults.
    ``replicas``: how many of these the cluster runs (the front stage, :func:`host_serving`, has a proxy for
    each)."""
    est = estimate_inference(arch, hw, dtype, tp=tp, input_tokens=max(1, seq), output_tokens=1, batch=1)
    engine = DynamicBatching(runtime="ray" if runtime == "ray" else "triton", max_batch_size=max_batch_size,
                             max_queue_delay_s=max_queue_delay_s, preferred_batch_sizes=preferred_batch_sizes,
                             instances=instances)
    per = cal.SERVING_CPU_S_PER_REQUEST.get(runtime, 0.0) if cpu_s_per_request is None else cpu_s_per_request
    procs = cal.SERVING_CPU_PROCESSES.get(runtime, 1) if cpu_processes is None else cpu_processes
    share = cal.SERVING_FRONT_SHARE.get(runtime, 0.0) if front_share is None else front_share
    other = cal.SERVING_BACKGROUND_CORES.get(runtime, 0.0) if other_cores is None else other_cores
    inner = EstimatorBatchCost(shape_of(arch), hw, dtype, max(1, seq), tp)
    cost, front = host_serving(inner, hw, per, procs, host_vcpu, replicas, front_share=share, other_cores=other)
    return ReplicaModel(engine=engine, cost=cost, estimate=est, front=front)
