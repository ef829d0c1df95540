"""Unit and property tests of the estimator: formulas, invariants, edge cases and speed."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.catalog.schema import Accelerator, EdgeDevice, Interconnect
from planner.errors import InputError
from planner.estimator import (
    DTYPE_BYTES,
    HardwareProfile,
    batch_for,
    distillation_whatif,
    estimate_edge,
    estimate_inference,
    estimate_training,
    inference_memory,
    profile,
    pruning_whatif,
    quantization_whatif,
    weight_bytes_per_param,
    zero_model_states_bytes,
)
from planner.estimator import calibration as cal
from planner.estimator.inference import expert_fraction, quantized_gemm_path, ring_allreduce_s
from planner.estimator.reference import (
    A100_80GB,
    BERT_BASE_CASED,
    H100_SXM,
    LLAMA2_7B,
    LLAMA2_70B,
    LLAMA3_70B,
    LLAMA31_8B,
    MIXTRAL_8X7B,
)
from planner.estimator.shape import shape_of
from planner.estimator.whatif import break_even_sparsity, csr_bytes
from planner.models.arch import ModelArch
from planner.models.hf_config import TransformerShape, count_params

H100_ROW = Accelerator(
    id="h100-sxm", vendor="nvidia", name="H100 SXM5 80GB", memory_gib=80, bandwidth_gbps=3350,
    tflops={"bf16": 989, "fp16": 989, "fp8": 1979, "int8": 1979}, tdp_w=700,
    interconnect=Interconnect(kind="nvlink", bandwidth_gbps=450, gpus_per_domain=8),
    source="NVIDIA H100 datasheet")
ORIN = EdgeDevice(id="jetson-agx-orin-64gb", name="Jetson AGX Orin 64GB", kind="jetson", ram_mib=61440,
                  storage_mib=65536, bandwidth_gbps=204.8, tops={"fp16": 85, "int8": 170}, power_w=60,
                  price_usd=1999, runtime="tensorrt", source="NVIDIA Jetson AGX Orin datasheet")
CORAL = EdgeDevice(id="coral-usb", name="Coral USB Accelerator", kind="tpu", ram_mib=8, storage_mib=8,
                   bandwidth_gbps=4, tops={"int8": 4}, power_w=2, price_usd=60, runtime="edgetpu", int8_only=True,
                   source="coral.ai datasheet")
MCU = EdgeDevice(id="stm32h7", name="STM32H743", kind="mcu", ram_mib=1, storage_mib=2, bandwidth_gbps=0.8,
                 tops={"int8": 0.0008, "fp32": 0.0004}, power_w=0.3, price_usd=15, runtime="tflite-micro",
                 source="ST STM32H743 datasheet")
RESNET50 = ModelArch(name="resnet-50", kind="vision", family="cnn", params=25_557_032, active_params=25_557_032,
                     flops_per_inference=8.2e9, input_shape=(3, 224, 224), source="He et al. 2016; torchvision")
KWS = ModelArch(name="ds-cnn-kws", kind="audio", family="cnn", params=22_000, active_params=22_000,
                flops_per_inference=5.4e6, input_shape=(49, 10, 1), source="Zhang et al. 2017 Hello Edge (DS-CNN S)")


# ------------------------------------------------------------------------------------------ dtypes


def test_dtype_bytes_and_quantization_overheads() -> None:
    assert DTYPE_BYTES["fp32"] == 4 and DTYPE_BYTES["bf16"] == 2 and DTYPE_BYTES["int4"] == 0.5
    assert weight_bytes_per_param("fp16") == 2.0
    assert weight_bytes_per_param("fp8") == 1.0
    # int8: one fp16 scale per output channel of 4096 inputs -> 1 + 2/4096
    assert weight_bytes_per_param("int8") == pytest.approx(1 + 2 / 4096)
    # int4 g128: 0.5 + (fp16 scale + int4 zero) / 128
    assert weight_bytes_per_param("int4") == pytest.approx(0.5 + 2.5 / 128)


def test_unknown_dtype_is_an_input_error_with_a_fix() -> None:
    with pytest.raises(InputError) as ei:
        weight_bytes_per_param("fp6")
    assert "fp6" in str(ei.value) and "To fix" in str(ei.value)
    with pytest.raises(InputError):
        estimate_inference(LLAMA2_7B, H100_SXM, "int3", input_tokens=1, output_tokens=1)


def test_bad_parallelism_is_an_input_error() -> None:
    with pytest.raises(InputError, match="tp"):
        inference_memory(LLAMA2_7B, "fp16", tp=0, context_tokens=10)
    with pytest.raises(InputError, match="multiple"):
        estimate_training(LLAMA2_7B, H100_SXM, gpus=6, tp=4, tokens=1e9)
    with pytest.raises(InputError, match="ZeRO"):
        zero_model_states_bytes(1e9, dp=8, zero_stage=4)


# ---------------------------------------------------------------------------------------- hardware


def test_profile_from_catalog_rows() -> None:
    p = profile(H100_ROW)
    assert p.memory_bytes == 80 * 2**30
    assert p.bandwidth_bytes_per_s == 3.35e12
    assert p.flops_per_s["fp8"] == 1979e12
    assert p.interconnect_bytes_per_s == 450e9 and p.gpus_per_domain == 8
    assert p.link_bytes_per_s(8) == 450e9 and p.link_bytes_per_s(16) == cal.INTERNODE_BYTES_PER_S
    e = profile(ORIN)
    assert e.kind == "jetson" and e.memory_bytes == 61440 * 2**20 and e.flops_per_s["int8"] == 170e12


def test_fp8_without_fp8_hardware_runs_in_16_bit() -> None:
    """A100 has no FP8 tensor cores: FP8 weights are upcast (W8A16, vLLM Marlin fp8)."""
    assert A100_80GB.compute_dtype("fp8") == "bf16"
    assert A100_80GB.compute_dtype("int4") in ("bf16", "fp16")  # W4A16
    assert H100_SXM.compute_dtype("fp8") == "fp8"


# ------------------------------------------------------------------------------------------ memory


def test_transformer_param_count_matches_published_llama2_7b() -> None:
    shape = TransformerShape(layers=32, hidden=4096, heads=32, kv_heads=32, head_dim=128, intermediate=11008,
                             vocab=32000)
    assert count_params(shape).total == 6_738_415_616


def test_inference_memory_parts_add_up_and_split_over_tp_pp() -> None:
    m1 = inference_memory(LLAMA2_7B, "fp16", batch=4, context_tokens=2048)
    assert m1.total_bytes_per_gpu == (m1.weights_bytes_per_gpu + m1.kv_cache_bytes_per_gpu
                                      + m1.activation_bytes_per_gpu + m1.overhead_bytes_per_gpu)
    assert m1.kv_cache_bytes_per_gpu == 4 * 2048 * 512 * 1024
    m4 = inference_memory(LLAMA2_7B, "fp16", tp=2, pp=2, batch=4, context_tokens=2048)
    assert m4.weights_bytes_per_gpu == pytest.approx(m1.weights_bytes / 4, abs=1)
    assert m4.kv_cache_bytes_per_gpu == m1.kv_cache_bytes_per_gpu // 4


def test_kv_heads_are_replicated_when_tp_exceeds_them() -> None:
    """Llama-3-70B has 8 KV heads: at TP16 each GPU still holds one head, so KV per GPU stops shrinking at TP8."""
    m8 = inference_memory(LLAMA3_70B, "fp16", tp=8, batch=1, context_tokens=4096)
    m16 = inference_memory(LLAMA3_70B, "fp16", tp=16, batch=1, context_tokens=4096)
    assert m16.kv_cache_bytes_per_gpu == m8.kv_cache_bytes_per_gpu
    assert m16.weights_bytes_per_gpu < m8.weights_bytes_per_gpu


def test_fp8_weights_use_fp8_kv_and_int4_keeps_fp16_kv() -> None:
    assert inference_memory(LLAMA2_7B, "fp8", context_tokens=1).kv_cache_bytes_per_token == 256 * 1024
    assert inference_memory(LLAMA2_7B, "int4", context_tokens=1).kv_cache_bytes_per_token == 512 * 1024


def test_non_llm_has_no_kv_and_activations_grow_with_batch() -> None:
    m1 = inference_memory(RESNET50, "fp16", batch=1, context_tokens=1)
    m8 = inference_memory(RESNET50, "fp16", batch=8, context_tokens=1)
    assert m1.kv_cache_bytes_per_token == 0 and m1.kv_cache_bytes_per_gpu == 0
    assert m8.activation_bytes_per_gpu == 8 * m1.activation_bytes_per_gpu > 0
    assert m1.weights_bytes == 2 * RESNET50.params


# ------------------------------------------------------------------------------------- LLM inference


def test_max_batch_is_the_largest_batch_that_fits() -> None:
    e = estimate_inference(LLAMA31_8B, A100_80GB, "bf16", input_tokens=2048, output_tokens=512)
    usable = A100_80GB.memory_bytes * 0.9
    assert 1 <= e.max_batch < cal.MAX_CONCURRENT_SEQUENCES
    at = inference_memory(LLAMA31_8B, "bf16", batch=e.max_batch, context_tokens=2560)
    over = inference_memory(LLAMA31_8B, "bf16", batch=e.max_batch + 2, context_tokens=2560)
    assert at.total_bytes_per_gpu <= usable < over.total_bytes_per_gpu


def test_weights_that_do_not_fit_give_max_batch_zero() -> None:
    e = estimate_inference(LLAMA2_70B, A100_80GB, "bf16", input_tokens=128, output_tokens=128)
    assert not e.fits and e.max_batch == 0 and e.throughput_tokens_per_s == 0


def test_tpot_grows_with_batch_and_batch_for_is_exact() -> None:
    e = estimate_inference(LLAMA31_8B, H100_SXM, "fp8", input_tokens=512, output_tokens=256)
    assert e.decode is not None
    tp = [e.tpot_at(b) for b in (1, 2, 8, 64, 256, e.max_batch)]
    assert tp == sorted(tp) and tp[-1] > tp[0]
    slo = 0.020
    b = e.batch_for(slo)
    assert b == batch_for(e, slo)
    assert 1 <= b < e.max_batch
    assert e.tpot_at(b) <= slo < e.tpot_at(b + 1)
    assert e.batch_for(e.tpot_at(1) * 0.5) == 0
    assert e.batch_for(10.0) == e.max_batch
    best_b, best_thr = e.best_under_tpot(slo)
    assert best_b == b and best_thr == pytest.approx(e.throughput_at(b))
    assert e.throughput_at(b) < e.throughput_tokens_per_s  # a tighter SLO costs throughput


def test_decode_turns_compute_bound_at_large_batch() -> None:
    e = estimate_inference(LLAMA31_8B, H100_SXM, "bf16", input_tokens=128, output_tokens=128, batch=1)
    big = estimate_inference(LLAMA31_8B, H100_SXM, "bf16", input_tokens=128, output_tokens=128, batch=1024)
    assert e.bound == "memory" and big.bound == "compute"


def test_batch_1_decode_is_weights_over_bandwidth() -> None:
    """At batch 1 the step time is the weights streamed once at the achievable bandwidth (Pope et al. 2022) plus
    the step's fixed costs: the scheduler's gap and each layer's kernel boundaries."""
    e = estimate_inference(LLAMA2_7B, H100_SXM, "fp16", input_tokens=16, output_tokens=16)
    floor = LLAMA2_7B.params * 2 / (3.35e12 * cal.DECODE_BANDWIDTH_EFFICIENCY)
    fixed = cal.DECODE_STEP_OVERHEAD_S + LLAMA2_7B.layers * cal.DECODE_LAYER_OVERHEAD_S
    assert floor * 0.95 + fixed < e.tpot_s < floor * 1.1 + fixed  # the embedding table is not streamed


