"""Inference memory and roofline latency/throughput for one replica (``tp`` x ``pp`` accelerators).

Model (each piece is a small function below, with its source):

- memory: weights + KV cache (Pope et al. 2022; vLLM PagedAttention, Kwon et al. 2023) + transient activations +
  runtime overhead, per GPU under tensor parallelism (Megatron-LM, Shoeybi et al. 2019) and pipeline stages.
- time: the roofline model (Williams, Waterman & Patterson 2009): a step takes max(FLOPs / achievable FLOP/s,
  bytes / achievable bytes/s), plus two ring all-reduces per layer under TP (Patarasuk & Yuan 2009: 2(n-1)/n of
  the message per GPU) and stage-to-stage sends under PP (GPipe, Huang et al. 2019).
- decode reads all (active) weights once per step, shared by the batch, plus each sequence's KV cache
  (Pope et al. 2022, Sec. 2-3: decode is memory-bound at small batch, compute-bound at large batch).
- MoE: weights = all experts; a step touches the experts its tokens route to: expected distinct experts of t
  tokens with top-k of E under uniform routing is E (1 - (1 - k/E)^t) <= min(E, t k). Expert parallelism (vLLM
  ``--enable-expert-parallel``) places whole experts on ``ep`` GPUs and adds two all-to-alls per MoE layer
  (dispatch and combine; GShard, Lepikhin et al. 2020), each priced as a pairwise exchange (Thakur, Rabenseifner
  & Gropp 2005).
- layer by layer: each layer keeps what its attention needs (full: every token; sliding / chunked: its window;
  multi-head latent attention: the latent, on every TP rank; linear attention and Mamba-2: a fixed state), and a
  decode step reads exactly that (:class:`planner.estimator.shape.KvGroup`).
- saturated throughput with continuous batching (Orca, Yu et al. 2022): per request, its prefill compute plus
  its share output_tokens x TPOT(b) / b of the decode steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from planner.errors import InputError
from planner.estimator import calibration as cal
from planner.estimator.collectives import (
    all_to_all_s,
    moe_all_to_all_s,
    pipeline_bubble_fraction,
    ring_allreduce_s,
    tp_scaling_efficiency,
)
from planner.estimator.dtypes import (
    activation_bytes,
    check_dtype,
)
from planner.estimator.flops import attention_flops_per_token, expert_fraction, linear_flops_per_token, nonllm_flops
from planner.estimator.hardware import HardwareProfile
from planner.estimator.memory import (
    InferenceMemory,
    activation_elems_per_token,
    inference_memory,
    kv_bytes_per_sequence,
    kv_bytes_per_token,
    kv_bytes_per_token_all_layers,
    kv_elem_bytes,
    kv_sequence_bytes_per_gpu,
    kv_shards,
    kv_tokens,
    nonllm_activation_bytes,
    overhead_for,
    replica_memory,
    state_bytes_per_sequence,
    state_elem_bytes,
    streamed_weight_bytes,
    validate_shape,
    weights_bytes,
)
from planner.estimator.shape import Shape, shape_of
from planner.models.arch import ModelArch

__all__ = [
    "DecodeModel", "InferenceEstimate", "InferenceMemory", "activation_elems_per_token", "all_to_all_s",
    "attention_flops_per_token", "batch_for", "check_ep", "decode_model", "estimate_inference", "expert_fraction",
    "inference_memory", "kv_bytes_per_sequence", "kv_bytes_per_token", "kv_bytes_per_token_all_layers",
    "kv_sequence_bytes_per_gpu", "kv_shards", "kv_tokens", "linear_flops_per_token", "math_efficiency",
    "moe_all_to_all_s", "nonllm_batch_latency_s", "nonllm_flops", "overhead_for", "pipeline_bubble_fraction",
    "prefill_time_s", "ring_allreduce_s", "roofline_ridge", "state_bytes_per_sequence", "state_elem_bytes",
    "streamed_weight_bytes", "tp_scaling_efficiency", "weights_bytes",
]

@dataclass(frozen=True, slots=True)
class DecodeModel:
    """Coefficients of the decode-step roofline of one replica; evaluates TPOT and throughput at any batch."""

    shape: Shape
    pp: int
    tp: int
    layers: int
    flops_per_s: float
    prefill_flops_per_s: float
    bytes_per_s: float
    link_bytes_per_s: float
    shared_weight_bytes: float
    """weight bytes read every step whatever the batch, per GPU"""
    expert_weight_bytes: float
    """all routed expert bytes, per GPU"""
    flops_per_token: float
    """linear FLOPs per decoded token (whole model)"""
    kv_bytes_per_token_per_gpu: float
    """KV growth per token per GPU once every window is full (layers without a window)"""
    act_msg_bytes_per_token: float
    """bytes of one token's hidden state (the all-reduce / pipeline message)"""
    input_tokens: int
    output_tokens: int
    prefill_flops: float
    """FLOPs of one request's prefill (whole model)"""
    max_batch: int
    step_overhead_s: float = cal.DECODE_STEP_OVERHEAD_S
    """fixed cost of a decode step between forward passes (scheduler, sampling, launch of the graph)"""
    forward_overhead_s: float = 0.0
    """fixed cost inside every forward pass, decode step or prompt chunk alike (per-layer kernel boundaries on
    accelerators, operator dispatch on CPUs)"""
    dtype: str = "bf16"
    ep: int = 1

    def kv_read_bytes(self, context: float) -> float:
        """KV + state bytes one sequence's decode step reads on one GPU at ``context``: each layer only the tokens
        it keeps; a recurrent state is read and written back."""
        s = self.shape
        kvb, sb = kv_elem_bytes(self.dtype), state_elem_bytes(self.dtype)
        total = 0.0
        for g in s.kv_groups:
            split = self.pp * max(1, min(self.tp, g.shards))
            total += (g.kv_elems_per_token * g.kept(context) * kvb + 2.0 * g.state_elems * sb) / split
        return total

    def tpot(self, batch: int, context: float | None = None) -> float:
        """Seconds per decode step for ``batch`` sequences at average ``context`` (default input + output/2)."""
        pp, tp = self.pp, self.tp
        c = self.input_tokens + self.output_tokens / 2.0 if context is None else context
        mb = max(1.0, batch / pp)  # micro-batch per stage: stages work on different sequences at once
        stage = self.linear_s(mb) + self.attention_s(mb, c)
        if tp > 1:
            stage += 2.0 * self.layers / pp * ring_allreduce_s(mb * self.act_msg_bytes_per_token, tp,
                                                               self.link_bytes_per_s)
        if self.ep > 1:
            stage += moe_all_to_all_s(self.shape, mb, self.ep, tp, self.link_bytes_per_s,
                                      activation_bytes(self.dtype)) / pp
        send = (pp - 1) * (mb * self.act_msg_bytes_per_token / self.link_bytes_per_s + cal.P2P_LATENCY_S)
        return pp * stage + send + self.step_overhead_s + self.forward_overhead_s

    def linear_s(self, mb: float) -> float:
        """One stage's weight GEMMs for ``mb`` tokens: max(FLOPs / achievable FLOP/s, weights read /
        achievable bandwidth). Operators are timed separately and summed (per-operator roofline, as in
        LLM-Viewer, Yuan et al. 2024), since a step runs GEMMs and attention one after the other."""
        n = self.tp * self.pp
        flops = mb * self.flops_per_token / n
        byts = self.shared_weight_bytes + self.expert_weight_bytes * expert_fraction(self.shape, mb)
        return max(flops / self.flops_per_s, byts / self.bytes_per_s)

    def attention_s(self, mb: float, context: float) -> float:
        """One stage's decode attention for ``mb`` sequences at ``context``: max(QK^T/AV FLOPs, KV bytes read)."""
        s = self.shape
        flops = mb * attention_flops_per_token(s, context) / (self.tp * self.pp)
        byts = mb * self.kv_read_bytes(context)
        return max(flops / self.flops_per_s, byts / self.bytes_per_s)

    def prefill_busy_s(self) -> float:
        """Replica time one request's prefill occupies under saturation: compute-bound with all stages busy,
        plus its TP all-reduces (2 per layer of input_tokens hidden states; not overlapped with compute)."""
        t = self.prefill_flops / (self.tp * self.pp * self.prefill_flops_per_s)
        if self.tp > 1:
            t += 2.0 * self.layers / self.pp * ring_allreduce_s(
                self.input_tokens * self.act_msg_bytes_per_token, self.tp, self.link_bytes_per_s)
        t += moe_all_to_all_s(self.shape, self.input_tokens, self.ep, self.tp, self.link_bytes_per_s,
                              activation_bytes(self.dtype)) / self.pp
        return t

    def throughput_at(self, batch: int) -> float:
        """Saturated output tokens/s with ``batch`` sequences decoding together (continuous batching)."""
        if batch < 1:
            return 0.0
        per_request = self.prefill_busy_s() + self.output_tokens * self.tpot(batch) / batch
        return self.output_tokens / per_request

    def batch_for(self, tpot_slo_s: float) -> int:
        """Largest batch <= max_batch whose TPOT meets ``tpot_slo_s`` (0 if not even batch 1). TPOT grows
        monotonically with batch, so a binary search is exact."""
        if self.max_batch < 1 or self.tpot(1) > tpot_slo_s:
            return 0
        lo, hi = 1, self.max_batch
        if self.tpot(hi) <= tpot_slo_s:
            return hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.tpot(mid) <= tpot_slo_s:
                lo = mid
            else:
                hi = mid
        return lo


