"""The estimator: memory, compute, roofline latency, throughput, energy and training time of a model on hardware.

Pure float arithmetic, no I/O: the optimizer calls :func:`estimate_inference` thousands of times per
recommendation. Every formula is a small function naming its source; every efficiency factor lives in
:mod:`planner.estimator.calibration`.
"""

from __future__ import annotations

from planner.estimator.dtypes import DTYPE_BYTES, kv_dtype, weight_bytes_per_param
from planner.estimator.edge import EdgeEstimate, estimate_edge
from planner.estimator.hardware import HardwareProfile, profile
from planner.estimator.inference import (
    DecodeModel,
    InferenceEstimate,
    InferenceMemory,
    batch_for,
    estimate_inference,
    inference_memory,
    kv_bytes_per_token,
)
from planner.estimator.shape import shape_of
from planner.estimator.training import (
    TrainingEstimate,
    estimate_training,
    training_flops,
    zero_model_states_bytes,
)
from planner.estimator.whatif import (
    WhatIfRow,
    distillation_whatif,
    pruning_whatif,
    quantization_whatif,
)

__all__ = [
    "DTYPE_BYTES",
    "DecodeModel",
    "EdgeEstimate",
    "HardwareProfile",
    "InferenceEstimate",
    "InferenceMemory",
    "TrainingEstimate",
    "WhatIfRow",
    "batch_for",
    "distillation_whatif",
    "estimate_edge",
    "estimate_inference",
    "estimate_training",
    "inference_memory",
    "kv_bytes_per_token",
    "kv_dtype",
    "profile",
    "pruning_whatif",
    "quantization_whatif",
    "shape_of",
    "training_flops",
    "weight_bytes_per_param",
    "zero_model_states_bytes",
]
