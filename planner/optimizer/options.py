"""Replica options: how one model replica performs on one accelerator shape, memoized.

A replica shape is (accelerator, dtype, tensor parallel, pipeline parallel). Its physics does not depend on the
region or the price, so the search evaluates each shape once and reuses it for every instance row that carries
that accelerator. An option either meets the per-replica SLOs (with the batch that maximises throughput under
them) or carries the reason and the closest miss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from planner.catalog.schema import Accelerator, EdgeDevice
from planner.estimator import HardwareProfile, estimate_edge, estimate_inference, profile
from planner.estimator.calibration import SERVING_OVERHEAD_S
from planner.estimator.inference import InferenceEstimate
from planner.estimator.shape import nonllm_seq
from planner.models import image_context_tokens
from planner.models.arch import ModelArch
from planner.specs import Constraints, InferenceWorkload

GB = 1e9

# Dtypes by accuracy tolerance: int4 weight-only quantization loses more quality than fp8/int8
# (Dettmers & Zettlemoyer 2023, "The case for 4-bit precision"; Frantar et al. 2023, GPTQ).
ACCURACY_DTYPES = {
    "none": ("fp32", "fp16", "bf16"),
    "small": ("fp32", "fp16", "bf16", "fp8", "int8"),
    "moderate": ("fp32", "fp16", "bf16", "fp8", "int8", "int4", "fp4"),
}
# Preference when costs tie: higher precision first.
DTYPE_ORDER = ("bf16", "fp16", "fp32", "fp8", "int8", "int4", "fp4")


def dtype_supported(hw: Accelerator | EdgeDevice, dtype: str) -> bool:
    """A dtype runs if the chip has it natively; int8/int4 weight-only quantization also runs on any chip with
    fp16 math (weights are dequantized to fp16 on the fly, as AWQ/GPTQ kernels do)."""
    table = hw.tflops if isinstance(hw, Accelerator) else hw.tops
    if isinstance(hw, EdgeDevice) and hw.int8_only:
        return dtype == "int8"
    if dtype in table:
        return True
    return dtype in ("int8", "int4", "fp4") and "fp16" in table


def allowed_dtypes(c: Constraints, hw: Accelerator | EdgeDevice, arch: ModelArch | None = None) -> list[str]:
    """Dtypes to try for ``arch`` on ``hw``: those the accuracy tolerance and ``precisions`` allow.

    The checkpoint's own precision (``arch.dtype``: gpt-oss ships MXFP4, DeepSeek-V3 FP8) is how the model was
    trained or released, so it is lossless and always offered; precisions above it are not (upcasting adds memory
    and no accuracy: gpt-oss-120b is ~65 GB as shipped, 234 GB in bf16).
    """
    from planner.estimator.dtypes import PRECISION_RANK

    ok = set(ACCURACY_DTYPES[c.max_accuracy_loss]) & set(c.precisions)
    shipped = arch.dtype if arch is not None else None
    if shipped in PRECISION_RANK:
        assert shipped is not None
        ok = {d for d in ok if PRECISION_RANK.get(d, 0) <= PRECISION_RANK[shipped]} | {shipped}
    return [d for d in DTYPE_ORDER if d in ok and dtype_supported(hw, d)]


@dataclass(frozen=True, slots=True)
class ReplicaOption:
    accelerator: str
    dtype: str
    tp: int
    pp: int
    batch: int
    ttft_s: float | None
    tpot_s: float | None
    latency_s: float | None
    rps: float  # saturated requests/s of one replica at ``batch`` under the SLOs
    tokens_per_s: float | None
    memory_bytes_per_gpu: int
    capacity_bytes_per_gpu: int
    max_batch: int | None
    energy_j_per_request: float | None
    ep: int = 1
    """expert-parallel degree (MoE): experts sharded over ``ep`` of the replica's GPUs instead of split by TP"""
    max_num_batched_tokens: int | None = None
    """LLM engines: tokens per scheduler step (set once the engine settings are decided, :mod:`.slo`)"""
    queue_delay_s: float = 0.0
    """dynamic batcher wait (Triton ``max_queue_delay_microseconds``, Ray Serve ``batch_wait_timeout_s``)"""
    max_ongoing: int | None = None
    """requests one replica accepts at once (Ray Serve ``max_ongoing_requests``), as the sizing decided it
    (:func:`planner.optimizer.slo.max_ongoing_requests`); None: not sized"""
    tier: int = 0
    """how the replica count was found (:mod:`.slo`): 0 utilization rule, 1 closed-form bound, 2 simulated"""
    sizing_key: Any = None
    """the :class:`~planner.optimizer.slo.SloSizer` entry that sized this option (None: not sized)"""
    load: Any = None
    """:class:`~planner.optimizer.slo.LoadFigures` at the planned rate, once simulated"""

    @property
    def gpus(self) -> int:
        return self.tp * self.pp

    @property
    def headroom(self) -> float:
        return 1.0 - self.memory_bytes_per_gpu / self.capacity_bytes_per_gpu