@dataclass(frozen=True, slots=True)
class InferenceEstimate:
    """One replica's predicted memory, latency, throughput and energy.

    LLMs: ``ttft_s`` is a batch-1 prefill, ``tpot_s`` a decode step at ``batch``, ``latency_s`` = TTFT +
    (output_tokens - 1) x TPOT. Non-LLMs: ``latency_s`` is one batch's latency, ``ttft_s`` = ``latency_s`` and
    ``tpot_s`` = 0. ``throughput_tokens_per_s`` / ``requests_per_s`` are saturated figures at ``max_batch``.
    """

    memory: InferenceMemory
    fits: bool
    max_batch: int
    batch: int
    ttft_s: float
    tpot_s: float
    tpot_s_at_max_batch: float
    throughput_tokens_per_s: float
    requests_per_s: float
    latency_s: float
    energy_j_per_token: float | None
    energy_j_per_request: float
    capacity_bytes_per_gpu: int
    gpus: int
    bound: str
    """what limits a decode step at ``batch`` (or a batch for non-LLMs): "memory" or "compute" """
    decode: DecodeModel | None = None

    def batch_for(self, tpot_slo_s: float) -> int:
        """Largest concurrent batch whose TPOT meets the SLO (0 if none; non-LLMs: ``max_batch``)."""
        return self.decode.batch_for(tpot_slo_s) if self.decode is not None else self.max_batch

    def tpot_at(self, batch: int) -> float:
        return self.decode.tpot(batch) if self.decode is not None else 0.0

    def throughput_at(self, batch: int) -> float:
        """Saturated output tokens/s at ``batch`` (LLM); requests/s at ``batch`` for non-LLMs."""
        if self.decode is not None:
            return self.decode.throughput_at(batch)
        return self.requests_per_s

    def best_under_tpot(self, tpot_slo_s: float | None) -> tuple[int, float]:
        """(batch, output tokens/s) maximising per-replica throughput subject to TPOT <= SLO."""
        b = self.max_batch if tpot_slo_s is None else self.batch_for(tpot_slo_s)
        return b, (self.throughput_at(b) if b >= 1 else 0.0)


