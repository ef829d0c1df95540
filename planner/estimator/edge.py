"""Edge devices: does the model fit RAM and flash, how long does one inference take, at what energy.

Jetson / SBC / Edge TPU hold weights and activations in (unified) RAM and weights on storage. A microcontroller
runs TFLite Micro: weights stay in flash (memory-mapped, executed in place), SRAM holds only the tensor arena
(activations) and the interpreter (David et al. 2021, "TensorFlow Lite Micro", Sec. 4).
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.catalog.schema import EdgeDevice
from planner.estimator import calibration as cal
from planner.estimator.dtypes import check_dtype
from planner.estimator.hardware import profile
from planner.estimator.inference import decode_model, nonllm_batch_latency_s, prefill_time_s
from planner.estimator.memory import nonllm_activation_bytes, replica_memory, weights_bytes
from planner.estimator.shape import shape_of
from planner.models.arch import ModelArch

MIB = 2**20


@dataclass(frozen=True, slots=True)
class EdgeEstimate:
    device: str
    dtype: str
    fits_ram: bool
    fits_storage: bool
    supported: bool
    """the device can execute this dtype (int8-only NPUs and MCUs cannot run fp16)"""
    memory_bytes: int
    """RAM needed (SRAM arena on an MCU)"""
    storage_bytes: int
    """flash / disk needed for the weights"""
    ram_bytes: int
    flash_bytes: int
    latency_s: float
    """one inference at ``batch`` (LLM: TTFT + (output - 1) x TPOT)"""
    ttft_s: float | None
    tpot_s: float | None
    energy_j_per_inference: float
    bound: str
    reason: str | None
    """why it does not fit / run, None if it does"""

    @property
    def fits(self) -> bool:
        return self.fits_ram and self.fits_storage and self.supported


def estimate_edge(arch: ModelArch, dev: EdgeDevice, dtype: str, *, batch: int = 1, input_tokens: int = 128,
                  output_tokens: int = 128) -> EdgeEstimate:
    """Fit and roofline latency of ``arch`` on one edge device (efficiency per device kind in calibration)."""
    check_dtype(dtype)
    s = shape_of(arch)
    hw = profile(dev)
    overhead = cal.EDGE_RUNTIME_OVERHEAD_BYTES.get(dev.kind, 64 * MIB)
    supported = not (dev.int8_only and dtype != "int8") and any(
        d in dev.tops for d in (dtype, "fp16", "bf16", "fp32", "int8"))
    w = int(weights_bytes(s, dtype))
    if s.llm:
        mem = replica_memory(s, dtype, 1, 1, batch, input_tokens + output_tokens, overhead)
        need_ram = mem.total_bytes_per_gpu
    elif dev.kind == "mcu":
        need_ram = int(nonllm_activation_bytes(s, dtype, batch, input_tokens)) + overhead
    else:
        need_ram = w + int(nonllm_activation_bytes(s, dtype, batch, input_tokens)) + overhead
    fits_ram = need_ram <= dev.ram_bytes
    fits_storage = w <= dev.storage_bytes
    reason = None
    if not supported:
        reason = f"{dev.id} runs int8 only; {dtype} is not supported" if dev.int8_only else \
            f"{dev.id} has no {dtype} support"
    elif not fits_storage:
        reason = f"weights {w / MIB:.1f} MiB ({dtype}) exceed storage {dev.storage_mib:g} MiB"
    elif not fits_ram:
        what = "tensor arena" if dev.kind == "mcu" and not s.llm else "weights + activations + runtime"
        reason = f"{what} {need_ram / MIB:.1f} MiB exceeds RAM {dev.ram_mib:g} MiB"
    if not supported:
        inf = float("inf")
        return EdgeEstimate(dev.id, dtype, fits_ram, fits_storage, False, need_ram, w, dev.ram_bytes,
                            dev.storage_bytes, inf, None, None, inf, "unsupported", reason)
    power = dev.power_w * cal.EDGE_POWER_FRACTION
    if s.llm:
        dm = decode_model(s, hw, dtype, 1, 1, input_tokens, output_tokens, max(1, batch))
        ttft = prefill_time_s(dm)
        tpot = dm.tpot(batch)
        lat = ttft + max(0, output_tokens - 1) * tpot
        bound = "memory"
        return EdgeEstimate(dev.id, dtype, fits_ram, fits_storage, True, need_ram, w, dev.ram_bytes,
                            dev.storage_bytes, lat, ttft, tpot, power * lat / batch, bound, reason)
    eff = cal.EDGE_FLOPS_EFFICIENCY.get(dev.kind, 0.25)
    lat, bound = nonllm_batch_latency_s(s, hw, dtype, batch, input_tokens, eff)
    return EdgeEstimate(dev.id, dtype, fits_ram, fits_storage, True, need_ram, w, dev.ram_bytes, dev.storage_bytes,
                        lat, None, None, power * lat / batch, bound, reason)