def test_quantized_weights_pay_their_gemms_fixed_cost_in_every_forward_pass() -> None:
    """An FP8 step on an H100 streams half the bytes of an fp16 one, but each layer's four weight GEMMs start
    ~7 us later (the W8A8 path's measured fixed cost); FP8 on an A100 (no FP8 math) runs the weight-only path."""
    fp16 = estimate_inference(LLAMA2_7B, H100_SXM, "fp16", input_tokens=16, output_tokens=16)
    fp8 = estimate_inference(LLAMA2_7B, H100_SXM, "fp8", input_tokens=16, output_tokens=16)
    extra = LLAMA2_7B.layers * cal.LINEAR_GEMMS_PER_LAYER * cal.QUANTIZED_GEMM_FIXED_S["w8a8-fp8"]
    floor = LLAMA2_7B.params / (3.35e12 * cal.DECODE_BANDWIDTH_EFFICIENCY)
    fixed = cal.DECODE_STEP_OVERHEAD_S + LLAMA2_7B.layers * cal.DECODE_LAYER_OVERHEAD_S
    assert floor * 0.95 + fixed + extra < fp8.tpot_s < floor * 1.1 + fixed + extra
    assert fp8.tpot_s < fp16.tpot_s  # still faster: the bytes saved outweigh the fixed cost at 7B
    from planner.catalog import Catalog

    a100 = profile(Catalog.load().accelerator("a100-80gb"))
    assert quantized_gemm_path(a100, "fp8") == "w8a16" and quantized_gemm_path(a100, "int8") == "w8a8-int8"
    assert quantized_gemm_path(a100, "int4") == "w4a16" and quantized_gemm_path(a100, "bf16") is None
    assert quantized_gemm_path(H100_SXM, "fp8") == "w8a8-fp8"