# ---------------------------------------------------------------------------------------------- memory














# ---------------------------------------------------------------------------------------------- estimate


def decode_model(s: Shape, hw: HardwareProfile, dtype: str, tp: int, pp: int, input_tokens: int,
                  output_tokens: int, max_batch: int, ep: int = 1) -> DecodeModel:
    n = tp * pp
    peak = hw.peak_flops(dtype) * tp_scaling_efficiency(tp)
    shared_all, experts_all = streamed_weight_bytes(s, dtype)
    shared = shared_all / n
    experts = experts_all / n
    kvb = kv_elem_bytes(dtype)
    kv_gpu_tok = sum(g.kv_elems_per_token * kvb / (pp * max(1, min(tp, g.shards))) for g in s.kv_groups if g.grows)
    prefill_flops = (input_tokens * linear_flops_per_token(s, with_lm_head=False) + 2.0 * s.lm_head_math_params
                     + input_tokens * attention_flops_per_token(s, input_tokens / 2.0))
    return DecodeModel(
        shape=s, pp=pp, tp=tp, layers=s.layers,
        flops_per_s=peak * math_efficiency(hw, dtype, cal.DECODE_FLOPS_EFFICIENCY),
        prefill_flops_per_s=peak * math_efficiency(hw, dtype, cal.PREFILL_FLOPS_EFFICIENCY),
        bytes_per_s=hw.bandwidth_bytes_per_s * _bw_eff(hw),
        link_bytes_per_s=hw.link_bytes_per_s(n),
        shared_weight_bytes=shared, expert_weight_bytes=experts,
        flops_per_token=linear_flops_per_token(s), kv_bytes_per_token_per_gpu=kv_gpu_tok,
        act_msg_bytes_per_token=s.hidden * activation_bytes(dtype),
        input_tokens=input_tokens, output_tokens=output_tokens, prefill_flops=prefill_flops, max_batch=max_batch,
        step_overhead_s=0.0 if hw.kind == "cpu" else cal.DECODE_STEP_OVERHEAD_S,
        forward_overhead_s=_forward_overhead_s(hw, s.layers, dtype), dtype=dtype, ep=ep,
    )


