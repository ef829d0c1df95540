"""Every calibrated constant of the estimator, in one place, each with where its value comes from.

The formulas in the other modules are exact accounting (bytes, FLOPs); what real kernels achieve of the peak is
not, and is set here. Change a value here and every estimate follows; ``benchmarks/estimator_vs_published.py``
prints how far the estimates then sit from published measurements.
"""

from __future__ import annotations

from typing import Final

# ------------------------------------------------------------------------------------------ quantization

INT4_GROUP_SIZE: Final = 128
"""Weights per quantization group for int4 (GPTQ, Frantar et al. 2022; AWQ, Lin et al. 2023: group size 128 is the
default of both and of the published 4-bit checkpoints)."""

INT4_SCALE_BYTES: Final = 2.0
"""One fp16 scale per int4 group (GPTQ/AWQ). Zero points are packed int4 (0.5 B per group) in GPTQ/AWQ."""

INT4_ZERO_BYTES: Final = 0.5
"""One packed int4 zero point per group (AutoGPTQ / AutoAWQ asymmetric quantization)."""

INT8_CHANNEL_DIM: Final = 4096
"""int8 weights carry one fp16 scale per output channel (LLM.int8(), Dettmers et al. 2022; SmoothQuant, Xiao et
al. 2022): 2 bytes per row of ``in_features`` weights. 4096 is a typical ``in_features``, so the overhead is
2/4096 bytes per weight: negligible, but counted."""

FP8_SCALE_BYTES_PER_PARAM: Final = 0.0
"""FP8 (E4M3) checkpoints carry one fp32 scale per tensor (NVIDIA ModelOpt / vLLM fp8): 4 bytes per matrix of
millions of weights, i.e. zero to six decimals."""

QUANTIZED_KEEPS_EMBEDDINGS_16BIT: Final = True
"""Weight-quantized checkpoints keep the token embedding and the LM head in fp16/bf16 (AutoAWQ, AutoGPTQ and
ModelOpt FP8 all skip ``lm_head``/``embed_tokens``). With this a 4-bit Llama-2-7B is 3.9 GB, which is what the
published AWQ checkpoint (TheBloke/Llama-2-7B-AWQ, 3.89 GB) weighs."""

# --------------------------------------------------------------------------------------- runtime memory

GPU_RUNTIME_OVERHEAD_BYTES: Final = int(1.5 * 2**30)
"""Per-GPU memory the serving runtime needs beyond weights, KV cache and activations: CUDA context (~0.5 GiB on
Hopper), cuBLAS/cuDNN workspaces, NCCL buffers and CUDA-graph pools. vLLM's start-up log reports
``non_torch_memory`` 0.2-0.6 GiB plus CUDA graphs 0.3-1.0 GiB for 7-70B models; 1.5 GiB covers both."""

EDGE_RUNTIME_OVERHEAD_BYTES: Final = {
    "jetson": (600 * 2**20),
    "sbc": (64 * 2**20),
    "tpu": (16 * 2**20),
    "mcu": 16 * 2**10,
}
"""Runtime overhead on edge devices. Jetson: CUDA + TensorRT context takes 0.5-0.8 GB of the unified RAM (NVIDIA
Jetson forums / jtop readings). SBC: ONNX Runtime / TFLite interpreter ~30-80 MB RSS. Coral Edge TPU: the
libedgetpu delegate, ~10-20 MB. MCU: TFLite Micro interpreter + op resolver, ~10-20 KB of SRAM (TFLM paper,
David et al. 2021, Table 2)."""

PREFILL_CHUNK_TOKENS: Final = 8192
"""Tokens processed per forward pass during prefill: vLLM's ``max_num_batched_tokens`` with chunked prefill
(8192 in vLLM v1 for online serving) and TensorRT-LLM's ``max_num_tokens`` default (8192). Sizes the transient
activation memory."""

MAX_CONCURRENT_SEQUENCES: Final = 2048
"""Upper bound on the continuous-batching batch: TensorRT-LLM's default ``max_batch_size`` (2048); vLLM's
``max_num_seqs`` is 256-1024 by default. The planner never assumes a larger batch than a runtime schedules."""

MAX_NONLLM_BATCH: Final = 1024
"""Largest batch considered for non-LLM models (Triton dynamic batcher sizes seen in practice are <= 1024)."""

LOGITS_BYTES: Final = 4
"""Logits are materialised in fp32 for sampling (vLLM ``logits_processor``, HF ``generate``)."""

