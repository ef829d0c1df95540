"""The checkpoint's own precision: ``torch_dtype`` / ``dtype`` and ``quantization_config`` -> bytes of weights.

A published checkpoint stores most tensors at its ``torch_dtype`` (bf16 for nearly every model of 2024-2025) and,
when quantized, its projection matrices at the quantized format plus scales. What each format costs per weight:

- ``fp8`` (transformers FineGrainedFP8, DeepSeek-V3, Qwen3-FP8): 1 byte (E4M3) + one fp32 scale per
  ``weight_block_size`` block (128 x 128): 1 + 4/16384 bytes;
- ``mxfp4`` (gpt-oss): only the routed experts' matrices, 4-bit E2M1 + one 8-bit E8M0 scale per 32 values:
  0.5 + 1/32 bytes (OCP Microscaling Formats MX v1.0 spec, 2023; transformers' Mxfp4HfQuantizer converts only
  the MoE experts, ``modules_to_not_convert`` lists the rest);
- NVFP4 (ModelOpt ``quant_algo: NVFP4``, compressed-tensors 4-bit float groups of 16): 0.5 + 1/16 bytes (one FP8
  E4M3 scale per 16 values; NVIDIA, "Introducing NVFP4", 2025);
- ``awq`` / ``gptq``: ``bits``/8 + (fp16 scale + ``bits``-bit zero point) per ``group_size`` weights (Lin et al.
  2023; Frantar et al. 2022);
- ``compressed-tensors``: the weight scheme of its config groups (num_bits, type, strategy, group_size);
- ``bitsandbytes``: 4-bit NF4/FP4 with an fp32 absmax per 64 weights (Dettmers et al. 2023, QLoRA), or
  LLM.int8() with an fp32 scale per output row.

Only the text decoder's projection matrices (:data:`planner.models.tally.QUANTIZABLE`) are converted; embeddings,
the LM head, norms, biases, routers and vision/audio towers stay at ``torch_dtype``, as every one of these tools
does by default. ``modules_to_not_convert`` / ``ignore`` / ``exclude_modules`` can keep more at ``torch_dtype``
(e.g. gpt-oss's attention).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from planner.errors import ModelConfigError
from planner.models.tally import QUANTIZABLE, Tally

TORCH_DTYPES: dict[str, tuple[str, float]] = {
    "float32": ("fp32", 4.0), "float": ("fp32", 4.0), "fp32": ("fp32", 4.0),
    "bfloat16": ("bf16", 2.0), "bf16": ("bf16", 2.0),
    "float16": ("fp16", 2.0), "half": ("fp16", 2.0), "fp16": ("fp16", 2.0),
    "float8_e4m3fn": ("fp8", 1.0), "float8_e5m2": ("fp8", 1.0),
}
FP8_BLOCK_SCALE = 4.0
MXFP4_BYTES = 0.5 + 1.0 / 32
NVFP4_BYTES = 0.5 + 1.0 / 16
BNB4_BYTES = 0.5 + 4.0 / 64


@dataclass(frozen=True)
class Precision:
    """The checkpoint's weight precision: the planner dtype of its bulk, exact bytes, and a description."""

    dtype: str | None
    weight_bytes: int | None
    description: str | None
    expert_bytes: int | None = None


def _scheme_bytes(bits: int, group: int | None, *, zero: bool = True, scale_bytes: float = 2.0) -> float:
    g = group if group and group > 0 else 4096  # per-channel: one scale per row of ~4k inputs
    return bits / 8.0 + (scale_bytes + (bits / 8.0 if zero else 0.0)) / g


def _int_dtype(bits: int) -> str:
    return "int4" if bits <= 4 else "int8"


def _excluded(patterns: list[str]) -> set[str]:
    """Which categories a quantizer's exclusion list keeps at torch_dtype (matched on module names)."""
    out: set[str] = set()
    for p in patterns:
        low = p.lower()
        if "norm" in low or re.search(r"(mlp|moe)\.(gate|router)$", low):
            continue  # norms and routers are never quantized anyway
        if re.search(r"(self_attn|attn|attention)(\.[qkvo]_proj|\.qkv_proj)?\W*$", low) and "mlp" not in low:
            out.add("attn")
        if "shared_expert" in low:
            out.add("shared")
        if re.search(r"mixer|linear_attn|mamba", low):
            out.add("mixer")
        if re.search(r"(^|[.:])experts?($|[.*])", low) and "shared" not in low:
            out.add("experts")
    return out


def _patterns(qc: dict[str, Any], *keys: str) -> list[str]:
    for key in keys:
        v = qc.get(key)
        if isinstance(v, list):
            return [x for x in v if isinstance(x, str)][:100_000]
    return []