def test_prefill_is_compute_bound_for_long_prompts_and_scales_with_length() -> None:
    short = estimate_inference(LLAMA31_8B, H100_SXM, "bf16", input_tokens=64, output_tokens=1)
    long = estimate_inference(LLAMA31_8B, H100_SXM, "bf16", input_tokens=8192, output_tokens=1)
    flops = 8192 * 2 * LLAMA31_8B.params
    assert long.ttft_s > flops / 989e12  # never faster than peak
    assert long.ttft_s > 20 * short.ttft_s


def test_tensor_parallel_speeds_up_and_pays_all_reduces() -> None:
    one = estimate_inference(LLAMA31_8B, H100_SXM, "bf16", input_tokens=4096, output_tokens=128)
    two = estimate_inference(LLAMA31_8B, H100_SXM, "bf16", tp=2, input_tokens=4096, output_tokens=128)
    assert two.ttft_s < one.ttft_s and two.tpot_s < one.tpot_s
    assert two.tpot_s > one.tpot_s / 2  # all-reduces and smaller GEMMs: less than linear
    assert ring_allreduce_s(1e6, 1, 450e9) == 0
    assert ring_allreduce_s(1e6, 8, 450e9) == pytest.approx(
        2 * 7 / 8 * 1e6 / (450e9 * cal.ALLREDUCE_BANDWIDTH_EFFICIENCY) + cal.ALLREDUCE_LATENCY_S)