CNN_PEAK_ACTIVATION_PER_INPUT_ELEMENT: Final = 16.0
"""Peak live activation elements per input element of a CNN: ResNet-50 at 224x224x3 (150,528 elements) keeps
~2 tensors of 56x56x256 / 112x112x64 (802,816 elements, 5.3x the input) plus the residual alive at its peak,
~16x the input (torchvision ResNet-50 activation sizes; TFLite Micro arena planner reports the same order)."""

# ------------------------------------------------------------------------------------ achievable fraction

DECODE_BANDWIDTH_EFFICIENCY: Final = 0.78
"""Fraction of HBM peak bandwidth a decode step reaches (memory-bound GEMV + paged attention). Measured: vLLM
Llama-3.1-8B bf16 at batch 1 on A100-40GB: 75 tok/s = 77% of the 1555 GB/s roofline (J. Musgrave, "vLLM
throughput-latency sweep on NVIDIA A100"); TensorRT-LLM and vLLM reports of 75-85% on H100."""

PREFILL_FLOPS_EFFICIENCY: Final = 0.55
"""Fraction of dense peak FLOPs prefill (large GEMMs + flash attention) reaches. Calibrated on TensorRT-LLM's
published H100 FP8 Llama-3.1-8B 2048/128 and 5000/500 throughput (prefill-dominated: 3,450 and 3,459 tok/s),
consistent with the 50-70% large-GEMM efficiency cuBLAS reaches on H100."""

DECODE_FLOPS_EFFICIENCY: Final = 0.50
"""Fraction of dense peak FLOPs a large-batch decode step reaches (skinny GEMMs at batch 256-2048, attention over
paged KV): TensorRT-LLM H100 FP8 Llama-3.1-8B 128/128 (28,312 tok/s, compute-bound) implies ~0.5."""

FP8_GEMM_EFFICIENCY_RATIO: Final = 0.75
"""PREFILL_FLOPS_EFFICIENCY and DECODE_FLOPS_EFFICIENCY are FP8 figures (calibrated on TensorRT-LLM's H100 FP8
runs). FP8 GEMMs reach a smaller fraction of their (twice as high) peak than 16-bit GEMMs reach of theirs, so math
in 16 bits or wider runs at those fractions / this ratio (:func:`planner.estimator.inference.math_efficiency`);
8-bit and narrower math (FP8, INT8, FP4, INT4) at them as calibrated.

Source: NVIDIA's measured GEMM tables shipped with AIConfigurator 0.12.0
(systems/data/<gpu>/gemm/<engine>/<version>/gemm_perf.parquet, Apache-2.0): mean achieved fraction of dense peak
over Llama-8B/70B layer shapes at m = 2,048-8,192 tokens, FP8 / BF16:

- H100 SXM: TensorRT-LLM 1.3 0.58 / 0.78 = 0.745 (the engine and GPU the two efficiencies were calibrated on: the
  value used), vLLM 0.24 0.57 / 0.79 = 0.73;
- H200 SXM: 0.59 / 0.78 = 0.76 and 0.64 / 0.78 = 0.81; L40S: 0.49 / 0.61 = 0.80 and 0.48 / 0.63 = 0.77;
- INT8 on A100 (TensorRT-LLM SmoothQuant) reaches 0.80-0.87 of the INT8 peak, as BF16 does of its own
  (0.83-0.87); no table covers INT8 on Hopper, where it shares FP8's tensor-core path, so INT8 keeps the FP8
  figure everywhere (conservative on Ampere).

Checked, not fitted, against the NIM rows of benchmarks/slo_published.py: 16-bit TTFT of 2,000-token prompts at
concurrency 1 was 15-20% high without it."""

NONLLM_FLOPS_EFFICIENCY: Final = 0.35
"""Fraction of peak for CNN / encoder inference through TensorRT or ONNX Runtime: MLPerf Inference v3.1 ResNet-50
offline on H100 (~90k img/s x 8.2 GFLOP = 0.74 PFLOP/s of 1.98 PFLOPS int8 dense) is ~0.37."""

EDGE_FLOPS_EFFICIENCY: Final = {"jetson": 0.30, "sbc": 0.25, "tpu": 0.15, "mcu": 0.50}
"""Fraction of the datasheet TOPS edge runtimes reach. Jetson Orin: MLPerf Edge ResNet-50 offline (~6.4k img/s x
8.2 GFLOP = 52 TOPS of 170 dense int8 TOPS) ~0.3. SBC CPUs with ONNX Runtime / TFLite XNNPACK: 20-30% of SIMD peak.
Coral Edge TPU: MobileNet-v1 (1.14 GOP) in ~2.4 ms on the USB accelerator (coral.ai/docs/edgetpu/benchmarks) =
0.48 of 4 TOPS ~0.12-0.15. MCU: CMSIS-NN reaches ~0.5 of the SIMD MAC peak (Lai et al. 2018)."""