def _bw_eff(hw: HardwareProfile) -> float:
    """Achievable fraction of peak memory bandwidth by hardware kind (calibration)."""
    if hw.kind == "gpu":
        return cal.DECODE_BANDWIDTH_EFFICIENCY
    if hw.kind == "cpu":
        return cal.CPU_BANDWIDTH_EFFICIENCY
    return cal.EDGE_BANDWIDTH_EFFICIENCY


NARROW_MATH: Final = frozenset({"fp8", "int8", "fp4", "int4"})
"""math dtypes the calibrated LLM FLOP efficiencies hold for as they stand (calibration.FP8_GEMM_EFFICIENCY_RATIO)"""


def math_efficiency(hw: HardwareProfile, dtype: str, fp8_fraction: float) -> float:
    """Achievable fraction of the peak of the math ``dtype``'s weights run in, for an LLM FLOP efficiency calibrated
    on FP8 math (``fp8_fraction``): as calibrated for 8-bit and narrower math on GPUs, divided by
    ``calibration.FP8_GEMM_EFFICIENCY_RATIO`` for 16-bit and 32-bit math on GPUs; the CPU / edge figure elsewhere
    (:func:`_flops_eff`)."""
    eff = _flops_eff(hw, fp8_fraction)
    if hw.kind == "gpu" and hw.compute_dtype(dtype) not in NARROW_MATH:
        eff /= cal.FP8_GEMM_EFFICIENCY_RATIO
    return eff


def _flops_eff(hw: HardwareProfile, default: float) -> float:
    """Achievable fraction of peak FLOP/s: ``default`` (the GPU figure) on GPUs, the CPU or edge figure else."""
    if hw.kind == "gpu":
        return default
    if hw.kind == "cpu":
        return cal.CPU_FLOPS_EFFICIENCY
    return cal.EDGE_FLOPS_EFFICIENCY.get(hw.kind, default)