def test_pipeline_parallel_saves_memory_not_latency() -> None:
    one = estimate_inference(LLAMA31_8B, H100_SXM, "bf16", input_tokens=512, output_tokens=128)
    pp2 = estimate_inference(LLAMA31_8B, H100_SXM, "bf16", pp=2, input_tokens=512, output_tokens=128)
    assert pp2.memory.weights_bytes_per_gpu < one.memory.weights_bytes_per_gpu * 0.51
    assert pp2.tpot_s >= one.tpot_s
    assert pp2.gpus == 2


def test_moe_expert_fraction() -> None:
    s = shape_of(MIXTRAL_8X7B)
    assert s.expert_params == pytest.approx(45.1e9, rel=0.01)
    assert expert_fraction(s, 1) == pytest.approx(2 / 8)
    assert expert_fraction(s, 4) == pytest.approx(1 - (6 / 8) ** 4)
    assert expert_fraction(s, 64) > 0.999
    assert expert_fraction(shape_of(LLAMA2_7B), 1) == 1.0


def test_energy_per_token_falls_with_batching() -> None:
    e = estimate_inference(LLAMA31_8B, H100_SXM, "fp8", input_tokens=512, output_tokens=256)
    assert e.energy_j_per_token is not None
    one_seq = 700 * cal.INFERENCE_POWER_FRACTION * e.tpot_s  # J per token alone on the GPU
    assert e.energy_j_per_token < one_seq / 10
    assert e.energy_j_per_request == pytest.approx(e.energy_j_per_token * 256)