EDGE_BANDWIDTH_EFFICIENCY: Final = 0.70
"""Fraction of LPDDR peak bandwidth reached by edge runtimes (llama.cpp on Jetson Orin: ~140 of 204.8 GB/s)."""

ALLREDUCE_BANDWIDTH_EFFICIENCY: Final = 0.80
"""Bus bandwidth NCCL all-reduce reaches of the NVLink peak: nccl-tests on DGX H100 show ~360-380 GB/s busbw
of 450 GB/s one-direction NVLink 4 for large messages."""

ALLREDUCE_LATENCY_S: Final = 8e-6
"""Fixed cost of one small all-reduce inside a node: NCCL's LL protocol ~10-20 us on 8 GPUs, TensorRT-LLM's
custom one-shot all-reduce ~5-8 us (TensorRT-LLM ``AllReduceStrategy`` docs). Per decode step the model runs two
all-reduces per layer (Megatron-LM, Shoeybi et al. 2019)."""

INTERNODE_BYTES_PER_S: Final = 50e9
"""Per-GPU inter-node bandwidth when tensor/pipeline parallelism leaves the NVLink domain: 400 Gb/s InfiniBand
NDR or EFA per GPU (p5.48xlarge: 3200 Gb/s for 8 GPUs) = 50 GB/s."""

P2P_LATENCY_S: Final = 10e-6
"""Latency of one pipeline-stage activation send (NCCL send/recv, intra-node)."""

DECODE_STEP_OVERHEAD_S: Final = 0.4e-3
"""Per decode step scheduling + sampling + launch overhead with CUDA graphs (vLLM v1 / TensorRT-LLM): measured
gaps of 0.2-0.6 ms between steps at small batch (vLLM v0.6 performance blog, "CPU overhead")."""

DECODE_LAYER_OVERHEAD_S: Final = 33e-6
"""Per layer and forward pass (decode step or prompt chunk) on a GPU: the kernel boundaries of a layer's ~6
kernels (norm, QKV, attention, output projection, MLP, activation), during which no weights stream: launch, setup,
teardown and the wait for the previous kernel's last thread blocks. Hazy Research, "Look Ma, No Bubbles!"
(Spector et al., 2025-05-27): on an H100, vLLM and SGLang run Llama-3.2-1B (16 layers, ~100 kernels per forward
pass) at batch 1 at no more than 50% of the memory bandwidth, where one fused kernel reaches 78%. The 2.47 GB a
step reads then take 1.475 ms against 0.946 ms: 0.53 ms of boundaries over 16 layers, 33 us per layer. Taken
the same on every GPU and engine (not fitted to the published load figures that benchmarks/slo_published.py
checks it against). Checked against vLLM's own CI latency benchmark (batch 8, 32 + 128 tokens, Llama-3.1-8B,
Llama-3-70B TP4 and Mixtral-8x7B TP2 on H100, H200 and A100; planner/estimator/reference.py): median error 20.5%
without it, 11.1% with it, still 0-16% low."""

LINEAR_GEMMS_PER_LAYER: Final = 4
"""Weight GEMMs a transformer layer launches per forward pass: fused QKV, attention output, fused gate/up (or the
MoE experts' grouped gate/up) and down projection (vLLM ``QKVParallelLinear``, ``MergedColumnParallelLinear``)."""

QUANTIZED_GEMM_FIXED_S: Final[dict[str, float]] = {"w8a8-fp8": 7.0e-6, "w8a8-int8": 5.3e-6,
                                                   "w8a16": 9.2e-6, "w4a16": 14.6e-6}
