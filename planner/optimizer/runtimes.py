"""Serving runtimes and what each can serve: the one place that decides the runtime of a part.

A runtime is chosen only where mlplan can emit a working configuration for it (``serving/`` builds the Ray Serve,
Triton and TensorRT-LLM artifacts; ``stacks/`` the vLLM and firmware ones). An option whose hardware no capable
runtime serves is rejected with that reason, never assigned a runtime that cannot serve it.

==============  ================================================  ==========================================
runtime         serves                                            on
==============  ================================================  ==========================================
vllm            LLMs (OpenAI-compatible server)                   NVIDIA GPUs (CUDA), AMD Instinct (ROCm),
                                                                  x86 CPUs (vLLM CPU backend)
tensorrt-llm    LLMs (Triton TensorRT-LLM backend)                NVIDIA data-centre GPUs
triton          tensor models (ONNX / Python backend)             NVIDIA GPUs, CPUs, Jetson (iGPU image)
ray             tensor models (Ray Serve + onnxruntime)           CPUs, NVIDIA and AMD GPUs, single-board computers
firmware        tensor models compiled for the device             microcontrollers
==============  ================================================  ==========================================

Sources: vLLM installation docs (GPU: CUDA and ROCm; CPU: x86 with AVX-512; https://docs.vllm.ai/en/latest/
getting_started/installation/); Triton Inference Server support matrix (x86/ARM CPU, NVIDIA GPU, Jetson iGPU
builds; https://docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/); TensorRT-LLM support
matrix (NVIDIA data-centre GPUs); Ray installation (Linux x86_64 and aarch64 wheels).
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.catalog.schema import Accelerator, EdgeDevice, ServingCalibration
from planner.estimator import calibration as cal
from planner.plan import RateOverhead, RuntimeCost
from planner.specs import Constraints

__all__ = ["RUNTIMES", "TRAINING_HARDWARE", "RuntimeCaps", "choose_runtime", "hardware_class", "runtime_cost",
           "training_runtime"]

TRAINING_HARDWARE = frozenset({"nvidia-gpu", "amd-gpu"})
"""Training runs as a KubeRay RayJob with DeepSpeed ZeRO on the vendor's Ray image (CUDA for NVIDIA, ROCm for
AMD); TPUs (JAX/XLA), Trainium (Neuron) and Gaudi need other training stacks that mlplan does not emit."""


@dataclass(frozen=True)
class RuntimeCaps:
    name: str
    llm: bool
    """serves LLMs (token generation) rather than tensor-in / tensor-out models"""
    hardware: frozenset[str]
    """hardware classes it runs on (see :func:`hardware_class`)"""


RUNTIMES: dict[str, RuntimeCaps] = {
    "vllm": RuntimeCaps("vllm", True, frozenset({"nvidia-gpu", "amd-gpu", "cpu-x86"})),
    "tensorrt-llm": RuntimeCaps("tensorrt-llm", True, frozenset({"nvidia-gpu"})),
    "triton": RuntimeCaps("triton", False, frozenset({"nvidia-gpu", "cpu-x86", "cpu-arm", "jetson"})),
    "ray": RuntimeCaps("ray", False, frozenset({"nvidia-gpu", "amd-gpu", "cpu-x86", "cpu-arm", "sbc", "edge-tpu"})),
    "firmware": RuntimeCaps("firmware", False, frozenset({"mcu"})),
}

# Preference when the spec names no runtime: the first capable one wins.
_DEFAULT_ORDER = {
    True: ("vllm", "tensorrt-llm"),
    False: ("firmware", "triton", "ray"),
}
# Tensor models on CPUs and SBCs prefer Ray Serve (the runtime mlplan runs locally and tests end to end).
_CPU_FIRST = ("firmware", "ray", "triton")


def hardware_class(hw: Accelerator | EdgeDevice) -> str:
    """nvidia-gpu, amd-gpu, intel-gpu, google-tpu, aws-neuron, cpu-x86, cpu-arm, jetson, sbc, edge-tpu, mcu."""
    if isinstance(hw, EdgeDevice):
        return {"jetson": "jetson", "sbc": "sbc", "tpu": "edge-tpu", "mcu": "mcu"}[hw.kind]
    if hw.vendor == "cpu":
        return "cpu-arm" if "arm" in hw.id else "cpu-x86"
    return {"nvidia": "nvidia-gpu", "amd": "amd-gpu", "intel": "intel-gpu", "google": "google-tpu",
            "aws": "aws-neuron"}[hw.vendor]


def training_runtime(hw: Accelerator | EdgeDevice) -> tuple[str | None, str]:
    """("ray", "") where mlplan can emit a training job for ``hw``, else (None, why)."""
    cls = hardware_class(hw)
    if cls in TRAINING_HARDWARE:
        return "ray", ""
    return None, f"mlplan emits training jobs for NVIDIA and AMD GPUs (DeepSpeed on Ray), not for {cls}"


def choose_runtime(c: Constraints, hw: Accelerator | EdgeDevice, is_llm: bool,
                   has_artifact: bool = True) -> tuple[str | None, str]:
    """(runtime, reason): the spec's runtime if it can serve this model on this hardware, else the first capable
    default; ``(None, why)`` when no runtime mlplan emits can. A tensor model served by Ray Serve or Triton is
    loaded from its file (``model.artifact``): without one, only firmware (a build plan) can be planned."""
    name, why = _choose(c, hw, is_llm)
    if name in ("ray", "triton") and not has_artifact:
        return None, f"{name} serves a tensor model from its file, and the spec gives no model.artifact"
    return name, why


def _choose(c: Constraints, hw: Accelerator | EdgeDevice, is_llm: bool) -> tuple[str | None, str]:
    cls = hardware_class(hw)
    what = "an LLM" if is_llm else "a tensor model"
    if c.runtime is not None:
        caps = RUNTIMES[c.runtime]
        if caps.llm != is_llm:
            return None, f"runtime {c.runtime} does not serve {what}"
        if cls not in caps.hardware:
            return None, f"runtime {c.runtime} does not run on {cls}"
        return c.runtime, ""
    order = _CPU_FIRST if cls in ("cpu-x86", "cpu-arm", "sbc", "edge-tpu") and not is_llm else _DEFAULT_ORDER[is_llm]
    for name in order:
        caps = RUNTIMES[name]
        if caps.llm == is_llm and cls in caps.hardware:
            return name, ""
    return None, f"no runtime mlplan emits serves {what} on {cls}"


def runtime_cost(runtime: str, measured: ServingCalibration | None = None) -> RuntimeCost:
    """What ``runtime`` adds to each request on a host: the host's ``measured`` figures (catalog
    ``serving_calibrations``, from ``mlplan calibrate`` on that host) where there are some, else the calibration
    defaults (``SERVING_OVERHEAD_S``, ``SERVING_CPU_S_PER_REQUEST``: measured on one reference machine, so on
    another host they are only an estimate, which ``source`` says)."""
    processes = cal.SERVING_CPU_PROCESSES.get(runtime, 1)
    if measured is not None:
        return RuntimeCost(overhead_s=measured.overhead_ms / 1e3, overhead_p99_s=measured.overhead_p99_ms / 1e3,
                           cpu_s_per_request=measured.cpu_ms_per_request / 1e3, cpu_processes=processes,
                           front_share=cal.front_share(runtime, measured.front_share),
                           background_cores=measured.background_cores, cpu_states=tuple(measured.cpu_states),
                           source=f"measured on {measured.host} {measured.measured.isoformat()}: {measured.source}",
                           by_rate=tuple(RateOverhead(rate_rps=r.rate_rps, p50_s=r.p50_ms / 1e3,
                                                      p99_s=r.p99_ms / 1e3,
                                                      cpu_s=None if r.cpu_ms is None else r.cpu_ms / 1e3)
                                         for r in measured.by_rate))
    overhead = cal.SERVING_OVERHEAD_S.get(runtime, 0.0)
    return RuntimeCost(overhead_s=overhead, overhead_p99_s=overhead,
                       cpu_s_per_request=cal.SERVING_CPU_S_PER_REQUEST.get(runtime, 0.0), cpu_processes=processes,
                       front_share=cal.front_share(runtime),
                       background_cores=cal.SERVING_BACKGROUND_CORES.get(runtime, 0.0),
                       source="calibration defaults (planner.estimator.calibration; measure this host with "
                              "`mlplan calibrate`)")