def test_sliding_window_caps_kv_but_full_attention_does_not() -> None:
    from planner.estimator.reference import MISTRAL_7B

    short = inference_memory(MISTRAL_7B, "fp16", context_tokens=4096).kv_cache_bytes_per_gpu
    long = inference_memory(MISTRAL_7B, "fp16", context_tokens=32768).kv_cache_bytes_per_gpu
    assert short == long
    assert inference_memory(LLAMA31_8B, "fp16", context_tokens=32768).kv_cache_bytes_per_gpu == 8 * (
        inference_memory(LLAMA31_8B, "fp16", context_tokens=4096).kv_cache_bytes_per_gpu)


# ------------------------------------------------------------------------------------------ non-LLM


def test_bert_and_resnet_latency_and_throughput() -> None:
    b1 = estimate_inference(BERT_BASE_CASED, A100_80GB, "fp16", input_tokens=128, output_tokens=0, batch=1)
    b32 = estimate_inference(BERT_BASE_CASED, A100_80GB, "fp16", input_tokens=128, output_tokens=0, batch=32)
    assert b1.fits and b1.memory.kv_cache_bytes_per_gpu == 0 and b1.decode is None
    assert b1.latency_s < b32.latency_s < 32 * b1.latency_s  # batching amortises weights and launches
    assert b1.tpot_s == 0 and b1.energy_j_per_token is None
    r = estimate_inference(RESNET50, H100_SXM, "int8", input_tokens=1, output_tokens=0, batch=64)
    # 64 x 8.2 GFLOP at 35% of 1979 TOPS ~ 0.76 ms
    assert 0.5e-3 < r.latency_s < 2e-3
    assert r.requests_per_s > 10_000 and r.max_batch == cal.MAX_NONLLM_BATCH


# ----------------------------------------------------------------------------------------- training


def test_zero_stages_shrink_model_states_in_order() -> None:
    e = [estimate_training(LLAMA2_7B, H100_SXM, gpus=64, zero_stage=z, tokens=1e9) for z in (0, 1, 2, 3)]
    states = [x.model_states_bytes_per_gpu for x in e]
    assert states == sorted(states, reverse=True)
    assert states[0] == pytest.approx(16 * LLAMA2_7B.params, rel=1e-6)
    assert not e[0].fits and e[3].fits
    assert e[3].data_parallel == 64


def test_optimizer_and_precision_variants() -> None:
    fp32_adam = estimate_training(LLAMA2_7B, H100_SXM, gpus=8, dtype="fp32", tokens=1e9)
    sgd = estimate_training(LLAMA2_7B, H100_SXM, gpus=8, optimizer="sgd", tokens=1e9)
    assert fp32_adam.model_states_bytes_per_gpu == pytest.approx(16 * LLAMA2_7B.params, rel=1e-6)
    assert sgd.model_states_bytes_per_gpu == pytest.approx(8 * LLAMA2_7B.params, rel=1e-6)
    with pytest.raises(InputError, match="optimizer"):
        estimate_training(LLAMA2_7B, H100_SXM, gpus=8, optimizer="lion", tokens=1e9)


