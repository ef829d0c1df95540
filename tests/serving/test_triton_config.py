"""Triton model repositories and TensorRT-LLM settings built from plans."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from planner.errors import InputError
from planner.plan import Plan
from serving.model.demo import build_bytes
from serving.triton import RUNTIME_MODEL_PY, build_model_config, parse_model_config, to_text, write_model_repository
from serving.trtllm import build_trtllm_settings
from tests import factories

TRITON_PLANS = {"edge_vision": factories.edge_vision, "local_demo": lambda: factories.local_demo(runtime="triton")}


@pytest.mark.parametrize("name", sorted(TRITON_PLANS))
def test_config_round_trips_and_carries_the_plan(name: str, tmp_path: Path) -> None:
    plan: Plan = TRITON_PLANS[name]()
    written = write_model_repository(plan, tmp_path)
    cfg_path = next(p for p in written if p.name == "config.pbtxt")
    parsed = parse_model_config(cfg_path.read_text())
    assert parsed == build_model_config(plan)
    s = plan.serving
    assert parsed.max_batch_size == s.max_batch_size
    assert list(parsed.dynamic_batching.preferred_batch_size) == list(s.preferred_batch_sizes)
    assert parsed.dynamic_batching.max_queue_delay_microseconds == s.max_queue_delay_us
    assert [(i.name, list(i.dims)) for i in parsed.input] == [(t.name, list(t.shape)) for t in plan.model.inputs]
    assert [(o.name, list(o.dims)) for o in parsed.output] == [(t.name, list(t.shape)) for t in plan.model.outputs]
    assert all(i.data_type == mc.TYPE_FP32 for i in parsed.input)
    (group,) = parsed.instance_group
    gpu = not plan.accelerator.startswith("cpu")
    assert group.kind == (mc.ModelInstanceGroup.KIND_GPU if gpu else mc.ModelInstanceGroup.KIND_CPU)
    assert group.count * max(len(group.gpus), 1) == plan.accelerator_count
    assert parsed.backend == "python"
    assert (cfg_path.parent / "1" / "model.py").read_text() == RUNTIME_MODEL_PY.read_text()


def test_builtin_model_is_placed_in_the_repository(tmp_path: Path) -> None:
    write_model_repository(factories.local_demo(runtime="triton"), tmp_path)
    assert (tmp_path / "mlp-demo" / "1" / "model.onnx").read_bytes() == build_bytes()


def test_multi_gpu_plan_gets_one_instance_per_gpu() -> None:
    plan = factories.edge_vision()
    plan = plan.model_copy(update={"accelerator_count": 4})
    (group,) = build_model_config(plan).instance_group
    assert group.kind == mc.ModelInstanceGroup.KIND_GPU and list(group.gpus) == [0, 1, 2, 3] and group.count == 1


def test_unknown_field_in_pbtxt_fails_to_parse() -> None:
    text = to_text(build_model_config(factories.edge_vision())) + "\nmax_batch_sizes: 3\n"
    with pytest.raises(text_format.ParseError):
        parse_model_config(text)


def test_model_without_io_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no inputs/outputs"):
        build_model_config(factories.cloud_llm_single_gpu())


def _trt(plan: Plan) -> Plan:
    return plan.model_copy(update={"serving": plan.serving.model_copy(update={"runtime": "tensorrt-llm"})})


@pytest.mark.parametrize("factory", [factories.cloud_llm_tensor_parallel, factories.cloud_llm_pipeline_parallel])
def test_trtllm_world_size_is_tp_times_pp(factory: object) -> None:
    plan = _trt(factory())  # type: ignore[operator]
    t = build_trtllm_settings(plan)
    tp, pp = plan.tensor_parallel, plan.pipeline_parallel
    assert t["parallelism"]["world_size"] == t["launch"]["world_size"] == tp * pp == plan.accelerator_count
    build = t["engine_build"]["command"]
    assert build[build.index("--tp_size") + 1] == str(tp) and build[build.index("--pp_size") + 1] == str(pp)
    assert build[build.index("--max_batch_size") + 1] == str(plan.serving.max_batch_size)
    launch = t["launch"]["command"]
    assert launch[launch.index("--world_size") + 1] == str(tp * pp)
    assert t["launch"]["mpirun"][t["launch"]["mpirun"].index("-n") + 1] == str(tp * pp)
    fill = t["fill_template"]["tensorrt_llm/config.pbtxt"]
    assert fill["triton_max_batch_size"] == plan.serving.max_batch_size
    assert fill["max_queue_delay_microseconds"] == plan.serving.max_queue_delay_us
    assert t["parallelism"]["nodes_per_replica"] == (2 if pp == 2 else 1)


def test_trtllm_refuses_inconsistent_sharding() -> None:
    plan = _trt(factories.cloud_llm_tensor_parallel())
    bad = plan.model_copy(update={"parts": (plan.parts[0].model_copy(update={"accelerator_count": 3}),)})
    with pytest.raises(InputError, match="accelerator_count is 3"):
        build_trtllm_settings(bad)
