"""Inference memory of one replica: weights (at the checkpoint's own precision or quantized), each layer's KV cache
or recurrent state as it really is (Pope et al. 2022; vLLM PagedAttention, Kwon et al. 2023), transient
activations and the runtime's overhead, per GPU under tensor parallelism (Megatron-LM, Shoeybi et al. 2019) and
pipeline stages."""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.errors import InputError
from planner.estimator import calibration as cal
from planner.estimator.dtypes import (
    DTYPE_BYTES,
    QUANTIZED,
    activation_bytes,
    check_dtype,
    kv_dtype,
    weight_bytes_per_param,
)
from planner.estimator.hardware import HardwareProfile
from planner.estimator.shape import Shape, shape_of
from planner.models.arch import ModelArch


def _emb_bpp(dtype: str) -> float:
    bpp = weight_bytes_per_param(dtype)
    return 2.0 if (dtype in QUANTIZED and cal.QUANTIZED_KEEPS_EMBEDDINGS_16BIT) else bpp


def weights_bytes(s: Shape, dtype: str) -> float:
    """Stored weight bytes. At the checkpoint's own precision: its exact bytes (from its quantization_config or
    safetensors headers). Otherwise quantized dtypes keep embeddings / LM head and vision / audio towers at 16 bit
    (AutoAWQ, AutoGPTQ, ModelOpt skip them; see calibration.QUANTIZED_KEEPS_EMBEDDINGS_16BIT)."""
    if s.native_weight_bytes and dtype == s.native_dtype:
        return float(s.native_weight_bytes)
    return s.body_params * weight_bytes_per_param(dtype) + (
        s.embed_params + s.lm_head_params + s.tower_params) * _emb_bpp(dtype)


def streamed_weight_bytes(s: Shape, dtype: str) -> tuple[float, float]:
    """(shared, all routed experts) weight bytes a decode step streams, whole model: the shared body and the LM
    head every step, the experts as far as tokens route to them. The embedding table is only gathered (a row per
    token) and the towers run once per image. At the checkpoint's own precision the experts cost their stored
    bytes and the rest the checkpoint's average over its other weights (gpt-oss: MXFP4 experts, bf16 rest)."""
    if s.native_weight_bytes and dtype == s.native_dtype and s.native_expert_bytes is not None:
        total_params = s.body_params + s.embed_params + s.lm_head_params + s.tower_params
        rest = max(1, total_params - s.expert_params)
        avg = (s.native_weight_bytes - s.native_expert_bytes) / rest
        return (s.shared_body_params + s.lm_head_math_params) * avg, float(s.native_expert_bytes)
    bpp = weight_bytes_per_param(dtype)
    return s.shared_body_params * bpp + s.lm_head_math_params * _emb_bpp(dtype), s.expert_params * bpp


def kv_elem_bytes(dtype: str) -> float:
    return DTYPE_BYTES[kv_dtype(dtype)]


def state_elem_bytes(dtype: str) -> float:
    """Bytes per element of a recurrent (Mamba / DeltaNet) state: the model's activation dtype (vLLM's
    ``mamba_ssm_cache_dtype`` "auto"), never fp8."""
    return activation_bytes(dtype)


def kv_bytes_per_token(s: Shape, dtype: str) -> int:
    """KV bytes one more token adds once every window is full: the layers whose cache grows with the context
    (full attention: K and V, 2 x kv_heads x head_dim per layer, Pope et al. 2022, GQA Ainslie et al. 2023;
    multi-head latent attention: kv_lora_rank + qk_rope_head_dim per layer, DeepSeek-V2 arXiv:2405.04434).
    Sliding-window, chunked, linear-attention and state-space layers add nothing past their window.
    Llama-2-7B fp16: 2 x 32 x 32 x 128 x 2 = 512 KiB."""
    return int(sum(g.kv_elems_per_token for g in s.kv_groups if g.grows) * kv_elem_bytes(dtype))


