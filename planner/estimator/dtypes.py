"""Bytes per element of each dtype, and what a quantized weight really costs (payload + scales).

Sources: IEEE 754 / OCP FP8 (E4M3) sizes; GPTQ (Frantar et al. 2022) and AWQ (Lin et al. 2023) for group-wise
int4 with fp16 scales and packed int4 zero points; LLM.int8() / SmoothQuant for per-channel int8 scales.
"""

from __future__ import annotations

from typing import Final

from planner.errors import InputError
from planner.estimator import calibration as cal

DTYPE_BYTES: Final[dict[str, float]] = {
    "fp32": 4.0,
    "tf32": 4.0,  # stored as fp32; TF32 is a tensor-core math mode
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "fp4": 0.5,  # MXFP4 / NVFP4 payload (E2M1)
}

QUANTIZED: Final = frozenset({"fp8", "int8", "int4", "fp4"})

PRECISION_RANK: Final[dict[str, int]] = {"fp32": 4, "tf32": 4, "fp16": 3, "bf16": 3, "fp8": 2, "int8": 2,
                                         "int4": 1, "fp4": 1}
"""Coarse precision order (bits per weight): what "above the shipped precision" means."""


def check_dtype(dtype: str) -> str:
    """Return ``dtype`` if known, else raise :class:`InputError` naming the bad value and the valid ones."""
    if dtype not in DTYPE_BYTES:
        raise InputError(f"unknown dtype {dtype!r}", fix=f"use one of {', '.join(DTYPE_BYTES)}")
    return dtype


def weight_bytes_per_param(dtype: str) -> float:
    """Stored bytes per weight, scale overhead included.

    - int4, group-wise (GPTQ/AWQ, group 128): 0.5 B payload + (2 B fp16 scale + 0.5 B packed zero) / 128
      = 0.51953 B.
    - int8, per-output-channel fp16 scale (LLM.int8(), SmoothQuant): 1 + 2 / in_features (4096 typical).
    - fp8 E4M3 with per-tensor scale (ModelOpt / vLLM): 1 B.
    - fp4, MXFP4: 4-bit E2M1 + one 8-bit E8M0 scale per 32 weights = 0.53125 B (OCP Microscaling Formats v1.0,
      2023; gpt-oss). NVFP4 (fp8 scale per 16: 0.5625 B) is read exactly from a checkpoint's quantization_config.
    - fp16/bf16 2 B, fp32/tf32 4 B.
    """
    b = DTYPE_BYTES[check_dtype(dtype)]
    if dtype == "fp4":
        return b + 1.0 / 32
    if dtype == "int4":
        return b + (cal.INT4_SCALE_BYTES + cal.INT4_ZERO_BYTES) / cal.INT4_GROUP_SIZE
    if dtype == "int8":
        return b + 2.0 / cal.INT8_CHANNEL_DIM
    if dtype == "fp8":
        return b + cal.FP8_SCALE_BYTES_PER_PARAM
    return b


def kv_dtype(weight_dtype: str) -> str:
    """KV-cache dtype served with a weight dtype: fp8 KV with fp8 weights (TensorRT-LLM / vLLM ``kv_cache_dtype
    fp8`` in the published FP8 checkpoints), fp32 with fp32, otherwise fp16/bf16 (weight-only int8/int4
    quantization keeps a 16-bit KV cache: AWQ, GPTQ, LLM.int8())."""
    if weight_dtype == "fp8":
        return "fp8"
    if weight_dtype in ("fp32", "tf32"):
        return "fp32"
    return "fp16"


def activation_bytes(weight_dtype: str) -> float:
    """Bytes per activation element: 4 for fp32 models, else 2 (fp16/bf16 activations; FP8 and weight-only
    schemes keep 16-bit activations between GEMMs)."""
    return 4.0 if weight_dtype in ("fp32", "tf32") else 2.0


def compute_dtype(weight_dtype: str, supported: tuple[str, ...] | frozenset[str] | dict[str, float]) -> str:
    """The math dtype a weight dtype runs in on hardware that supports ``supported``.

    fp8 weights use fp8 tensor cores where present (Hopper+), else are upcast (W8A16, e.g. vLLM's Marlin fp8 on
    Ampere). int8 runs W8A8 (SmoothQuant) where int8 math exists. int4 is weight-only (W4A16: AWQ/GPTQ kernels
    dequantize to fp16), except on int4-math devices with no fp16 (NPUs). fp4 runs on fp4 tensor cores where the
    catalog lists them (Blackwell), else weight-only W4A16 (vLLM's Marlin MXFP4/NVFP4 kernels dequantize to 16 bit).
    fp32 uses tf32 only if fp32 is absent.
    """
    if weight_dtype in supported:
        if weight_dtype == "int4" and ("fp16" in supported or "bf16" in supported):
            return "fp16" if "fp16" in supported else "bf16"
        return weight_dtype
    for alt in ("bf16", "fp16", "fp32", "tf32", "int8"):
        if alt in supported:
            return alt
    raise InputError(f"hardware supports none of the usual dtypes ({', '.join(supported) or 'none'})",
                     fix="add fp16/bf16/int8 throughput to the catalog row")