"""Extra fixed cost of one quantized weight GEMM over a 16-bit one, by kernel path, on GPUs. Source: NVIDIA's
measured GEMM tables shipped with AIConfigurator 0.12.0 (``systems/data/<gpu>/gemm/<engine>/<version>/
gemm_perf.parquet``, Apache-2.0), fitted as t = t0 + bytes / BW over every (n, k) of 16 MB to 2 GB at m <= 16:
each path streams its weights at 80-88% of peak bandwidth, as bf16 does, but starts later (activation quantization,
dequantization, scaling epilogues). t0 over bf16's:

- FP8 W8A8 (per-tensor scales): vLLM 0.24.0 +6.4 us on H100, +7.5 us on H200 (TensorRT-LLM 1.3.0rc20 +9.5 / +9.4,
  SGLang 0.5.14 +4.2 / +5.2); the vLLM figure, the engine mlplan deploys. On an L40S the tables show none (a few
  us less bandwidth instead), so it slightly overstates Ada.
- INT8 W8A8 (SmoothQuant): TensorRT-LLM 1.0.0 on A100 +5.3 us.
- W8A16 (INT8 weight-only, also FP8 weights upcast on GPUs without FP8 math): TensorRT-LLM 1.0.0 on A100 +9.2 us.
- W4A16 (AWQ / GPTQ INT4, FP4 weights on GPUs without FP4 math): TensorRT-LLM 1.0.0 on A100 +14.6 us.

Native FP4 (Blackwell) has no table here and pays none. Paid LINEAR_GEMMS_PER_LAYER times per layer and forward
pass, on top of DECODE_LAYER_OVERHEAD_S (:func:`planner.estimator.inference.quantized_gemm_path`). Not fitted to
the published load figures benchmarks/slo_published.py checks it against."""

PREFILL_OVERHEAD_S: Final = 2e-3
"""Fixed cost of admitting one request (tokenisation, scheduling, first kernel launches): TTFT floors of ~2-5 ms
for short prompts in vLLM/TensorRT-LLM benchmarks."""

NONLLM_LAUNCH_OVERHEAD_S: Final = 0.3e-3
"""Fixed per-batch latency of a Triton/TensorRT or ONNX Runtime CUDA call for a small model (MLPerf ResNet-50
SingleStream on A100: ~0.5 ms at 8.2 GFLOP, of which ~0.3 ms is not compute)."""

CPU_NONLLM_LAUNCH_OVERHEAD_S: Final = 36e-6
"""Fixed per-batch latency of an ONNX Runtime CPU session run (one intra-op thread, as the serving runtime loads
models): the demo MLP (85k parameters, serving/runtime/onnx_model.py) takes 39 / 45 / 51 / 63 / 83 us at batch
1 / 2 / 4 / 8 / 16 on this machine's x86 core (measured, median of 2,000 runs, 2026-11-30), i.e. 36 us plus
3 us per row; the rows' own time is the roofline's. A CUDA launch (NONLLM_LAUNCH_OVERHEAD_S) does not apply."""

# ------------------------------------------------------------------------------------------------ power

INFERENCE_POWER_FRACTION: Final = 0.70
"""Average board power while serving, as a fraction of TDP: the ML.ENERGY leaderboard (Chung et al. 2023) and
NVIDIA's DGX H100 inference readings show 60-80% of TDP under saturated decode."""

EDGE_POWER_FRACTION: Final = 0.80
"""Edge devices run near their rated power mode while inferring (Jetson ``nvpmodel`` power budgets)."""

# ------------------------------------------------------------------------------------------------ training

DEFAULT_MFU: Final = 0.40
"""Model FLOPs utilisation of a well-tuned dense LLM training run: PaLM 46.2% (Chowdhery et al. 2022), Megatron
GPT-3 175B 44-52%, Llama-2-7B 2T tokens in 184,320 A100-hours = 39% (Touvron et al. 2023, derived in
tests/test_estimator_published.py)."""

TRAINING_FLOPS_PER_PARAM_TOKEN: Final = 6.0
"""Kaplan et al. 2020 (Scaling Laws) / Hoffmann et al. 2022 (Chinchilla): C = 6 N D (2 forward + 4 backward)."""

LORA_FLOPS_PER_PARAM_TOKEN: Final = 4.0
"""LoRA (Hu et al. 2021): no weight gradients for frozen matrices, so 2 forward + 2 backward (activation
gradients) per parameter and token; the adapters' own cost is negligible at small rank."""

TRAINING_MEMORY_OVERHEAD_BYTES: Final = int(2.0 * 2**30)
"""Per-GPU overhead while training: CUDA context, NCCL buffers, allocator fragmentation (PyTorch caching
allocator typically leaves 5-10% reserved-but-unused; DeepSpeed/FSDP reports ~1-3 GiB)."""

KV_BLOCK_TOKENS: Final = 16
"""Paged KV cache block size: a sequence's KV occupies whole blocks (vLLM ``block_size`` default 16; Kwon et al.
2023, PagedAttention)."""

