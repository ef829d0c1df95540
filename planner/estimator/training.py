"""Training memory (ZeRO model states + activations) and time (6 P D FLOPs at an MFU).

- Model states: Rajbhandari et al. 2020 (ZeRO), Sec. 3 and Fig. 1: mixed-precision Adam keeps 2P (fp16 params)
  + 2P (fp16 grads) + K P (fp32 master, momentum, variance: K = 12) bytes; stage 1 partitions the optimizer
  states over the N data-parallel ranks, stage 2 also the gradients, stage 3 also the parameters.
- Activations: Korthikanti et al. 2022 (Reducing Activation Recomputation), Sec. 4: per layer
  s b h (34 + 5 a s / h) bytes without parallelism, / t with tensor + sequence parallelism; full recomputation
  keeps only 2 s b h per layer (the layer input).
- FLOPs: Kaplan et al. 2020 / Hoffmann et al. 2022: 6 N D (MoE: N = active params, Fedus et al. 2021).
- Time: FLOPs / (GPUs x peak x MFU) (Chowdhery et al. 2022, PaLM, App. B defines MFU this way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.errors import InputError
from planner.estimator import calibration as cal
from planner.estimator.dtypes import DTYPE_BYTES, check_dtype
from planner.estimator.hardware import HardwareProfile
from planner.estimator.shape import Shape, shape_of
from planner.models.arch import ModelArch

OPTIMIZER_STATE_BYTES: dict[tuple[str, bool], float] = {
    # (optimizer, mixed precision) -> K bytes per parameter of optimizer state (ZeRO paper's K)
    ("adamw", True): 12.0,  # fp32 master copy + momentum + variance (ZeRO Sec. 3.1)
    ("adam", True): 12.0,
    ("adamw", False): 8.0,  # fp32 training: the params are the master copy; momentum + variance
    ("adam", False): 8.0,
    ("sgd-momentum", True): 8.0,  # fp32 master + momentum
    ("sgd-momentum", False): 4.0,
    ("sgd", True): 4.0,  # fp32 master only
    ("sgd", False): 0.0,
}


def optimizer_k(optimizer: str, dtype: str) -> float:
    """ZeRO's K (optimizer-state bytes per parameter) for an optimizer and training precision."""
    key = (optimizer, dtype in ("bf16", "fp16"))
    if key not in OPTIMIZER_STATE_BYTES:
        raise InputError(f"unknown optimizer {optimizer!r}", fix="use adamw, adam, sgd or sgd-momentum")
    return OPTIMIZER_STATE_BYTES[key]


def zero_model_states_bytes(params: float, *, dp: int, zero_stage: int, param_bytes: float = 2.0,
                            grad_bytes: float = 2.0, k: float = 12.0) -> float:
    """Per-GPU model-state bytes under ZeRO (Rajbhandari et al. 2020, Fig. 1), N = ``dp`` ranks:

    stage 0: (2 + 2 + K) P; stage 1: 2P + 2P + K P / N; stage 2: 2P + (2 + K) P / N; stage 3: (2 + 2 + K) P / N.
    7.5B params, N = 64, K = 12: 120 / 31.4 / 16.6 / 1.9 GB.
    """
    n = max(1, dp)
    if zero_stage == 0:
        return (param_bytes + grad_bytes + k) * params
    if zero_stage == 1:
        return (param_bytes + grad_bytes) * params + k * params / n
    if zero_stage == 2:
        return param_bytes * params + (grad_bytes + k) * params / n
    if zero_stage == 3:
        return (param_bytes + grad_bytes + k) * params / n
    raise InputError(f"ZeRO stage must be 0, 1, 2 or 3 (got {zero_stage})", fix="use 0-3")


