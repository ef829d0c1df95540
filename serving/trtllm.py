"""TensorRT-LLM on Triton: the engine-build and launch settings that carry the plan's sharding (trtllm.yaml).

With the TensorRT-LLM backend, tensor/pipeline parallelism is baked into the engine (``trtllm-build
--tp_size/--pp_size`` after ``convert_checkpoint.py --tp_size/--pp_size``) and into the server's MPI world
size (``launch_triton_server.py --world_size = tp * pp``), not into config.pbtxt. The model repository comes
from tensorrtllm_backend's ``all_models/inflight_batcher_llm`` filled with ``tools/fill_template.py`` using the
``fill_template`` values below. Sources: TensorRT-LLM docs "trtllm-build" and "Parallelism";
triton-inference-server/tensorrtllm_backend README ("Launch Triton server", "Prepare the model repository").
"""

from __future__ import annotations

import math
from typing import Any

from planner.errors import InputError
from planner.plan import Plan

# plan dtype -> (checkpoint --dtype, extra convert/quantize flags)
_DTYPE: dict[str, tuple[str, list[str]]] = {
    "fp16": ("float16", []),
    "bf16": ("bfloat16", []),
    "fp32": ("float32", []),
    "fp8": ("bfloat16", ["--qformat", "fp8", "--kv_cache_dtype", "fp8"]),
    "int8": ("float16", ["--qformat", "int8_sq", "--kv_cache_dtype", "int8"]),
    "int4": ("float16", ["--qformat", "int4_awq"]),
}


def build_trtllm_settings(plan: Plan) -> dict[str, Any]:
    """Engine build + launch + model-repository settings for a ``tensorrt-llm`` plan."""
    part = plan.parts[0]
    tp, pp = part.tensor_parallel, part.pipeline_parallel
    world = tp * pp
    if world != part.accelerator_count:
        raise InputError(f"plan {plan.id}: tensor_parallel {tp} x pipeline_parallel {pp} = {world} GPUs but "
                         f"accelerator_count is {part.accelerator_count}",
                         fix="re-run mlplan plan (sharding and GPU count must agree)")
    m, s = plan.model, plan.serving
    in_len = m.input_tokens or 1024
    out_len = m.output_tokens or 256
    max_seq = m.max_context or (in_len + out_len)
    dtype, quant = _DTYPE.get(part.dtype, ("float16", []))
    ckpt, engine = "/models/checkpoint", f"/models/engines/{m.name}-tp{tp}-pp{pp}"
    nodes_per_replica = math.ceil(world / max(part.gpus_per_node, 1))
    quantize = ["python3", "quantize.py", "--model_dir", "/models/hf", "--output_dir", ckpt,
                "--dtype", dtype, *quant, "--tp_size", str(tp), "--pp_size", str(pp)]
    convert = ["python3", "convert_checkpoint.py", "--model_dir", "/models/hf", "--output_dir", ckpt,
               "--dtype", dtype, "--tp_size", str(tp), "--pp_size", str(pp)]
    build = ["trtllm-build", "--checkpoint_dir", ckpt, "--output_dir", engine,
             "--max_batch_size", str(s.max_batch_size), "--max_input_len", str(in_len),
             "--max_seq_len", str(max_seq), "--max_num_tokens", str(s.max_batch_size * in_len),
             "--gemm_plugin", "auto", "--paged_kv_cache", "enable", "--use_paged_context_fmha", "enable",
             "--tp_size", str(tp), "--pp_size", str(pp)]
    launch = ["python3", "scripts/launch_triton_server.py", "--world_size", str(world),
              "--model_repo", "/models/triton_model_repo", "--http_port", "8000", "--grpc_port", "8001"]
    return {
        "model": {"name": m.name, "source": m.artifact or m.name, "dtype": part.dtype},
        "parallelism": {"tensor_parallel": tp, "pipeline_parallel": pp, "world_size": world,
                        "gpus_per_node": part.gpus_per_node, "nodes_per_replica": nodes_per_replica,
                        "replicas": part.replicas, "accelerator": part.accelerator, "instance": part.instance},
        "checkpoint": {"command": quantize if quant else convert, "output_dir": ckpt},
        "engine_build": {"command": build, "output_dir": engine, "tp_size": tp, "pp_size": pp,
                         "max_batch_size": s.max_batch_size, "max_input_len": in_len, "max_seq_len": max_seq},
        "launch": {"command": launch, "world_size": world,
                   "mpirun": ["mpirun", "--allow-run-as-root", "-n", str(world)] if nodes_per_replica == 1 else
                   ["mpirun", "--allow-run-as-root", "-n", str(world), "--hostfile", "/etc/mpi/hostfile",
                    "-npernode", str(part.gpus_per_node)]},
        "fill_template": {
            "tensorrt_llm/config.pbtxt": {
                "triton_backend": "tensorrtllm", "triton_max_batch_size": s.max_batch_size,
                "decoupled_mode": "true", "engine_dir": engine,
                "max_queue_delay_microseconds": s.max_queue_delay_us, "batching_strategy": "inflight_fused_batching",
                "max_queue_size": s.max_ongoing_requests, "kv_cache_free_gpu_mem_fraction": 0.9,
                "exclude_input_in_output": "true", "encoder_input_features_data_type": "TYPE_FP16",
            },
            "preprocessing/config.pbtxt": {"tokenizer_dir": "/models/hf", "triton_max_batch_size": s.max_batch_size,
                                           "preprocessing_instance_count": 1},
            "postprocessing/config.pbtxt": {"tokenizer_dir": "/models/hf",
                                            "triton_max_batch_size": s.max_batch_size,
                                            "postprocessing_instance_count": 1},
            "ensemble/config.pbtxt": {"triton_max_batch_size": s.max_batch_size},
            "tensorrt_llm_bls/config.pbtxt": {"triton_max_batch_size": s.max_batch_size, "decoupled_mode": "true",
                                              "bls_instance_count": 1},
        },
    }
