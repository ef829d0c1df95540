"""Published figures the estimator is checked against (tests/test_estimator_published.py and
benchmarks/estimator_vs_published.py print and assert the same table).

Models and hardware here are built from their published numbers (model cards / papers, datasheets), not from
the catalog or the presets, so the check does not depend on other data files. Each case names its source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from planner.estimator.hardware import HardwareProfile
from planner.estimator.inference import estimate_inference, inference_memory, weights_bytes
from planner.estimator.shape import shape_of
from planner.estimator.training import estimate_training, training_flops, zero_model_states_bytes
from planner.models.arch import ModelArch

GB = 1e9
GIB = 2**30
MIB = 2**20


def _llm(name: str, params: int, layers: int, hidden: int, heads: int, kv: int, inter: int, vocab: int, *,
         source: str, experts: int = 1, k: int = 1, active: int | None = None, family: str = "llama",
         window: int | None = None) -> ModelArch:
    return ModelArch(name=name, kind="llm", family=family, params=params, active_params=active or params,
                     layers=layers, hidden_size=hidden, attention_heads=heads, kv_heads=kv, head_dim=hidden // heads,
                     intermediate_size=inter, vocab_size=vocab, experts=experts, experts_per_token=k,
                     attention="sliding" if window else "full", sliding_window=window, source=source)


LLAMA2_7B = _llm("llama-2-7b", 6_738_415_616, 32, 4096, 32, 32, 11008, 32000,
                 source="Touvron et al. 2023 / HF meta-llama/Llama-2-7b-hf config.json")
LLAMA2_13B = _llm("llama-2-13b", 13_015_864_320, 40, 5120, 40, 40, 13824, 32000,
                  source="HF meta-llama/Llama-2-13b-hf config.json")
LLAMA2_70B = _llm("llama-2-70b", 68_976_648_192, 80, 8192, 64, 8, 28672, 32000,
                  source="HF meta-llama/Llama-2-70b-hf config.json")
LLAMA31_8B = _llm("llama-3.1-8b", 8_030_261_248, 32, 4096, 32, 8, 14336, 128256,
                  source="HF meta-llama/Llama-3.1-8B config.json")
LLAMA3_70B = _llm("llama-3-70b", 70_553_706_496, 80, 8192, 64, 8, 28672, 128256,
                  source="HF meta-llama/Meta-Llama-3-70B config.json")
LLAMA31_405B = _llm("llama-3.1-405b", 405_853_388_800, 126, 16384, 128, 8, 53248, 128256,
                    source="HF meta-llama/Llama-3.1-405B config.json")
MIXTRAL_8X7B = _llm("mixtral-8x7b", 46_702_792_704, 32, 4096, 32, 8, 14336, 32000, experts=8, k=2,
                    active=12_879_925_248, family="mixtral", source="Jiang et al. 2024; HF config.json")
MISTRAL_7B = _llm("mistral-7b-v0.1", 7_241_732_096, 32, 4096, 32, 8, 14336, 32000, family="mistral", window=4096,
                  source="Jiang et al. 2023; HF mistralai/Mistral-7B-v0.1 config.json")
GPT3_175B = ModelArch(name="gpt-3-175b", kind="llm", family="gpt2", params=175_000_000_000,
                      active_params=175_000_000_000, layers=96, hidden_size=12288, attention_heads=96,
                      intermediate_size=49152, vocab_size=50257, tied_embeddings=True, source="Brown et al. 2020")
BERT_BASE_CASED = ModelArch(name="bert-base-cased", kind="encoder", family="bert", params=108_310_272,
                            active_params=108_310_272, layers=12, hidden_size=768, attention_heads=12,
                            intermediate_size=3072, vocab_size=28996, decoder=False,
                            source="HF bert-base-cased; accelerate estimate-memory")

H100_SXM = HardwareProfile(id="h100-sxm", memory_bytes=80 * GIB, bandwidth_bytes_per_s=3.35e12,
                           flops_per_s={"fp32": 67e12, "tf32": 494.5e12, "bf16": 989e12, "fp16": 989e12,
                                        "fp8": 1979e12, "int8": 1979e12},
                           power_w=700, interconnect_bytes_per_s=450e9, gpus_per_domain=8)
H200_SXM = HardwareProfile(id="h200-sxm", memory_bytes=143_771 * MIB, bandwidth_bytes_per_s=4.8e12,
                           flops_per_s=dict(H100_SXM.flops_per_s), power_w=700, interconnect_bytes_per_s=450e9,
                           gpus_per_domain=8)
A100_80GB = HardwareProfile(id="a100-80gb-sxm", memory_bytes=80 * GIB, bandwidth_bytes_per_s=2.039e12,
                            flops_per_s={"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12, "fp16": 312e12,
                                         "int8": 624e12},
                            power_w=400, interconnect_bytes_per_s=300e9, gpus_per_domain=8)
A100_40GB = HardwareProfile(id="a100-40gb-sxm", memory_bytes=40 * GIB, bandwidth_bytes_per_s=1.555e12,
                            flops_per_s=dict(A100_80GB.flops_per_s), power_w=400, interconnect_bytes_per_s=300e9,
                            gpus_per_domain=8)


@dataclass(frozen=True)
class Case:
    name: str
    published: float
    unit: str
    tolerance: float
    """allowed relative error |estimate / published - 1|"""
    source: str
    estimate: Callable[[], float]

    def error(self) -> float:
        return self.estimate() / self.published - 1.0


def _thr(arch: ModelArch, hw: HardwareProfile, dtype: str, tp: int, isl: int, osl: int) -> Callable[[], float]:
    """Total output tokens/s of a replica (TensorRT-LLM perf overview reports it per system: tp GPUs)."""
    return lambda: estimate_inference(arch, hw, dtype, tp=tp, input_tokens=isl, output_tokens=osl,
                                      memory_headroom=0.05).throughput_tokens_per_s


TRTLLM = ("NVIDIA TensorRT-LLM perf overview (trtllm-bench, ModelOpt FP8 checkpoints, max load), "
          "docs/source/performance/perf-overview.md")
VLLM_CI = ("vLLM's CI performance benchmark, latency tests (benchmarks/benchmark_latency.py: batch 8, 32 input and "
           "128 output tokens, mean end-to-end latency): buildkite.com/vllm/performance-benchmark builds 9555 "
           "(8xH100), 9513 (H200), 9523 (A100-SXM4-80GB)")


def _latency(arch: ModelArch, hw: HardwareProfile, tp: int, batch: int, isl: int, osl: int) -> Callable[[], float]:
    """End-to-end latency in ms of ``batch`` requests generated together (vLLM ``benchmark_latency``): the
    prompt's prefill, then ``osl - 1`` decode steps at ``batch``."""
    def run() -> float:
        e = estimate_inference(arch, hw, "bf16", tp=tp, input_tokens=isl, output_tokens=osl, batch=batch)
        return (e.ttft_s + (osl - 1) * e.tpot_s) * 1e3
    return run


