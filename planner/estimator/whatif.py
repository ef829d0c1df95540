"""What-ifs: how memory, latency and energy change under quantization, pruning or distillation.

Each function returns rows (baseline first) of :class:`WhatIfRow`, with changes relative to the baseline as
fractions (-0.5 = halved). Quality effects are not estimated; each row carries the literature's note instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from planner.catalog.schema import Accelerator, EdgeDevice
from planner.errors import InputError
from planner.estimator.dtypes import check_dtype, weight_bytes_per_param
from planner.estimator.hardware import HardwareProfile, profile
from planner.estimator.inference import InferenceEstimate, estimate_inference, weights_bytes
from planner.estimator.shape import shape_of
from planner.models.arch import ModelArch

QUALITY_NOTES: dict[str, str] = {
    "fp32": "reference precision",
    "tf32": "reference precision (TF32 math)",
    "bf16": "no measurable loss vs fp32 for inference",
    "fp16": "no measurable loss vs fp32 for inference",
    "fp8": "FP8 E4M3 with per-tensor scales: <0.5% accuracy change on LLM benchmarks (Micikevicius et al. 2022; "
           "NVIDIA ModelOpt FP8 checkpoints)",
    "int8": "W8A8 SmoothQuant: <1% accuracy change up to 175B (Xiao et al. 2022); LLM.int8() weight-only is lossless "
            "(Dettmers et al. 2022)",
    "int4": "W4A16 group-128 AWQ/GPTQ: ~0.1-0.5 perplexity increase on 7-70B LLMs (Lin et al. 2023, Frantar et al. "
            "2022); larger loss on small models",
    "fp4": "MXFP4 / NVFP4 weights: lossless where the checkpoint ships in it (gpt-oss, trained with MXFP4 experts); "
           "post-training NVFP4 ~1% accuracy change on LLM benchmarks (NVIDIA, Introducing NVFP4, 2025)",
}


@dataclass(frozen=True, slots=True)
class WhatIfRow:
    label: str
    dtype: str
    params: int
    weights_bytes: int
    storage_bytes: int
    memory_bytes_per_gpu: int
    fits: bool
    latency_s: float
    """TPOT at batch 1 (LLM) or one inference at batch 1 (non-LLM)"""
    ttft_s: float | None
    throughput: float
    """saturated output tokens/s (LLM) or inferences/s (non-LLM) per replica"""
    energy_j: float
    """per output token (LLM) or per inference (non-LLM)"""
    memory_change: float
    latency_change: float
    energy_change: float
    throughput_change: float
    note: str


def _hw(hw: HardwareProfile | Accelerator | EdgeDevice) -> HardwareProfile:
    return hw if isinstance(hw, HardwareProfile) else profile(hw)


def _default_dtype(hw: HardwareProfile) -> str:
    for d in ("bf16", "fp16", "fp32", "int8"):
        if d in hw.flops_per_s:
            return d
    return next(iter(hw.flops_per_s))


def _row(label: str, arch: ModelArch, e: InferenceEstimate, dtype: str, base: WhatIfRow | None, note: str,
         storage_bytes: int | None = None, memory_delta: int = 0) -> WhatIfRow:
    llm = e.decode is not None
    lat = e.tpot_s if llm else e.latency_s
    thr = e.throughput_tokens_per_s if llm else e.requests_per_s
    energy = (e.energy_j_per_token or 0.0) if llm else e.energy_j_per_request
    mem = e.memory.total_bytes_per_gpu + memory_delta
    store = e.memory.weights_bytes if storage_bytes is None else storage_bytes

    def ch(new: float, old: float | None) -> float:
        return 0.0 if not old else new / old - 1.0

    return WhatIfRow(
        label=label, dtype=dtype, params=arch.params, weights_bytes=e.memory.weights_bytes, storage_bytes=store,
        memory_bytes_per_gpu=mem, fits=e.fits and mem <= e.capacity_bytes_per_gpu, latency_s=lat,
        ttft_s=e.ttft_s if llm else None, throughput=thr, energy_j=energy,
        memory_change=ch(mem, base.memory_bytes_per_gpu if base else None),
        latency_change=ch(lat, base.latency_s if base else None),
        energy_change=ch(energy, base.energy_j if base else None),
        throughput_change=ch(thr, base.throughput if base else None), note=note,
    )


def quantization_whatif(arch: ModelArch, hw: HardwareProfile | Accelerator | EdgeDevice, dtypes: Iterable[str],
                        *, baseline: str | None = None, input_tokens: int = 512, output_tokens: int = 256,
                        tp: int = 1, memory_headroom: float = 0.1) -> list[WhatIfRow]:
    """One row per dtype (baseline first: ``baseline`` or the hardware's 16-bit dtype)."""
    prof = _hw(hw)
    base_dt = check_dtype(baseline or _default_dtype(prof))
    rows: list[WhatIfRow] = []
    order = [base_dt, *[check_dtype(d) for d in dtypes if d != base_dt]]
    for d in order:
        e = estimate_inference(arch, prof, d, tp=tp, input_tokens=input_tokens, output_tokens=output_tokens,
                               memory_headroom=memory_headroom)
        rows.append(_row(d if d != base_dt else f"{d} (baseline)", arch, e, d, rows[0] if rows else None,
                         QUALITY_NOTES[d]))
    return rows


def csr_bytes(nnz: float, rows: float, *, value_bytes: float, cols: int) -> float:
    """Compressed sparse row storage: nnz values + nnz column indices (int16 when cols <= 65,536, else int32)
    + (rows + 1) int32 row pointers (Saad, Iterative Methods for Sparse Linear Systems, Sec. 3.4)."""
    idx = 2.0 if cols <= 65_536 else 4.0
    return nnz * (value_bytes + idx) + (rows + 1) * 4.0


def break_even_sparsity(value_bytes: float, index_bytes: float = 2.0) -> float:
    """Unstructured sparsity above which CSR is smaller than dense: 1 - v / (v + i). fp16 + int16: 50%;
    int8 + int16: 67%; fp32 + int32: 50%."""
    return 1.0 - value_bytes / (value_bytes + index_bytes)


def _structured(arch: ModelArch, sp: float) -> ModelArch:
    """A model with fraction ``sp`` of attention heads and MLP channels removed (LLM-Pruner, Ma et al. 2023;
    Sheared-LLaMA, Xia et al. 2023), or of every conv layer's filters (Li et al. 2017: FLOPs and params scale
    ~(1 - s)^2 as both the input and the output channels of inner layers go)."""
    s = shape_of(arch)
    keep = 1.0 - sp
    if not s.transformer:
        f = keep * keep
        return arch.model_copy(update={
            "params": max(1, int(arch.params * f)), "active_params": max(1, int(arch.active_params * f)),
            "flops_per_inference": arch.flops_per_inference * f if arch.flops_per_inference else None})
    kv = max(1, round(s.kv_heads * keep))
    group = max(1, s.heads // max(1, s.kv_heads))
    heads = kv * group  # GQA groups stay intact: drop whole KV groups with their query heads
    inter = max(1, round(s.intermediate * keep))
    per_layer_old = (2 * s.hidden * s.heads * s.head_dim + 2 * s.hidden * s.kv_heads * s.head_dim
                     + (3 if s.gated else 2) * s.hidden * s.intermediate * s.experts)
    per_layer_new = (2 * s.hidden * heads * s.head_dim + 2 * s.hidden * kv * s.head_dim
                     + (3 if s.gated else 2) * s.hidden * inter * s.experts)
    removed = s.layers * (per_layer_old - per_layer_new)
    mlp_old = (3 if s.gated else 2) * s.hidden * s.intermediate
    mlp_new = (3 if s.gated else 2) * s.hidden * inter
    active_removed = s.layers * (per_layer_old - per_layer_new
                                 - (mlp_old - mlp_new) * (s.experts - s.experts_per_token))
    return arch.model_copy(update={
        "name": f"{arch.name}-pruned{round(sp * 100)}", "params": max(1, arch.params - removed),
        "active_params": max(1, arch.active_params - active_removed), "attention_heads": heads, "kv_heads": kv,
        "head_dim": s.head_dim, "intermediate_size": inter})


def pruning_whatif(arch: ModelArch, hw: HardwareProfile | Accelerator | EdgeDevice,
                   sparsity: float | Sequence[float], structured: bool, *, dtype: str | None = None,
                   input_tokens: int = 512, output_tokens: int = 256, memory_headroom: float = 0.1,
                   ) -> list[WhatIfRow]:
    """Rows for the dense baseline and each sparsity level.

    Unstructured (magnitude / SparseGPT, Frantar & Alistarh 2023): weights may be stored in CSR, which only
    saves storage and memory above :func:`break_even_sparsity`; dense kernels see no FLOP or bandwidth saving,
    so latency and energy are the baseline's. Structured: heads and MLP channels (or conv filters) are removed,
    so memory, FLOPs, bytes moved and the KV cache all shrink (LLM-Pruner, Ma et al. 2023).
    """
    prof = _hw(hw)
    dt = check_dtype(dtype or _default_dtype(prof))
    levels = [sparsity] if isinstance(sparsity, (int, float)) else list(sparsity)
    for sp in levels:
        if not 0.0 <= sp < 1.0:
            raise InputError(f"sparsity must be in [0, 1) (got {sp})", fix="give a fraction such as 0.5")

    def est(a: ModelArch) -> InferenceEstimate:
        return estimate_inference(a, prof, dt, input_tokens=input_tokens, output_tokens=output_tokens,
                                  memory_headroom=memory_headroom)

    base_e = est(arch)
    rows = [_row(f"dense {dt} (baseline)", arch, base_e, dt, None, "no pruning")]
    s = shape_of(arch)
    for sp in levels:
        if structured:
            pruned = _structured(arch, sp)
            rows.append(_row(f"structured {sp:.0%}", pruned, est(pruned), dt, rows[0],
                             "structured pruning needs recovery fine-tuning; quality loss grows quickly past ~20-30%"
                             " on LLMs (LLM-Pruner, Ma et al. 2023)"))
            continue
        vb = weight_bytes_per_param(dt)
        dense_body = s.body_params * vb
        cols = s.hidden or 4096
        rows_n = s.body_params / cols
        sparse_body = csr_bytes(s.body_params * (1.0 - sp), rows_n, value_bytes=vb, cols=max(cols, s.intermediate))
        saved = max(0.0, dense_body - sparse_body)
        storage = int(weights_bytes(s, dt) - saved)
        note = (f"CSR smaller than dense above {break_even_sparsity(vb, 2.0 if cols <= 65_536 else 4.0):.0%} "
                "sparsity; no speed-up with dense kernels (unstructured sparsity, SparseGPT)")
        rows.append(_row(f"unstructured {sp:.0%}", arch, base_e, dt, rows[0], note, storage_bytes=storage,
                         memory_delta=-int(saved)))
    return rows


def distillation_whatif(arch: ModelArch, student: ModelArch, hw: HardwareProfile | Accelerator | EdgeDevice, *,
                        dtype: str | None = None, input_tokens: int = 512, output_tokens: int = 256,
                        memory_headroom: float = 0.1) -> list[WhatIfRow]:
    """Teacher (baseline) vs a distilled student on the same hardware and dtype (Hinton et al. 2015;
    DistilBERT, Sanh et al. 2019: 40% smaller, 60% faster, 97% of BERT's GLUE score)."""
    prof = _hw(hw)
    dt = check_dtype(dtype or _default_dtype(prof))
    rows: list[WhatIfRow] = []
    for label, a in ((f"teacher {arch.name} (baseline)", arch), (f"student {student.name}", student)):
        e = estimate_inference(a, prof, dt, input_tokens=input_tokens, output_tokens=output_tokens,
                               memory_headroom=memory_headroom)
        note = "baseline" if not rows else (
            f"{a.params / arch.params:.0%} of the teacher's parameters; quality depends on the distillation data "
            "(DistilBERT kept 97% of BERT's GLUE score at 60% of its size)")
        rows.append(_row(label, a, e, dt, rows[0] if rows else None, note))
    return rows