def test_activation_checkpointing_and_korthikanti_formula() -> None:
    kw = dict(gpus=8, zero_stage=3, sequence_length=4096, micro_batch_size=4, tokens=1e9)
    full = estimate_training(LLAMA2_7B, H100_SXM, activation_checkpointing=False, **kw)  # type: ignore[arg-type]
    ckpt = estimate_training(LLAMA2_7B, H100_SXM, activation_checkpointing=True, **kw)  # type: ignore[arg-type]
    assert ckpt.activation_bytes_per_gpu < full.activation_bytes_per_gpu / 5
    # without flash attention, Korthikanti's 34 s b h + 5 a s^2 b per layer (plus fp32 logits)
    from planner.estimator.training import activation_bytes_per_layer

    s, b, h, a = 4096, 4, 4096, 32
    assert activation_bytes_per_layer(s, b, h, a, flash_attention=False) == s * b * h * 34 + 5 * a * s * s * b
    assert activation_bytes_per_layer(s, b, h, a, tp=8, sequence_parallel=False, flash_attention=False) == (
        pytest.approx(s * b * h * (10 + 24 / 8 + 5 * a * s / (h * 8))))


def test_training_time_is_6pd_over_gpus_peak_mfu() -> None:
    e = estimate_training(LLAMA2_7B, H100_SXM, gpus=64, tokens=1e12, mfu=0.5, zero_stage=1)
    assert e.flops_total == pytest.approx(6 * LLAMA2_7B.params * 1e12)
    assert e.time_s == pytest.approx(e.flops_total / (64 * 989e12 * 0.5))
    assert e.gpu_hours == pytest.approx(e.time_s * 64 / 3600)
    moe = estimate_training(MIXTRAL_8X7B, H100_SXM, gpus=64, tokens=1e12, mfu=0.5, zero_stage=3)
    assert moe.flops_total == pytest.approx(6 * MIXTRAL_8X7B.active_params * 1e12)


def test_lora_trains_a_sliver_of_the_params() -> None:
    full = estimate_training(LLAMA2_7B, A100_80GB, gpus=1, tokens=1e8)
    lora = estimate_training(LLAMA2_7B, A100_80GB, gpus=1, tokens=1e8, method="lora", lora_rank=16)
    assert 0.001 * LLAMA2_7B.params < lora.trainable_params < 0.01 * LLAMA2_7B.params
    assert lora.fits and not full.fits
    assert lora.time_s == pytest.approx(full.time_s * 4 / 6)


# --------------------------------------------------------------------------------------------- edge


def test_edge_fit_and_reasons() -> None:
    kws = estimate_edge(KWS, MCU, "int8")
    assert kws.fits and kws.reason is None and kws.latency_s < 0.05
    # on an MCU the weights live in flash; the arena is the activations
    assert kws.storage_bytes == pytest.approx(KWS.params * weight_bytes_per_param("int8"), abs=1)
    big = estimate_edge(RESNET50, MCU, "int8")
    assert not big.fits_storage and big.reason is not None and "storage" in big.reason
    fp16 = estimate_edge(KWS, CORAL, "fp16")
    assert not fp16.supported and fp16.reason is not None and "int8" in fp16.reason
    assert math.isinf(fp16.latency_s)
    llm = estimate_edge(LLAMA2_7B, ORIN, "int4", input_tokens=128, output_tokens=128)
    assert llm.fits and llm.tpot_s is not None
    # 3.9 GB of int4 weights at ~70% of 204.8 GB/s: ~27 ms per token (llama.cpp on AGX Orin: 20-30 ms)
    assert 0.02 < llm.tpot_s < 0.04
    assert llm.energy_j_per_inference == pytest.approx(60 * cal.EDGE_POWER_FRACTION * llm.latency_s)