def activation_bytes_per_layer(s: int, b: int, h: int, a: int, *, tp: int = 1, sequence_parallel: bool = True,
                               checkpointing: bool = False, flash_attention: bool = True) -> float:
    """Activation bytes one transformer layer stores for the backward pass (16-bit activations).

    Korthikanti et al. 2022, eq. (1)-(4): s b h (34 + 5 a s / h) with no parallelism; with tensor parallelism
    t: s b h (10 + 24/t + 5 a s / (h t)), and with sequence parallelism s b h (34/t + 5 a s / (h t)).
    FlashAttention (Dao et al. 2022) stores no s x s scores: the 5 a s / h term goes. Full activation
    checkpointing stores only the layer input, 2 s b h (/ t under sequence parallelism).
    """
    if checkpointing:
        return 2.0 * s * b * h / (tp if sequence_parallel else 1)
    attn = 0.0 if flash_attention else 5.0 * a * s / h
    if tp == 1 or sequence_parallel:
        return s * b * h * (34.0 + attn) / tp
    return s * b * h * (10.0 + 24.0 / tp + attn / tp)


def lora_trainable_params(s: Shape, rank: int) -> int:
    """LoRA adapters on every attention and MLP matrix (Hu et al. 2021): r (d_in + d_out) per matrix."""
    kvd = s.kv_heads * s.head_dim
    attn = (s.hidden + s.attn_dim) * 2 + (s.hidden + kvd) * 2
    mlp = (3 if s.gated else 2) * (s.hidden + s.intermediate) * s.experts
    return rank * s.layers * (attn + mlp)


@dataclass(frozen=True, slots=True)
class TrainingEstimate:
    model_states_bytes_per_gpu: int
    activation_bytes_per_gpu: int
    overhead_bytes_per_gpu: int
    total_bytes_per_gpu: int
    capacity_bytes_per_gpu: int
    fits: bool
    flops_total: float
    time_s: float
    gpu_hours: float
    data_parallel: int
    trainable_params: int
    tokens_per_s: float


def estimate_training(arch: ModelArch, hw: HardwareProfile, *, gpus: int, dtype: str = "bf16",
                      optimizer: str = "adamw", zero_stage: int = 0, tp: int = 1, pp: int = 1,
                      micro_batch_size: int = 1, sequence_length: int = 2048, activation_checkpointing: bool = True,
                      tokens: float, mfu: float = cal.DEFAULT_MFU, method: str = "full", lora_rank: int = 16,
                      flash_attention: bool = True, memory_headroom: float = 0.0) -> TrainingEstimate:
    """Memory per GPU and wall time of a training run of ``tokens`` tokens on ``gpus`` accelerators.

    Data parallelism = gpus / (tp x pp). Params per GPU are P / (tp x pp) before ZeRO partitions them over
    the data-parallel ranks. ``method="lora"`` trains low-rank adapters only: the frozen base is held in
    ``dtype`` (sharded under ZeRO-3) and optimizer states exist for the adapters alone.
    """
    check_dtype(dtype)
    if gpus < 1 or tp < 1 or pp < 1 or gpus % (tp * pp):
        raise InputError(f"gpus={gpus} is not a multiple of tp x pp = {tp * pp}",
                         fix="choose gpus, tp and pp with gpus % (tp*pp) == 0")
    if not 0 < mfu <= 1:
        raise InputError(f"mfu must be in (0, 1] (got {mfu})", fix="use a fraction such as 0.4")
    if tokens <= 0 or micro_batch_size < 1 or sequence_length < 1:
        raise InputError("tokens, micro_batch_size and sequence_length must be positive",
                         fix="give positive values")
    s = shape_of(arch)
    dp = gpus // (tp * pp)
    pb = DTYPE_BYTES[dtype] if dtype != "tf32" else 4.0
    k = optimizer_k(optimizer, dtype)
    p_gpu = arch.params / (tp * pp)
    if method == "lora":
        trainable = lora_trainable_params(s, lora_rank) if s.transformer else int(arch.params * 0.01)
        frozen = p_gpu * pb / (dp if zero_stage == 3 else 1)
        states = frozen + zero_model_states_bytes(trainable / (tp * pp), dp=dp, zero_stage=zero_stage,
                                                  param_bytes=pb, grad_bytes=pb, k=k)
        flops_per = cal.LORA_FLOPS_PER_PARAM_TOKEN
    elif method == "full":
        trainable = arch.params
        states = zero_model_states_bytes(p_gpu, dp=dp, zero_stage=zero_stage, param_bytes=pb, grad_bytes=pb, k=k)
        flops_per = cal.TRAINING_FLOPS_PER_PARAM_TOKEN
    else:
        raise InputError(f"unknown training method {method!r}", fix="use full or lora")

    act = training_activation_bytes(s, arch, dtype, tp=tp, pp=pp, micro_batch_size=micro_batch_size,
                                    sequence_length=sequence_length, checkpointing=activation_checkpointing,
                                    flash_attention=flash_attention)
    overhead = cal.TRAINING_MEMORY_OVERHEAD_BYTES if hw.kind == "gpu" else cal.CPU_RUNTIME_OVERHEAD_BYTES
    total = int(states) + int(act) + overhead
    flops = training_flops(arch.active_params, tokens, flops_per)
    peak = hw.peak_flops(dtype)
    time_s = flops / (gpus * peak * mfu)
    return TrainingEstimate(
        model_states_bytes_per_gpu=int(states), activation_bytes_per_gpu=int(act), overhead_bytes_per_gpu=overhead,
        total_bytes_per_gpu=total, capacity_bytes_per_gpu=hw.memory_bytes,
        fits=total <= hw.memory_bytes * (1.0 - memory_headroom), flops_total=flops, time_s=time_s,
        gpu_hours=time_s * gpus / 3600.0, data_parallel=dp, trainable_params=int(trainable),
        tokens_per_s=tokens / time_s,
    )