def quantized_gemm_path(hw: HardwareProfile, dtype: str) -> str | None:
    """The kernel path a GPU runs quantized weights of ``dtype`` through (a key of
    ``calibration.QUANTIZED_GEMM_FIXED_S``): W8A8 where the GPU has the 8-bit math, else weight-only W8A16 / W4A16
    (:func:`planner.estimator.dtypes.compute_dtype`); None for 16/32-bit weights, native FP4 and non-GPUs."""
    if hw.kind != "gpu":
        return None
    math_dtype = hw.compute_dtype(dtype)
    if dtype in ("fp8", "int8"):
        return f"w8a8-{dtype}" if math_dtype == dtype else "w8a16"
    if dtype in ("int4", "fp4"):
        return None if math_dtype == dtype else "w4a16"
    return None


def _forward_overhead_s(hw: HardwareProfile, layers: int, dtype: str) -> float:
    """Fixed cost of one forward pass over ``layers`` layers: kernel boundaries on accelerators
    (``DECODE_LAYER_OVERHEAD_S``), eager operator dispatch on CPUs (``CPU_LAYER_OVERHEAD_S``); on GPUs running
    quantized weights, each layer's weight GEMMs' extra fixed cost (``QUANTIZED_GEMM_FIXED_S``)."""
    if hw.kind == "cpu":
        return layers * cal.CPU_LAYER_OVERHEAD_S
    path = quantized_gemm_path(hw, dtype)
    extra = cal.LINEAR_GEMMS_PER_LAYER * cal.QUANTIZED_GEMM_FIXED_S[path] if path else 0.0
    return layers * (cal.DECODE_LAYER_OVERHEAD_S + extra)


def prefill_time_s(dm: DecodeModel) -> float:
    """TTFT of one request alone: max(prefill FLOPs / (tp x achievable FLOP/s), weights + KV written /
    (tp x achievable bandwidth)) + 2 all-reduces per layer of the prompt's hidden states + (pp-1) sends + a
    fixed admission cost + the forward pass's fixed per-layer cost. Pipeline stages run one after another for a
    single request (bubble (p-1)/p)."""
    s, tp, pp = dm.shape, dm.tp, dm.pp
    t_in = dm.input_tokens
    attn_flops = t_in * attention_flops_per_token(s, t_in / 2.0) / tp
    lin_flops = dm.prefill_flops / tp - attn_flops
    w_bytes = (dm.shared_weight_bytes + dm.expert_weight_bytes * expert_fraction(s, t_in)) * pp
    kv_bytes = kv_sequence_bytes_per_gpu(s, dm.dtype, t_in, tp, pp) * pp
    t = (max(lin_flops / dm.prefill_flops_per_s, w_bytes / dm.bytes_per_s)
         + max(attn_flops / dm.prefill_flops_per_s, kv_bytes / dm.bytes_per_s))
    if tp > 1:
        t += 2.0 * s.layers * ring_allreduce_s(t_in * dm.act_msg_bytes_per_token, tp, dm.link_bytes_per_s)
    if pp > 1:
        t += (pp - 1) * (t_in * dm.act_msg_bytes_per_token / dm.link_bytes_per_s + cal.P2P_LATENCY_S)
    t += moe_all_to_all_s(s, t_in, dm.ep, tp, dm.link_bytes_per_s, activation_bytes(dm.dtype))
    return t + cal.PREFILL_OVERHEAD_S + dm.forward_overhead_s


def check_ep(s: Shape, tp: int, ep: int) -> None:
    """Expert parallelism spreads whole experts over ``ep`` of the ``tp`` tensor-parallel GPUs of a stage (vLLM
    ``--enable-expert-parallel``: EP size = TP size x DP size); ``ep`` must divide ``tp`` and the experts."""
    if ep == 1:
        return
    if ep < 1 or tp % ep:
        raise InputError(f"ep = {ep} must be a divisor of tp = {tp}", fix="use ep = 1 or ep = tp")
    if not s.expert_params or s.experts <= 1:
        raise InputError(f"ep = {ep}: expert parallelism needs a mixture-of-experts model", fix="use ep = 1")
    if ep > s.experts:
        raise InputError(f"ep = {ep} is more than the model's {s.experts} experts", fix=f"use ep <= {s.experts}")


