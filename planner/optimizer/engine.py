"""LLM engine settings of a part (:class:`~planner.plan.Engine`), decided once from the candidate the optimizer
chose and the estimator's accounting, so the vLLM / TensorRT-LLM configs the emitters write agree with the plan.

- ``max_num_seqs``: the largest batch whose time per output token with prefill stalls meets the TPOT SLO, capped
  by what fits in memory (:mod:`planner.optimizer.slo`); the batch the simulation that sized the plan ran with.
- ``max_num_batched_tokens``: vLLM's own default for the GPU (``EngineArgs`` batch defaults: 8192 on GPUs of
  70 GiB or more that are not A100s, else 2048), at least ``max_num_seqs`` so a full decode step fits; the
  simulation used the same (``ReplicaOption.max_num_batched_tokens``).
- ``max_model_len``: the workload's longest request (prompt, images, output; the longest of a length distribution),
  never above the model's context.
- ``gpu_memory_utilization``: 1 - the spec's ``memory_headroom`` (vLLM reserves this share of the GPU).
- ``kv_cache_dtype``: fp8 with fp8 weights (the estimator's :func:`planner.estimator.dtypes.kv_dtype`), else auto.
- ``quantization`` / ``checkpoint``: the plan's dtype against the checkpoint's own precision (a checkpoint of
  unknown precision is taken as 16-bit, as Hugging Face LLM checkpoints are unless their config says otherwise):
  a 16-bit plan loads the model's own weights (cast by the engine), fp8 quantizes them at load time, int8 / int4
  need a checkpoint already quantized in that format.
"""

from __future__ import annotations

from planner.estimator.dtypes import kv_dtype
from planner.models import image_context_tokens
from planner.models.arch import ModelArch
from planner.plan import Engine
from planner.simulator.engines import vllm_defaults
from planner.specs import Spec

_SIXTEEN_BIT = frozenset({"bf16", "fp16", "fp32"})
_QUANTIZATION = {"fp8": "fp8"}
"""Quantization vLLM applies at load time to a 16-bit checkpoint (dynamic FP8: ``--quantization fp8``,
https://docs.vllm.ai/en/latest/features/quantization/fp8.html). int8 / int4 / fp4 need a checkpoint already
quantized in that format (W8A8, AWQ/GPTQ, MXFP4/NVFP4), whose method vLLM reads from its config."""


def engine_settings(spec: Spec, arch: ModelArch, *, dtype: str, batch: int, ep: int, memory_bytes: int,
                    accelerator: str, batched_tokens: int | None = None) -> Engine:
    w = spec.workload
    assert w.kind == "inference"
    context = w.max_input_tokens + image_context_tokens(arch, w.images_per_request) + w.max_output_tokens
    max_len = min(context, arch.max_context) if arch.max_context else context
    d_tokens, _ = vllm_defaults(memory_bytes, accelerator)
    shipped = arch.dtype or "bf16"
    if dtype == shipped or (dtype in _SIXTEEN_BIT and shipped in _SIXTEEN_BIT):
        quant, checkpoint = None, "the model's own weights"
    elif dtype in _QUANTIZATION and shipped in _SIXTEEN_BIT:
        quant, checkpoint = _QUANTIZATION[dtype], "the model's own weights, quantized by the engine at load time"
    else:
        quant, checkpoint = None, f"a {dtype} checkpoint of the model (the engine reads its quantization method)"
    return Engine(
        max_num_seqs=max(1, batch), max_num_batched_tokens=batched_tokens or max(d_tokens, batch),
        max_model_len=max(1, max_len),
        gpu_memory_utilization=round(1.0 - spec.constraints.memory_headroom, 4),
        kv_cache_dtype="fp8" if kv_dtype(dtype) == "fp8" else "auto", quantization=quant,
        enable_expert_parallel=ep > 1, checkpoint=checkpoint,
    )