def kv_bytes_per_token_all_layers(s: Shape, dtype: str) -> int:
    """KV bytes per token while every window is still filling: all caching layers (cross-attention aside)."""
    return int(s.kv_elems_per_token * kv_elem_bytes(dtype))


def kv_bytes_per_sequence(s: Shape, dtype: str, tokens: int) -> int:
    """KV bytes one sequence of ``tokens`` tokens holds, each layer as it really is: full / MLA layers every token,
    sliding and chunked layers at most their window, cross-attention its encoder positions (once per request)."""
    kvb = kv_elem_bytes(dtype)
    return int(sum(g.kv_elems_per_token * g.kept(tokens) for g in s.kv_groups) * kvb)


def state_bytes_per_sequence(s: Shape, dtype: str) -> int:
    """Fixed recurrent state per sequence: linear-attention (Gated DeltaNet) and Mamba-2 layers' state plus
    their causal-convolution window, whatever the length (Dao & Gu 2024; Yang et al. 2024)."""
    return int(sum(g.state_elems for g in s.kv_groups) * state_elem_bytes(dtype))


def _paged(tokens: float) -> float:
    blk = cal.KV_BLOCK_TOKENS
    return float(-(-math.ceil(tokens) // blk) * blk) if tokens > 0 else 0.0


def kv_sequence_bytes_per_gpu(s: Shape, dtype: str, tokens: int, tp: int, pp: int) -> float:
    """One sequence's KV + state on one GPU: each group's kept tokens rounded up to paged-KV blocks (vLLM
    ``block_size`` 16), split over pp stages and over min(tp, shards) ranks (KV heads; MLA is replicated on every
    rank, vLLM/SGLang keep the whole latent per rank)."""
    kvb, sb = kv_elem_bytes(dtype), state_elem_bytes(dtype)
    total = 0.0
    for g in s.kv_groups:
        split = pp * max(1, min(tp, g.shards))
        total += (g.kv_elems_per_token * _paged(g.kept(tokens)) * kvb + g.state_elems * sb) / split
    return total


def kv_tokens(s: Shape, context_tokens: int) -> int:
    """Tokens of KV a sequence holds: its context, capped by a sliding window (Mistral 7B: 4096), rounded up to
    whole paged-KV blocks (vLLM ``block_size`` 16)."""
    t = context_tokens if s.kv_window is None else min(context_tokens, s.kv_window)
    blk = cal.KV_BLOCK_TOKENS
    return -(-t // blk) * blk


def kv_shards(s: Shape, tp: int) -> int:
    """GPUs the KV heads split over: min(tp, kv_heads). With tp > kv_heads each GPU keeps one (replicated) KV
    head (vLLM / TensorRT-LLM replicate KV heads under GQA)."""
    return max(1, min(tp, s.kv_heads))


def activation_elems_per_token(s: Shape, tp: int) -> float:
    """Live activation elements per in-flight token at the peak of an inference forward (no autograd): residual
    + normed input (2h), Q/K/V and attention output ((q + 2 kv + q)/tp), then the MLP's gate/up/product
    (3 i k / tp, k experts per token) (Megatron-LM TP splits the per-head / per-channel tensors)."""
    kvd = s.kv_heads * s.head_dim
    mlp = (3 if s.gated else 2) * s.intermediate * s.experts_per_token
    return 2.0 * s.hidden + max((2.0 * s.attn_dim + 2.0 * kvd), mlp) / tp


@dataclass(frozen=True, slots=True)
class InferenceMemory:
    """Bytes for one replica; ``*_per_gpu`` is what one accelerator must hold."""

    weights_bytes: int
    weights_bytes_per_gpu: int
    kv_cache_bytes_per_token: int
    kv_cache_bytes_per_gpu: int
    activation_bytes_per_gpu: int
    overhead_bytes_per_gpu: int
    total_bytes_per_gpu: int


def _llm_activation_bytes(s: Shape, dtype: str, tp: int, batch: int, context_tokens: int) -> float:
    """Transient forward activations: the tokens of one forward pass (a prefill chunk of at most
    ``PREFILL_CHUNK_TOKENS``, or one token per sequence in decode) x live elements per token, plus fp32 logits
    of the last position of each sequence (vocab split over TP)."""
    tokens = min(batch * context_tokens, max(cal.PREFILL_CHUNK_TOKENS, batch))
    act = tokens * activation_elems_per_token(s, tp) * activation_bytes(dtype)
    logits = batch * s.vocab / tp * cal.LOGITS_BYTES
    return act + logits


def nonllm_activation_bytes(s: Shape, dtype: str, batch: int, context_tokens: int) -> float:
    """Peak live activations of a non-LLM forward. Encoders (BERT, ViT): per token as an LLM layer, plus one
    layer's attention scores (heads x seq^2, eager attention). CNNs: CNN_PEAK_ACTIVATION_PER_INPUT_ELEMENT x
    input elements."""
    ab = activation_bytes(dtype)
    if s.transformer:
        seq = context_tokens
        return batch * (seq * activation_elems_per_token(s, 1) + s.heads * seq * seq) * ab
    if s.input_elems:
        return batch * s.input_elems * cal.CNN_PEAK_ACTIVATION_PER_INPUT_ELEMENT * ab
    return 0.0


def overhead_for(hw: HardwareProfile) -> int:
    """Runtime overhead bytes per accelerator by hardware kind (see calibration)."""
    if hw.kind == "gpu":
        return cal.GPU_RUNTIME_OVERHEAD_BYTES
    if hw.kind == "cpu":
        return cal.CPU_RUNTIME_OVERHEAD_BYTES
    return cal.EDGE_RUNTIME_OVERHEAD_BYTES.get(hw.kind, cal.GPU_RUNTIME_OVERHEAD_BYTES)


def inference_memory(arch: ModelArch, dtype: str, *, tp: int = 1, pp: int = 1, batch: int = 1,
                     context_tokens: int, overhead_bytes: int | None = None) -> InferenceMemory:
    """Per-GPU inference memory at ``batch`` sequences of ``context_tokens`` (input + output) tokens.

    weights / (tp pp) + KV (batch x context x kv/token) / (pp x min(tp, kv_heads)) + activations + overhead.
    Non-LLMs (no decoder layers): weights + activations from the input size; no KV cache. ``overhead_bytes``
    defaults to a GPU serving runtime's (calibration.GPU_RUNTIME_OVERHEAD_BYTES).
    """
    check_dtype(dtype)
    validate_shape(tp, pp, batch)
    s = shape_of(arch)
    return replica_memory(s, dtype, tp, pp, batch, context_tokens,
                   cal.GPU_RUNTIME_OVERHEAD_BYTES if overhead_bytes is None else overhead_bytes)


def replica_memory(s: Shape, dtype: str, tp: int, pp: int, batch: int, context_tokens: int,
            overhead: int) -> InferenceMemory:
    w = weights_bytes(s, dtype)
    w_gpu = w / (tp * pp)
    if s.llm:
        kv_tok = kv_bytes_per_token(s, dtype)
        kv_gpu = batch * kv_sequence_bytes_per_gpu(s, dtype, context_tokens, tp, pp)
        act = _llm_activation_bytes(s, dtype, tp, batch, context_tokens)
    else:
        kv_tok, kv_gpu = 0, 0.0
        act = nonllm_activation_bytes(s, dtype, batch, context_tokens) / tp
    total = int(w_gpu) + int(kv_gpu) + int(act) + overhead
    return InferenceMemory(
        weights_bytes=int(w), weights_bytes_per_gpu=int(w_gpu), kv_cache_bytes_per_token=kv_tok,
        kv_cache_bytes_per_gpu=int(kv_gpu), activation_bytes_per_gpu=int(act), overhead_bytes_per_gpu=overhead,
        total_bytes_per_gpu=total,
    )


def validate_shape(tp: int, pp: int, batch: int) -> None:
    if tp < 1 or pp < 1 or batch < 1:
        raise InputError(f"tp, pp and batch must be >= 1 (got tp={tp}, pp={pp}, batch={batch})",
                         fix="pass positive integers")