def estimate_inference(arch: ModelArch, hw: HardwareProfile, dtype: str, *, tp: int = 1, pp: int = 1,
                       input_tokens: int, output_tokens: int, batch: int | None = None,
                       memory_headroom: float = 0.1, max_batch_cap: int | None = None,
                       ep: int = 1) -> InferenceEstimate:
    """Predict one replica of ``tp`` x ``pp`` accelerators serving ``arch`` in ``dtype``.

    ``batch`` (default 1) is the concurrent sequences for ``memory``/``tpot_s`` (LLM) or the batch size
    (non-LLM). ``memory_headroom`` is the fraction of accelerator memory kept free. ``ep`` > 1 runs the experts
    expert-parallel over ``ep`` of the ``tp`` GPUs (see :func:`moe_all_to_all_s`).
    """
    check_dtype(dtype)
    b = 1 if batch is None else batch
    validate_shape(tp, pp, b)
    if input_tokens < 1 or output_tokens < 0:
        raise InputError(f"input_tokens must be >= 1 and output_tokens >= 0 (got {input_tokens}, {output_tokens})",
                         fix="give positive token counts")
    s = shape_of(arch)
    check_ep(s, tp, ep)
    overhead = overhead_for(hw)
    usable = hw.memory_bytes * (1.0 - memory_headroom)
    n = tp * pp
    if not s.llm:
        return _nonllm(s, hw, dtype, tp, b, input_tokens, usable, overhead, max_batch_cap)

    ctx = input_tokens + output_tokens
    mem = replica_memory(s, dtype, tp, pp, b, ctx, overhead)
    # largest batch: everything but per-sequence KV + per-sequence activations/logits is fixed
    act_tok = activation_elems_per_token(s, tp) * activation_bytes(dtype)
    fixed = mem.weights_bytes_per_gpu + overhead + cal.PREFILL_CHUNK_TOKENS * act_tok
    per_seq = (kv_sequence_bytes_per_gpu(s, dtype, ctx, tp, pp) + act_tok + s.vocab / tp * cal.LOGITS_BYTES)
    cap = cal.MAX_CONCURRENT_SEQUENCES if max_batch_cap is None else max_batch_cap
    max_batch = max(0, min(cap, int((usable - fixed) // per_seq))) if per_seq > 0 else 0
    dm = decode_model(s, hw, dtype, tp, pp, input_tokens, output_tokens, max_batch, ep)
    ttft = prefill_time_s(dm)
    tpot = dm.tpot(b)
    mb = max(1, max_batch)
    tpot_max = dm.tpot(mb)
    thr = dm.throughput_at(mb) if max_batch >= 1 else 0.0
    power = n * hw.power_w * cal.INFERENCE_POWER_FRACTION
    e_tok = power / thr if thr > 0 else power * tpot
    c_avg = input_tokens + output_tokens / 2.0
    mbf = max(1.0, b / pp)
    compute_t = mbf * (dm.flops_per_token + attention_flops_per_token(s, c_avg)) / n / dm.flops_per_s
    bytes_t = (dm.shared_weight_bytes + dm.expert_weight_bytes * expert_fraction(s, mbf)
               + mbf * dm.kv_read_bytes(c_avg)) / dm.bytes_per_s
    return InferenceEstimate(
        memory=mem, fits=mem.total_bytes_per_gpu <= usable, max_batch=max_batch, batch=b, ttft_s=ttft,
        tpot_s=tpot, tpot_s_at_max_batch=tpot_max, throughput_tokens_per_s=thr,
        requests_per_s=thr / output_tokens if output_tokens else 0.0,
        latency_s=ttft + max(0, output_tokens - 1) * tpot, energy_j_per_token=e_tok,
        energy_j_per_request=e_tok * max(1, output_tokens), capacity_bytes_per_gpu=hw.memory_bytes, gpus=n,
        bound="compute" if compute_t > bytes_t else "memory", decode=dm,
    )




def nonllm_batch_latency_s(s: Shape, hw: HardwareProfile, dtype: str, batch: int, seq: int,
                           flops_eff: float, tp: int = 1) -> tuple[float, str]:
    """Roofline latency of one batch: max(batch x FLOPs / achievable FLOP/s, (weights + activation traffic) /
    achievable bandwidth) + a fixed launch overhead. Activation traffic: each layer's output written and read
    once (CNN_ACTIVATION_TRAFFIC_PER_INPUT_ELEMENT for CNNs; ~8 h per token per layer for encoders)."""
    flops = batch * nonllm_flops(s, seq) / tp
    ab = activation_bytes(dtype)
    if s.transformer:
        traffic = batch * seq * s.layers * 8.0 * s.hidden * ab
    else:
        traffic = batch * s.input_elems * cal.CNN_ACTIVATION_TRAFFIC_PER_INPUT_ELEMENT * 2.0 * ab
    byts = (weights_bytes(s, dtype) + traffic) / tp
    tc = flops / (hw.peak_flops(dtype) * flops_eff)
    tm = byts / (hw.bandwidth_bytes_per_s * _bw_eff(hw))
    launch = (cal.CPU_NONLLM_LAUNCH_OVERHEAD_S if hw.kind == "cpu" else
              cal.NONLLM_LAUNCH_OVERHEAD_S if hw.kind in ("gpu", "jetson") else 0.0)
    return max(tc, tm) + launch, ("compute" if tc > tm else "memory")


def _nonllm(s: Shape, hw: HardwareProfile, dtype: str, tp: int, b: int, seq: int, usable: float,
            overhead: int, max_batch_cap: int | None) -> InferenceEstimate:
    mem = replica_memory(s, dtype, tp, 1, b, seq, overhead)
    per_sample = nonllm_activation_bytes(s, dtype, 1, seq) / tp
    free = usable - mem.weights_bytes_per_gpu - overhead
    cap = cal.MAX_NONLLM_BATCH if max_batch_cap is None else max_batch_cap
    if free < 0:
        max_batch = 0
    elif per_sample <= 0:
        max_batch = cap
    else:
        max_batch = max(0, min(cap, int(free // per_sample)))
    eff = _flops_eff(hw, cal.NONLLM_FLOPS_EFFICIENCY)
    lat, bound = nonllm_batch_latency_s(s, hw, dtype, b, seq, eff, tp)
    mb = max(1, max_batch)
    lat_max, _ = nonllm_batch_latency_s(s, hw, dtype, mb, seq, eff, tp)
    rps = mb / lat_max
    power = tp * hw.power_w * (cal.INFERENCE_POWER_FRACTION if hw.kind in ("gpu", "cpu") else cal.EDGE_POWER_FRACTION)
    return InferenceEstimate(
        memory=mem, fits=mem.total_bytes_per_gpu <= usable, max_batch=max_batch, batch=b, ttft_s=lat, tpot_s=0.0,
        tpot_s_at_max_batch=0.0, throughput_tokens_per_s=0.0, requests_per_s=rps, latency_s=lat,
        energy_j_per_token=None, energy_j_per_request=power * lat / b, capacity_bytes_per_gpu=hw.memory_bytes,
        gpus=tp, bound=bound, decode=None,
    )


def roofline_ridge(hw: HardwareProfile, dtype: str) -> float:
    """FLOPs per byte at which the hardware turns from memory- to compute-bound (Williams et al. 2009)."""
    return hw.peak_flops(dtype) / hw.bandwidth_bytes_per_s


def batch_for(est: InferenceEstimate, tpot_slo_s: float) -> int:
    """Largest concurrent batch whose TPOT meets ``tpot_slo_s`` (functional form of
    :meth:`InferenceEstimate.batch_for`)."""
    return est.batch_for(tpot_slo_s)