CNN_ACTIVATION_TRAFFIC_PER_INPUT_ELEMENT: Final = 75.0
"""Sum of all layer outputs of a CNN per input element (each written once and read once per inference; all kept
for the backward pass in training). torchvision ResNet-50 at 224x224x3: ~11.3M activation elements per image,
75x its 150,528 input elements."""

CPU_RUNTIME_OVERHEAD_BYTES: Final = 300 * 2**20
"""Resident memory of a CPU inference runtime beyond weights and tensors: PyTorch/ONNX Runtime libraries and
allocator (torch 2.x CPU process RSS after import ~250-350 MiB)."""

UNIFORM_EXPERT_ROUTING: Final = True
"""MoE decode: the experts a batch touches are modelled as uniform random top-k routing (auxiliary
load-balancing loss makes routing near-uniform: Fedus et al. 2021, Switch Transformer; Jiang et al. 2024, Mixtral
Sec. 5 routing analysis)."""

CNN_CHECKPOINT_FRACTION: Final = 0.25
"""Share of a CNN's activation memory kept with gradient checkpointing: sqrt(n) segments (Chen et al. 2016,
"Training Deep Nets with Sublinear Memory Cost", report 4x or more savings on ResNet at ~30% extra compute)."""

TP_EFFICIENCY_PER_DOUBLING: Final = 0.92
"""Compute efficiency kept per doubling of tensor parallelism: 0.92^3 = 0.78 at TP8, the 77% scaling efficiency
Megatron-LM reports for 8-way model parallelism (Shoeybi et al. 2019, Sec. 5.1). Calibrated together with the
all-reduce model on TensorRT-LLM's H100 FP8 Llama-3.3-70B TP2 and Llama-3.1-405B TP8 throughput."""

TRAINING_LOGITS_COPIES: Final = 4
"""fp32 copies of the (sequence x batch x vocab) logits live when the loss's backward starts, with PyTorch's
``F.cross_entropy`` as Hugging Face Transformers uses it: the logits (kept by the caller's output object), the
saved log-softmax output, and the gradients with respect to each. Measured: benchmarks/memory_vs_measured.py
(the AdamW cases match only with all four). Fused linear cross-entropy (Liger kernel, Megatron's vocab-parallel
cross entropy) keeps about one; Korthikanti et al. 2022 count one (4 s b v bytes)."""

CPU_BANDWIDTH_EFFICIENCY: Final = 0.60
"""Fraction of a CPU's copy (STREAM-like) bandwidth that decode GEMVs reach through MKL/oneDNN (PyTorch, ONNX
Runtime): 55-95% measured for 768-50k wide fp32 matrices on 2 threads (benchmarks/memory_vs_measured.py)."""

CPU_FLOPS_EFFICIENCY: Final = 0.70
"""Fraction of a CPU's large-GEMM FLOP/s that a transformer forward reaches (GEMMs of tokens x h x 3h, plus
layer norms, GELU and attention that run far below peak)."""

CPU_LAYER_OVERHEAD_S: Final = 0.3e-3
"""Per layer and decode step on a CPU runtime: eager operator dispatch ~10-20 us x ~20 operators per layer
(PyTorch CPU dispatcher overhead; ONNX Runtime is similar per node)."""

SERVING_CPU_S_PER_REQUEST: Final = {"ray": 28e-3, "triton": 1.7e-3}
"""CPU time the serving runtime spends per request (HTTP parsing, JSON, routing, the Ray task between proxy and
replica), all its processes together, above their idle background: measured on the first 2-core x86 machine with
benchmarks/slo_local.py (utime + stime of the server's process session from /proc over open-loop runs of the demo
MLP at 5-126 req/s, 2026-11-30): Ray Serve 2.60 27-31 ms (12 processes: proxy, controller, replica, GCS, raylet),
Triton 2.51 1.6-1.9 ms; re-measured 2026-12-01 at 5-58 req/s, Ray Serve 22-31 ms (it falls a little as the rate
rises). Re-measured 2026-12-01 (later) on a 2-core machine 3-5x faster at everything (the same simulator benchmark
runs 3.4x faster): Ray Serve 5-11 ms, Triton 0.3-0.8 ms; the figures kept are the first machine's, so on faster
hosts the planned latencies are conservative (benchmarks/slo_local.py prints both). On a CPU host this work shares
the node's hardware threads with the model, split between the runtime's request-path processes, one after the
other: the planner adds ``b`` x this / min(threads, SERVING_CPU_PROCESSES) to a batch of ``b`` in the replica's
process (:func:`planner.simulator.estimator_costs.host_serving`), which is what bounds the demo's capacity, and
the same share per request to a stage ahead of it (the same function);
a GPU host's runtime runs on CPU cores the model does not use. These are defaults: a host measured with
``mlplan calibrate`` (a ``serving_calibrations`` row of the catalog overlay) is planned with its own figure instead
(:func:`planner.optimizer.runtimes.runtime_cost`)."""