def _describe(qc: dict[str, Any], where: str) -> tuple[str, float, set[str], str]:
    """(planner dtype, bytes per quantized weight, categories quantized, words) for a quantization_config."""
    method = str(qc.get("quant_method") or qc.get("quant_algo") or "").lower()
    if method in ("fp8", "fbgemm_fp8"):
        block = qc.get("weight_block_size")
        if isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and b > 0 for b in block):
            return "fp8", 1.0 + FP8_BLOCK_SCALE / (block[0] * block[1]), set(QUANTIZABLE) - _excluded(
                _patterns(qc, "modules_to_not_convert", "ignored_layers")), f"fp8 e4m3, {block[0]}x{block[1]} blocks"
        return "fp8", 1.0, set(QUANTIZABLE) - _excluded(_patterns(qc, "modules_to_not_convert")), "fp8 e4m3"
    if method == "mxfp4":
        keep = _excluded(_patterns(qc, "modules_to_not_convert"))
        return "fp4", MXFP4_BYTES, {"experts"} - keep, "MXFP4 MoE experts (4-bit, 8-bit scale per 32)"
    if method in ("awq", "gptq"):
        bits = qc.get("bits", qc.get("w_bit", 4))
        group = qc.get("group_size", qc.get("q_group_size", 128))
        if not isinstance(bits, int) or bits not in (2, 3, 4, 8):
            raise ModelConfigError(f"{where}: quantization_config bits = {bits!r}: must be 2, 3, 4 or 8",
                                   fix="use the config.json from the model's repository unchanged")
        group = group if isinstance(group, int) else 128
        # both formats store packed zero points (GPTQ's qzeros even when symmetric)
        return (_int_dtype(bits), _scheme_bytes(bits, group, zero=True),
                set(QUANTIZABLE) - _excluded(_patterns(qc, "modules_to_not_convert")),
                f"{method} int{bits}, group {group}")
    if method == "modelopt" or method in ("nvfp4", "w4a16_awq", "w4a8_awq"):
        algo = str(qc.get("quant_algo") or method).upper()
        keep = _excluded(_patterns(qc, "exclude_modules", "ignore"))
        if "FP4" in algo:
            return "fp4", NVFP4_BYTES, set(QUANTIZABLE) - keep, "NVFP4 (4-bit, fp8 scale per 16)"
        if "FP8" in algo:
            return "fp8", 1.0, set(QUANTIZABLE) - keep, "fp8 (ModelOpt)"
        if "INT4" in algo or "AWQ" in algo:
            return "int4", _scheme_bytes(4, int(qc.get("group_size") or 128)), set(QUANTIZABLE) - keep, algo
        return "fp8", 1.0, set(QUANTIZABLE) - keep, algo
    if method == "compressed-tensors":
        groups = qc.get("config_groups")
        weights: dict[str, Any] = {}
        if isinstance(groups, dict):
            for g in groups.values():
                if isinstance(g, dict) and isinstance(g.get("weights"), dict):
                    weights = g["weights"]
                    break
        bits = weights.get("num_bits", 8)
        bits = bits if isinstance(bits, int) and 1 <= bits <= 16 else 8
        kind = str(weights.get("type", "int"))
        group = weights.get("group_size")
        group = group if isinstance(group, int) and group > 0 else None
        keep = _excluded(_patterns(qc, "ignore"))
        if kind == "float" and bits == 4:
            return "fp4", NVFP4_BYTES, set(QUANTIZABLE) - keep, "compressed-tensors NVFP4"
        if kind == "float":
            block = weights.get("block_structure")
            extra = 0.0
            if isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and b > 0 for b in block):
                extra = FP8_BLOCK_SCALE / (block[0] * block[1])
            return "fp8", 1.0 + extra, set(QUANTIZABLE) - keep, "compressed-tensors fp8"
        sym = bool(weights.get("symmetric", True))
        return (_int_dtype(bits), _scheme_bytes(bits, group, zero=not sym), set(QUANTIZABLE) - keep,
                f"compressed-tensors int{bits}" + (f", group {group}" if group else ""))
    if method == "bitsandbytes" or qc.get("load_in_4bit") or qc.get("load_in_8bit"):
        keep = _excluded(_patterns(qc, "llm_int8_skip_modules"))
        if qc.get("load_in_4bit"):
            return "int4", BNB4_BYTES, set(QUANTIZABLE) - keep, "bitsandbytes 4-bit"
        return "int8", 1.0 + 4.0 / 4096, set(QUANTIZABLE) - keep, "bitsandbytes LLM.int8()"
    return "", 0.0, set(), f"quantization {method or 'unknown'!r} not recognised: weights at torch_dtype"


def checkpoint_precision(data: dict[str, Any], tally: Tally, where: str,
                         quant_override: dict[str, Any] | None = None) -> Precision:
    """The checkpoint's weight dtype and bytes from ``torch_dtype`` / ``dtype`` and ``quantization_config``
    (or a ModelOpt ``hf_quant_config.json`` passed as ``quant_override``)."""
    raw = data.get("torch_dtype") or data.get("dtype")
    if raw is None:
        for sub in ("text_config", "llm_config"):
            s = data.get(sub)
            if isinstance(s, dict) and (s.get("torch_dtype") or s.get("dtype")):
                raw = s.get("torch_dtype") or s.get("dtype")
                break
    base = TORCH_DTYPES.get(str(raw).removeprefix("torch.")) if isinstance(raw, str) else None
    qc = quant_override if quant_override is not None else data.get("quantization_config")
    if base is None and not isinstance(qc, dict):
        return Precision(None, None, None)
    base_name, base_bytes = base or ("bf16", 2.0)
    experts = tally.routed_expert_params
    if not isinstance(qc, dict):
        return Precision(base_name, round(tally.total * base_bytes), None, round(experts * base_bytes))
    qdtype, qbytes, quantized, words = _describe(qc, where)
    total = expert_total = 0.0
    for (component, category), n in tally.counts.items():
        q = component == "text" and category in quantized
        b = n * (qbytes if q else base_bytes)
        total += b
        if category in ("experts", "expert_bias"):
            expert_total += b
    return Precision(qdtype or base_name, round(total), words, round(expert_total))