# ------------------------------------------------------------------------------------------ what-ifs


def test_quantization_whatif_rows() -> None:
    rows = quantization_whatif(LLAMA31_8B, H100_ROW, ["fp8", "int8", "int4"])
    assert [r.dtype for r in rows] == ["bf16", "fp8", "int8", "int4"]
    assert rows[0].memory_change == 0 and rows[0].latency_change == 0
    bf16, fp8, int8, int4 = (r.weights_bytes for r in rows)
    assert bf16 > int8 > fp8 > int4  # int8 carries per-channel scales, fp8 one scale per tensor
    assert rows[3].latency_s < rows[1].latency_s < rows[0].latency_s  # decode at batch 1 is bandwidth-bound
    assert -0.75 < rows[3].memory_change < -0.5
    assert all(r.note for r in rows)


def test_pruning_unstructured_saves_storage_only_past_break_even() -> None:
    assert break_even_sparsity(2.0, 2.0) == 0.5 and break_even_sparsity(1.0, 2.0) == pytest.approx(2 / 3)
    assert csr_bytes(10, 2, value_bytes=2, cols=100) == 10 * 4 + 3 * 4
    rows = pruning_whatif(LLAMA2_7B, H100_SXM, [0.3, 0.8], structured=False, dtype="fp16")
    base, low, high = rows
    assert low.storage_bytes == base.storage_bytes  # CSR would be bigger: kept dense
    assert high.storage_bytes < base.storage_bytes * 0.5
    assert high.latency_s == base.latency_s  # dense kernels: no speed-up


def test_pruning_structured_cuts_memory_flops_and_latency() -> None:
    rows = pruning_whatif(LLAMA2_7B, H100_SXM, 0.5, structured=True, dtype="fp16")
    base, half = rows
    assert half.params < 0.6 * base.params
    assert half.latency_s < base.latency_s * 0.65
    assert half.memory_change < -0.3
    cnn = pruning_whatif(RESNET50, H100_SXM, 0.5, structured=True, dtype="fp16")
    assert cnn[1].params == pytest.approx(RESNET50.params * 0.25, rel=0.01)


def test_distillation_whatif() -> None:
    from planner.estimator.reference import LLAMA2_13B

    rows = distillation_whatif(LLAMA2_13B, LLAMA2_7B, A100_80GB)
    assert rows[1].memory_change < -0.3 and rows[1].latency_change < -0.3 and rows[1].energy_change < 0
    with pytest.raises(InputError):
        pruning_whatif(LLAMA2_7B, H100_SXM, 1.5, structured=True)


# ---------------------------------------------------------------------------------------- properties

dims = st.sampled_from([512, 1024, 2048, 4096, 5120])


@st.composite
def dense_llms(draw: st.DrawFn) -> ModelArch:
    layers = draw(st.integers(2, 48))
    hidden = draw(dims)
    heads = hidden // 128
    kv = draw(st.sampled_from([h for h in (1, 2, 4, 8, heads) if heads % h == 0]))
    inter = hidden * draw(st.sampled_from([2, 3, 4]))
    vocab = draw(st.sampled_from([32000, 50257, 128256]))
    params = count_params(TransformerShape(layers=layers, hidden=hidden, heads=heads, kv_heads=kv, head_dim=128,
                                           intermediate=inter, vocab=vocab)).total
    return ModelArch(name="m", kind="llm", family="llama", params=params, active_params=params, layers=layers,
                     hidden_size=hidden, attention_heads=heads, kv_heads=kv, head_dim=128, intermediate_size=inter,
                     vocab_size=vocab, source="hypothesis")


@settings(max_examples=60, deadline=None)
@given(arch=dense_llms(), dtype=st.sampled_from(["bf16", "fp8", "int8", "int4"]), isl=st.integers(1, 8192),
       osl=st.integers(1, 4096), tp=st.sampled_from([1, 2, 4, 8]))