SERVING_CPU_PROCESSES: Final = {"ray": 2, "triton": 1}
"""Processes a request's CPU work (SERVING_CPU_S_PER_REQUEST) is split between, one after the other, each on a
hardware thread of its own where the CPU host has them. Ray Serve: the node's HTTP proxy actor and the replica
actor, two processes (https://docs.ray.io/en/latest/serve/architecture.html), each one asyncio event loop; the
GCS, raylet and controller it also touches do little per request. Triton: one server process, whose HTTP
frontend hands the request to the model instance's thread. Checked on this 2-thread machine with
benchmarks/slo_local.py (2026-12-01): Triton's measured p50 at 5 req/s (3.1 ms) is above even its serial figure
(2.25 ms), so its work is not split. Ray's two processes as two stages, the proxy a processor-sharing queue
(planner.simulator.engines.FrontStage), were checked on the demo with benchmarks/slo_local.py (2026-12-02, this
host calibrated): predicted p99 +15%, -12%, -27% and -84% off the measured at 5, 20, 68 and 230 req/s, where the one
server twice as fast of before was -13%, -20%, -46% and -77% off at 5, 20, 60 and 183 req/s (2026-12-01); with the
proxy's measured share (SERVING_FRONT_SHARE) and the host's other work (host_slowdown) too, +0%, +2%, -1% and +34%
at 5, 20, 49 and 122 req/s. In two later runs the host's own speed moved by 40-65% (the server's CPU per request
at the same rate) between calibrating and measuring, and the errors with it (up to +141% and -56%)."""

SERVING_FRONT_SHARE: Final = {"ray": 0.52}
"""Share of SERVING_CPU_S_PER_REQUEST spent in the process each request passes before the replica's, where the
runtime has one (a runtime not named here: none). Ray Serve's HTTP proxy (ray::ProxyActor) took 52-53% of the
server's CPU per request at 60-210 req/s on the demo (utime + stime from /proc/<pid>/stat, 2026-12-02; the replica
45-47%, the dashboard agent and the driver the rest), as it parses the request and the response and routes both.
``mlplan calibrate`` measures a host's own share."""

def front_share(runtime: str, measured: float | None = None) -> float:
    """The share of ``runtime``'s CPU work per request in its front process: a host's ``measured`` figure where
    the runtime has a front process (SERVING_FRONT_SHARE names those), else the default; 0 for a runtime without
    one, whatever was measured."""
    default = SERVING_FRONT_SHARE.get(runtime, 0.0)
    return measured if measured is not None and default > 0 else default


SERVING_BACKGROUND_CORES: Final = {"ray": 0.08}
"""Cores the runtime's processes take while serving nothing (Ray: the GCS, raylet, dashboard agent and controller
polling), measured by ``mlplan calibrate`` on the demo (0.077-0.092 cores, 2-thread VM, 2026-12-02). On a CPU host
with few threads they slow the request path's processes (planner.simulator.estimator_costs.host_slowdown)."""

SERVING_OVERHEAD_S: Final = {"ray": 4e-3, "vllm": 3e-3, "triton": 0.5e-3, "tensorrt-llm": 0.5e-3, "firmware": 0.0}
"""Per-request time the serving runtime adds on top of the model (HTTP parsing, routing, (de)serialisation),
added to TTFT and end-to-end latency. Ray Serve: ~5 ms p50 per HTTP request for a trivial model on an idle
2-core machine (measured, shared/ENVIRONMENT.md), of which ~1 ms is the model: 4 ms. Triton: 0.4 ms p50 at one
client for the 85k-parameter demo MLP over HTTP (benchmarks/serving_load.py), so 0.5 ms. vLLM's OpenAI server is
FastAPI/uvicorn behind Ray Serve's proxy in a Ray Serve LLM app: taken as 3 ms (assumed between the two, not
measured here: vLLM does not install on these machines). Firmware calls the model in-process: 0. Defaults, as
SERVING_CPU_S_PER_REQUEST: a host measured with ``mlplan calibrate`` is planned with its own figures, which also
follow the load (:mod:`planner.estimator.overhead`)."""