ZERO = "Rajbhandari et al. 2020 (ZeRO), Fig. 1: 7.5B params, 64-way data parallel, mixed-precision Adam"


def _zero(stage: int) -> Callable[[], float]:
    return lambda: zero_model_states_bytes(7.5e9, dp=64, zero_stage=stage) / GB


def _gpu_hours(arch: ModelArch, tokens: float, gpus: int) -> Callable[[], float]:
    return lambda: estimate_training(arch, A100_80GB, gpus=gpus, tokens=tokens, zero_stage=3).gpu_hours


CASES: tuple[Case, ...] = (
    # ------------------------------------------------------------------------------------------ memory
    Case("bert-base-cased fp32 weights", 413.18, "MiB", 0.001, "HF accelerate estimate-memory",
         lambda: weights_bytes(shape_of(BERT_BASE_CASED), "fp32") / MIB),
    Case("llama-2-7b fp16 weights", 12.55, "GiB", 0.005, "HF accelerate estimate-memory (12.55 GB = GiB)",
         lambda: weights_bytes(shape_of(LLAMA2_7B), "fp16") / GIB),
    Case("llama-2-70b fp16 weights", 138.0, "GB", 0.01, "Touvron et al. 2023 (69B params x 2 bytes)",
         lambda: weights_bytes(shape_of(LLAMA2_70B), "fp16") / GB),
    Case("mixtral-8x7b fp16 weights", 93.4, "GB", 0.01, "Jiang et al. 2024: 46.7B params x 2 bytes",
         lambda: weights_bytes(shape_of(MIXTRAL_8X7B), "fp16") / GB),
    Case("llama-2-7b int4 AWQ g128 weights", 3.89, "GB", 0.03, "TheBloke/Llama-2-7B-AWQ model.safetensors 3.89 GB",
         lambda: weights_bytes(shape_of(LLAMA2_7B), "int4") / GB),
    Case("llama-2-7b fp16 KV cache / token", 512.0, "KiB", 0.0, "Pope et al. 2022 formula; vLLM docs (0.5 MB/token)",
         lambda: inference_memory(LLAMA2_7B, "fp16", context_tokens=1).kv_cache_bytes_per_token / 1024),
    Case("llama-3-70b fp16 KV cache / token (GQA)", 320.0, "KiB", 0.0, "Ainslie et al. 2023 GQA; 80 x 8 x 128 x 2 x 2",
         lambda: inference_memory(LLAMA3_70B, "fp16", context_tokens=1).kv_cache_bytes_per_token / 1024),
    Case("mistral-7b KV at 32k context (4k window)", 512.0, "MiB", 0.0, "Jiang et al. 2023: rolling buffer cache",
         lambda: inference_memory(MISTRAL_7B, "fp16", context_tokens=32768).kv_cache_bytes_per_gpu / MIB),
    # ------------------------------------------------------------------------------------------ training
    Case("ZeRO stage 0 model states / GPU", 120.0, "GB", 0.01, ZERO, _zero(0)),
    Case("ZeRO stage 1 model states / GPU", 31.4, "GB", 0.01, ZERO, _zero(1)),
    Case("ZeRO stage 2 model states / GPU", 16.6, "GB", 0.01, ZERO, _zero(2)),
    Case("ZeRO stage 3 model states / GPU", 1.9, "GB", 0.02, ZERO, _zero(3)),
    Case("GPT-3 175B training FLOPs (300B tokens)", 3.14e23, "FLOP", 0.01, "Brown et al. 2020, Table D.1",
         lambda: training_flops(GPT3_175B.active_params, 300e9)),
    Case("Chinchilla 70B training FLOPs (1.4T tokens)", 5.76e23, "FLOP", 0.03, "Hoffmann et al. 2022, Table 3",
         lambda: training_flops(70e9, 1.4e12)),
    Case("Llama 3.1 405B training FLOPs (15.6T tokens)", 3.8e25, "FLOP", 0.02, "Llama 3 Herd of Models, Sec. 3",
         lambda: training_flops(LLAMA31_405B.active_params, 15.6e12)),
    Case("Llama-2-7B A100-hours (2T tokens)", 184_320, "GPU-h", 0.15, "Touvron et al. 2023, Table 2",
         _gpu_hours(LLAMA2_7B, 2e12, 256)),
    Case("Llama-2-13B A100-hours (2T tokens)", 368_640, "GPU-h", 0.15, "Touvron et al. 2023, Table 2",
         _gpu_hours(LLAMA2_13B, 2e12, 512)),
    Case("Llama-2-70B A100-hours (2T tokens)", 1_720_320, "GPU-h", 0.15, "Touvron et al. 2023, Table 2",
         _gpu_hours(LLAMA2_70B, 2e12, 2048)),
    # ------------------------------------------------------------------------------------- latency
    Case("llama-3.1-8b bf16 A100-40GB TPOT batch 1 (1024 in/128 out)", 1000 / 75, "ms", 0.30,
         "vLLM 0.23 sweep, J. Musgrave 'vLLM throughput-latency sweep on NVIDIA A100' (75 tok/s at C=1)",
         lambda: estimate_inference(LLAMA31_8B, A100_40GB, "bf16", input_tokens=1024,
                                    output_tokens=128).tpot_s * 1e3),
    Case("llama-2-7b fp16 A100-80GB TPOT batch 1", 10.0, "ms", 0.30,
         "memory-bound decode, measured 8-12 ms (vLLM/TGI reports; 13.5 GB / 2.0 TB/s = 6.7 ms floor)",
         lambda: estimate_inference(LLAMA2_7B, A100_80GB, "fp16", input_tokens=512,
                                    output_tokens=128).tpot_s * 1e3),
    *(Case(f"{arch.name} bf16 {hw.id} TP{tp} latency, batch 8, 32 in/128 out", v, "ms", 0.30, VLLM_CI,
           _latency(arch, hw, tp, 8, 32, 128))
      for arch, tp, hw, v in ((LLAMA31_8B, 1, H100_SXM, 997.542), (LLAMA3_70B, 4, H100_SXM, 2444.47),
                              (MIXTRAL_8X7B, 2, H100_SXM, 2326.97), (LLAMA31_8B, 1, H200_SXM, 834.059),
                              (LLAMA3_70B, 4, H200_SXM, 2075.08), (MIXTRAL_8X7B, 2, H200_SXM, 1921.1),
                              (LLAMA31_8B, 1, A100_80GB, 1579.27), (LLAMA3_70B, 4, A100_80GB, 3990.59),
                              (MIXTRAL_8X7B, 2, A100_80GB, 3643.84))),
    # ------------------------------------------------------------------------------------ throughput
    *(Case(f"llama-3.1-8b H100 FP8 TP1 {i}/{o}", v, "tok/s", 0.30, TRTLLM, _thr(LLAMA31_8B, H100_SXM, "fp8", 1, i, o))
      for (i, o), v in {(128, 128): 28312, (128, 2048): 22714, (128, 4096): 14325, (500, 2000): 17660,
                        (1000, 1000): 15220, (2048, 128): 3450, (2048, 2048): 9305, (5000, 500): 3459,
                        (20000, 2000): 1351}.items()),
    *(Case(f"llama-3.1-8b H200 FP8 TP1 {i}/{o}", v, "tok/s", 0.30, TRTLLM, _thr(LLAMA31_8B, H200_SXM, "fp8", 1, i, o))
      for (i, o), v in {(128, 128): 27911, (128, 2048): 26221, (1000, 1000): 17744, (2048, 128): 3538,
                        (2048, 2048): 12194}.items()),
    *(Case(f"llama-3.3-70b H100 FP8 TP2 {i}/{o}", v, "tok/s", 0.30, TRTLLM, _thr(LLAMA3_70B, H100_SXM, "fp8", 2, i, o))
      for (i, o), v in {(128, 128): 6378, (128, 2048): 6651, (1000, 1000): 4205, (2048, 128): 762,
                        (2048, 2048): 3082}.items()),
    *(Case(f"llama-3.1-405b H100 FP8 TP8 {i}/{o}", v, "tok/s", 0.30, TRTLLM,
           _thr(LLAMA31_405B, H100_SXM, "fp8", 8, i, o))
      for (i, o), v in {(128, 128): 3627, (128, 2048): 4340, (1000, 1000): 2919, (2048, 128): 453}.items()),
)
