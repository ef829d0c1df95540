"""Triton model repository for a plan: ``model_repository/<model>/config.pbtxt`` (+ ``1/model.py``, model file).

``config.pbtxt`` is a ``tritonclient.grpc.model_config_pb2.ModelConfig`` written with
``google.protobuf.text_format`` (so it parses back to an equal message). From the plan, verbatim:
``max_batch_size``; inputs/outputs from ``plan.model.inputs/outputs`` (dims without the batch dimension);
``instance_group``: KIND_GPU with ``plan.accelerator_count`` instances in total (one per GPU), or KIND_CPU for
CPU targets; ``dynamic_batching`` with ``preferred_batch_sizes`` and ``max_queue_delay_us``.
Source of the format: Triton "Model Configuration" docs (server/docs/user_guide/model_configuration.md) and
the python backend README (triton-inference-server/python_backend).

Model file placement: ``builtin://`` models are built into ``<model>/1/model.onnx`` (deterministic bytes); a
local ONNX file that exists is copied there; otherwise (``s3://``, a path on the serving host) ``model.py``
fetches ``model_uri`` when Triton loads the model.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from planner.errors import InputError
from planner.plan import Plan
from serving import hardware

MODEL_FILE = "model.onnx"
TRITON_DTYPES = {"fp32": "TYPE_FP32", "fp16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32",
                 "int8": "TYPE_INT8", "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL", "string": "TYPE_STRING"}
RUNTIME_MODEL_PY = Path(__file__).parent / "runtime" / "triton_model.py"


def model_name(plan: Plan) -> str:
    """Triton model (directory) name: the model name restricted to ``[A-Za-z0-9_.-]``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", plan.model.name).strip("-.") or "model"


def build_model_config(plan: Plan) -> Any:
    """The plan's ``ModelConfig`` message (python backend running onnxruntime)."""
    from tritonclient.grpc import model_config_pb2 as mc

    m, s = plan.model, plan.serving
    if not m.inputs or not m.outputs:
        raise InputError(f"model {m.name!r} has no inputs/outputs, which a Triton model config needs",
                         fix="list model.inputs and model.outputs (name, dtype, shape) in the spec")
    cfg = mc.ModelConfig(name=model_name(plan), backend="python", max_batch_size=s.max_batch_size)
    for spec, coll in ((m.inputs, cfg.input), (m.outputs, cfg.output)):
        for t in spec:
            item = coll.add()
            item.name = t.name
            item.data_type = mc.DataType.Value(TRITON_DTYPES[t.dtype])
            item.dims.extend(t.shape)
    group = cfg.instance_group.add()
    if hardware.uses_gpu(plan):
        group.kind = mc.ModelInstanceGroup.KIND_GPU
        group.count = 1
        if plan.accelerator_count > 1:  # one instance on each of the replica's GPUs
            group.gpus.extend(range(plan.accelerator_count))
    else:
        group.kind = mc.ModelInstanceGroup.KIND_CPU
        group.count = plan.accelerator_count
    if s.max_batch_size > 1:
        cfg.dynamic_batching.preferred_batch_size.extend(
            sorted(b for b in s.preferred_batch_sizes if b <= s.max_batch_size))
        cfg.dynamic_batching.max_queue_delay_microseconds = s.max_queue_delay_us
    params = {"model_uri": m.artifact or "", "model_file": MODEL_FILE, "intra_op_threads": "1"}
    for key in sorted(params):
        cfg.parameters[key].string_value = params[key]
    return cfg


def to_text(cfg: Any) -> str:
    from google.protobuf import text_format

    text: str = text_format.MessageToString(cfg, as_utf8=True)
    return text


def parse_model_config(text: str) -> Any:
    """Parse ``config.pbtxt`` text back to a ``ModelConfig`` (unknown fields raise ``ParseError``)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    return text_format.Parse(text, mc.ModelConfig())


def write_model_repository(plan: Plan, repo: Path) -> list[Path]:
    """Write ``repo/<model>/config.pbtxt``, ``1/model.py`` and the model file where it can be placed."""
    cfg = build_model_config(plan)
    mdir = Path(repo) / cfg.name
    vdir = mdir / "1"
    vdir.mkdir(parents=True, exist_ok=True)
    written = [mdir / "config.pbtxt", vdir / "model.py"]
    (mdir / "config.pbtxt").write_text(to_text(cfg))
    (vdir / "model.py").write_text(RUNTIME_MODEL_PY.read_text())
    artifact = plan.model.artifact or ""
    dest = vdir / MODEL_FILE
    if artifact.startswith("builtin://"):
        from serving.model.demo import write

        write(dest)
        written.append(dest)
    elif artifact and not artifact.startswith("s3://"):
        src = Path(artifact.removeprefix("file://")).expanduser()
        if src.is_file() and src.suffix == ".onnx":
            shutil.copyfile(src, dest)
            written.append(dest)
    return written