def training_flops(active_params: float, tokens: float, flops_per_param_token: float = 6.0) -> float:
    """C = 6 N D (Kaplan et al. 2020; Hoffmann et al. 2022). GPT-3 175B on 300B tokens: 3.15e23 (Brown et al.
    2020 report 3.14e23)."""
    return flops_per_param_token * active_params * tokens


def training_activation_bytes(s: Shape, arch: ModelArch, dtype: str, *, tp: int, pp: int, micro_batch_size: int,
                              sequence_length: int, checkpointing: bool, flash_attention: bool = True) -> float:
    """Activation bytes on the busiest GPU (the first pipeline stage).

    Transformers: layers x per-layer bytes (Korthikanti et al. 2022: with 1F1B the first stage holds p
    micro-batches of L/p layers, i.e. L layers' worth whatever p), plus fp32 logits for the loss,
    TRAINING_LOGITS_COPIES x s b V 4 / t.
    With checkpointing, one layer's full activations are live while it is recomputed. Non-transformers: every
    layer output is kept (CNN_ACTIVATION_TRAFFIC_PER_INPUT_ELEMENT x input elements x micro-batch).
    """
    scale = 2.0 if dtype in ("fp32", "tf32") else 1.0  # Korthikanti counts 16-bit activations
    if s.transformer:
        per = activation_bytes_per_layer(sequence_length, micro_batch_size, s.hidden, s.heads, tp=tp,
                                         checkpointing=checkpointing, flash_attention=flash_attention)
        stored = per * s.layers * (1 if pp == 1 else math.ceil(s.layers / pp) * pp / s.layers)
        if checkpointing:
            stored += activation_bytes_per_layer(sequence_length, micro_batch_size, s.hidden, s.heads, tp=tp,
                                                 flash_attention=flash_attention)
        logits = cal.TRAINING_LOGITS_COPIES * sequence_length * micro_batch_size * s.vocab * 4.0 / tp
        return stored * scale + logits
    if s.input_elems:
        elems = s.input_elems * cal.CNN_ACTIVATION_TRAFFIC_PER_INPUT_ELEMENT * micro_batch_size
        return elems * 2.0 * scale * (cal.CNN_CHECKPOINT_FRACTION if checkpointing else 1.0)
    return 0.0