@dataclass(frozen=True, slots=True)
class Miss:
    """Why a shape failed, and by how much (``value`` vs ``limit``, in the constraint's unit)."""

    constraint: str
    reason: str
    value: float = math.nan
    limit: float = math.nan


def _largest(lo: int, hi: int, ok: object) -> int:
    """Largest n in [lo, hi] with ok(n) true, given ok is monotone (true then false); lo must satisfy ok.
    (Non-LLM batching; LLM batching uses the estimator's exact ``batch_for``.)"""
    assert callable(ok)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


class OptionEvaluator:
    """Evaluates replica shapes for one spec, memoized by shape."""

    def __init__(self, arch: ModelArch, w: InferenceWorkload, c: Constraints, rtt_s: float = 0.0) -> None:
        self.arch = arch
        self.w = w
        self.c = c
        self._memo: dict[tuple[str, str, int, int, int, float], ReplicaOption | Miss] = {}
        images = getattr(w, "images_per_request", 0)
        self.input_tokens = getattr(w, "input_tokens", 1) + image_context_tokens(arch, images)
        """prompt tokens with the images' tokens (vision-language models)"""
        self.seq = nonllm_seq(arch, w)
        """tokens one input of a non-LLM model carries (1 without attention)"""
        self._profiles: dict[str, HardwareProfile] = {}
        self._bases: dict[tuple[str, str, int, int, int], InferenceEstimate] = {}
        self.evaluations = 0

    def profile_of(self, hw: Accelerator | EdgeDevice) -> HardwareProfile:
        p = self._profiles.get(hw.id)
        if p is None:
            p = self._profiles[hw.id] = profile(hw)
        return p

    def gpu(self, hw: Accelerator | EdgeDevice, dtype: str, tp: int, pp: int, rtt_s: float,
            runtime: str, ep: int = 1, overhead_s: float | None = None) -> ReplicaOption | Miss:
        """Evaluate one replica shape served by ``runtime``; ``rtt_s`` is the users' network round trip, to which
        the runtime's own median per-request overhead on the host (``overhead_s``, a side's ``runtime_cost``;
        None: calibration.SERVING_OVERHEAD_S) is added before the SLO checks."""
        rtt_s += SERVING_OVERHEAD_S[runtime] if overhead_s is None else overhead_s
        key = (hw.id, dtype, tp, pp, ep, round(rtt_s, 6))
        hit = self._memo.get(key)
        if hit is None:
            self.evaluations += 1
            hit = self._memo[key] = (
                self._llm(hw, dtype, tp, pp, rtt_s, ep) if self.arch.is_llm else self._dense(hw, dtype, rtt_s)
            )
        return hit

    def base_estimate(self, hw: Accelerator | EdgeDevice, dtype: str, tp: int, pp: int, ep: int = 1
                      ) -> InferenceEstimate:
        """The estimate at batch 1 of an LLM replica shape (memoized; the simulator's step costs come from it)."""
        key = (hw.id, dtype, tp, pp, ep)
        hit = self._bases.get(key)
        if hit is None:
            hit = self._bases[key] = estimate_inference(
                self.arch, self.profile_of(hw), dtype, tp=tp, pp=pp, input_tokens=self.input_tokens,
                output_tokens=self.w.output_tokens, batch=1, memory_headroom=self.c.memory_headroom, ep=ep)
        return hit

    # ------------------------------------------------------------------------------------------------ LLMs
    def _llm(self, hw: Accelerator | EdgeDevice, dtype: str, tp: int, pp: int, rtt_s: float,
             ep: int = 1) -> ReplicaOption | Miss:
        a, w, c = self.arch, self.w, self.c
        prof = self.profile_of(hw)

        def est(b: int):  # type: ignore[no-untyped-def]
            return estimate_inference(a, prof, dtype, tp=tp, pp=pp, input_tokens=self.input_tokens,
                                      output_tokens=w.output_tokens, batch=b, memory_headroom=c.memory_headroom,
                                      ep=ep)

        base = self.base_estimate(hw, dtype, tp, pp, ep)
        shape = f"{hw.id} {dtype} tp{tp}" + (f" pp{pp}" if pp > 1 else "") + (f" ep{ep}" if ep > 1 else "")
        if not base.fits or base.max_batch < 1:
            need = base.memory.total_bytes_per_gpu
            cap = prof.memory_bytes * (1 - c.memory_headroom)
            if base.fits:  # the weights fit, but not one sequence's KV cache beside them
                return Miss("memory", f"{shape}: no room for one {self.input_tokens + w.output_tokens}-token "
                            f"sequence's KV cache beside {base.memory.weights_bytes_per_gpu / GB:.1f} GB of "
                            f"weights per GPU ({cap / GB:.1f} GB usable)", max(need, cap) + 1, cap)
            return Miss("memory", f"{shape}: needs {need / GB:.1f} GB per GPU > {cap / GB:.1f} GB usable "
                        f"(weights {base.memory.weights_bytes / GB:.1f} GB in all)", need, cap)
        ttft = base.ttft_s + rtt_s
        if c.ttft_s is not None and ttft > c.ttft_s:
            return Miss("latency", f"{shape}: TTFT {ttft * 1e3:.0f} ms > SLO {c.ttft_s * 1e3:.0f} ms"
                        + (f" (incl. {rtt_s * 1e3:.0f} ms network + serving)" if rtt_s else ""), ttft, c.ttft_s)
        if c.tpot_s is not None and base.tpot_s > c.tpot_s:
            return Miss("latency", f"{shape}: TPOT {base.tpot_s * 1e3:.1f} ms > SLO {c.tpot_s * 1e3:.1f} ms at batch 1",
                        base.tpot_s, c.tpot_s)
        if c.latency_s is not None:  # end to end, alone on the replica: TTFT then every further token at batch 1
            e2e = ttft + (w.output_tokens - 1) * base.tpot_s
            if e2e > c.latency_s:
                return Miss("latency", f"{shape}: latency {e2e * 1e3:.0f} ms > SLO {c.latency_s * 1e3:.0f} ms "
                            f"for {w.output_tokens} output tokens at batch 1", e2e, c.latency_s)
        max_b = base.max_batch
        # the largest batch whose TPOT meets the SLO (exact: TPOT grows monotonically with the batch)
        b = max_b if c.tpot_s is None else max(1, base.batch_for(c.tpot_s))
        e = est(b)
        # continuous batching (Orca, Yu et al. 2022; vLLM): b sequences decode together and each request's
        # prefill takes its share of the GPU; the estimator's throughput_at is validated against TensorRT-LLM
        rps = base.throughput_at(b) / w.output_tokens
        return ReplicaOption(
            accelerator=hw.id, dtype=dtype, tp=tp, pp=pp, batch=b, ttft_s=ttft, tpot_s=e.tpot_s, latency_s=None,
            rps=rps, tokens_per_s=rps * w.output_tokens, memory_bytes_per_gpu=e.memory.total_bytes_per_gpu,
            capacity_bytes_per_gpu=prof.memory_bytes, max_batch=max_b,
            energy_j_per_request=(e.energy_j_per_token * w.output_tokens if e.energy_j_per_token else None), ep=ep,
        )

    # ------------------------------------------------------------------------------ vision / encoder / other
    def _dense(self, hw: Accelerator | EdgeDevice, dtype: str, rtt_s: float) -> ReplicaOption | Miss:
        a, w, c = self.arch, self.w, self.c
        prof = self.profile_of(hw)
        shape = f"{hw.id} {dtype}"
        if isinstance(hw, EdgeDevice):
            one = estimate_edge(a, hw, dtype, batch=1)
            if not (one.fits_ram and one.fits_storage):
                return Miss("memory", f"{shape}: {one.reason}", float(one.memory_bytes), float(hw.ram_bytes))
            lat = one.latency_s + rtt_s
            if c.latency_s is not None and lat > c.latency_s:
                return Miss("latency", f"{shape}: latency {lat * 1e3:.1f} ms > SLO {c.latency_s * 1e3:.1f} ms",
                            lat, c.latency_s)
            return ReplicaOption(
                accelerator=hw.id, dtype=dtype, tp=1, pp=1, batch=1, ttft_s=None, tpot_s=None, latency_s=lat,
                rps=1.0 / one.latency_s, tokens_per_s=None, memory_bytes_per_gpu=one.memory_bytes,
                capacity_bytes_per_gpu=hw.ram_bytes, max_batch=1, energy_j_per_request=one.energy_j_per_inference,
            )

        def est(b: int):  # type: ignore[no-untyped-def]
            return estimate_inference(a, prof, dtype, tp=1, pp=1, input_tokens=self.seq,
                                      output_tokens=w.output_tokens, batch=b, memory_headroom=c.memory_headroom)

        base = est(1)
        if not base.fits:
            need = base.memory.total_bytes_per_gpu
            return Miss("memory", f"{shape}: needs {need / GB:.2f} GB > {prof.memory_bytes / GB:.1f} GB",
                        need, prof.memory_bytes)
        lat1 = base.latency_s + rtt_s
        if c.latency_s is not None and lat1 > c.latency_s:
            return Miss("latency", f"{shape}: latency {lat1 * 1e3:.1f} ms > SLO {c.latency_s * 1e3:.1f} ms",
                        lat1, c.latency_s)
        cap_b = w.batch_size or 256
        slo = c.latency_s

        def ok(b: int) -> bool:
            e = est(b)
            # a request waits up to one batch-forming delay, then the batch runs: budget 2 x batch latency
            return e.fits and (slo is None or 2 * e.latency_s + rtt_s <= slo)

        b = w.batch_size or (_largest(1, cap_b, ok) if ok(1) else 1)
        e = est(b)
        if not e.fits:  # a fixed workload batch that does not fit this accelerator
            need = e.memory.total_bytes_per_gpu
            return Miss("memory", f"{shape}: batch {b} needs {need / GB:.2f} GB > {prof.memory_bytes / GB:.1f} GB",
                        need, prof.memory_bytes)
        return ReplicaOption(
            accelerator=hw.id, dtype=dtype, tp=1, pp=1, batch=b, ttft_s=None, tpot_s=None,
            latency_s=e.latency_s + rtt_s, rps=b / e.latency_s, tokens_per_s=None,
            memory_bytes_per_gpu=e.memory.total_bytes_per_gpu, capacity_bytes_per_gpu=prof.memory_bytes,
            max_batch=b, energy_j_per_request=e.energy_j_per_request,
        )