def test_estimates_are_finite_consistent_and_monotone(arch: ModelArch, dtype: str, isl: int, osl: int,
                                                      tp: int) -> None:
    e = estimate_inference(arch, H100_SXM, dtype, tp=tp, input_tokens=isl, output_tokens=osl)
    for v in (e.ttft_s, e.tpot_s, e.tpot_s_at_max_batch, e.throughput_tokens_per_s, e.latency_s):
        assert math.isfinite(v) and v >= 0
    assert e.ttft_s > 0 and e.tpot_s > 0
    if e.max_batch >= 1:
        assert e.fits
        assert e.tpot_s_at_max_batch >= e.tpot_s
        m = inference_memory(arch, dtype, tp=tp, batch=e.max_batch, context_tokens=isl + osl)
        assert m.total_bytes_per_gpu <= H100_SXM.memory_bytes * 0.9
    longer = estimate_inference(arch, H100_SXM, dtype, tp=tp, input_tokens=isl * 2, output_tokens=osl)
    assert longer.ttft_s >= e.ttft_s and longer.max_batch <= e.max_batch


@settings(max_examples=40, deadline=None)
@given(arch=dense_llms())
def test_lower_precision_never_needs_more_memory(arch: ModelArch) -> None:
    w = [inference_memory(arch, d, context_tokens=1024).weights_bytes for d in ("fp32", "bf16", "fp8", "int4")]
    assert w == sorted(w, reverse=True)


# -------------------------------------------------------------------------------------------- speed


def test_estimate_inference_is_cheap_enough_for_the_optimizer() -> None:
    """The optimizer calls it ~10^4 times per recommendation. Wall time on a shared 2-core machine swings 2-4x
    with the load, so this counts what the time is made of, deterministically: Python function calls per
    estimate (about 1.5 us each here). Measured timings are printed by benchmarks/planner_speed.py."""
    import sys

    estimate_inference(LLAMA31_8B, H100_SXM, "fp8", input_tokens=512, output_tokens=256)  # warm the shape cache
    calls = 0

    def count(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        calls += event in ("call", "c_call")

    n = 100
    sys.setprofile(count)
    try:
        for i in range(n):
            estimate_inference(LLAMA31_8B, H100_SXM, "fp8", tp=1 + i % 2, input_tokens=512, output_tokens=256,
                               batch=1 + i % 64)
    finally:
        sys.setprofile(None)
    assert calls / n < 250, f"{calls / n:.0f} function calls per estimate"


def test_hardware_profile_is_frozen() -> None:
    with pytest.raises(AttributeError):
        H100_SXM.memory_bytes = 1  # type: ignore[misc]
    assert isinstance(H100_SXM, HardwareProfile)


# ------------------------------------------------------------------------ every preset x every catalog row


def test_every_preset_on_every_catalog_device_gives_finite_estimates() -> None:
    """The optimizer sweeps presets x catalog rows x dtypes: no combination may raise or return NaN/inf."""
    from planner.catalog import Catalog
    from planner.models.presets import all_presets

    cat = Catalog.load()
    checked = 0
    for arch in all_presets().values():
        for acc in cat.accelerators.values():
            prof = profile(acc)
            for dtype in ("bf16", "fp8", "int4"):
                e = estimate_inference(arch, prof, dtype, input_tokens=512, output_tokens=256)
                assert all(math.isfinite(v) and v >= 0 for v in (e.ttft_s, e.tpot_s, e.latency_s,
                                                                 e.requests_per_s, e.energy_j_per_request))
                assert e.memory.total_bytes_per_gpu > e.memory.weights_bytes_per_gpu > 0
                checked += 1
        for dev in cat.edge_devices.values():
            edge = estimate_edge(arch, dev, "int8")
            assert edge.fits == (edge.reason is None)
    assert checked > 100
