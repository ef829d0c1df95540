"""write_serving_artifacts: the right files per plan, byte-identical on re-runs, portable, import-cheap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from serving.artifacts import write_serving_artifacts
from serving.kuberay import schemas_dir, validate_rayservice
from serving.ray_config import validate_serve_config
from serving.triton import parse_model_config
from tests import factories

EXPECTED = {
    "cloud_llm_single_gpu": {"ray/serve_config.yaml", "kuberay/rayservice.yaml"},
    "cloud_llm_tensor_parallel": {"ray/serve_config.yaml", "kuberay/rayservice.yaml"},
    "cloud_llm_pipeline_parallel": {"ray/serve_config.yaml", "kuberay/rayservice.yaml"},
    "onprem_llm": {"ray/serve_config.yaml", "kuberay/rayservice.yaml"},
    "edge_vision": {"triton/model_repository/yolov8n/config.pbtxt", "triton/model_repository/yolov8n/1/model.py"},
    "microcontroller": set(),
    "hybrid_onprem_cloud_burst": {"ray/serve_config.yaml", "ray/serve_config.test-burst-cloud.yaml",
                                  "kuberay/rayservice.yaml"},
    "local_demo": {"ray/serve_config.yaml"},
    "training_zero": set(),
}


@pytest.mark.parametrize("name", sorted(factories.ALL_PLANS))
def test_files_per_plan_and_each_parses(name: str, tmp_path: Path) -> None:
    written = write_serving_artifacts(factories.ALL_PLANS[name](), tmp_path)
    assert written == sorted(written)
    assert {str(p.relative_to("serving")) for p in written} == EXPECTED[name] | {"README.md"}
    for rel in written:
        path = tmp_path / rel
        assert path.is_file()
        if path.name.startswith("serve_config"):
            validate_serve_config(yaml.safe_load(path.read_text()))
        elif path.name == "rayservice.yaml" and schemas_dir() is not None:
            docs = list(yaml.safe_load_all(path.read_text()))
            assert len(docs) == (2 if name.startswith("hybrid") else 1)
            for d in docs:
                validate_rayservice(d)
        elif path.name == "config.pbtxt":
            parse_model_config(path.read_text())


def test_trtllm_and_triton_demo_layouts(tmp_path: Path) -> None:
    plan = factories.cloud_llm_pipeline_parallel()
    plan = plan.model_copy(update={"serving": plan.serving.model_copy(update={"runtime": "tensorrt-llm"})})
    assert [str(p) for p in write_serving_artifacts(plan, tmp_path / "a")] == \
        ["serving/README.md", "serving/triton/trtllm.yaml"]
    written = write_serving_artifacts(factories.local_demo(runtime="triton"), tmp_path / "b")
    assert Path("serving/triton/model_repository/mlp-demo/1/model.onnx") in written


@pytest.mark.parametrize("name", ["hybrid_onprem_cloud_burst", "cloud_llm_pipeline_parallel", "edge_vision"])
def test_rerun_is_byte_identical_and_has_no_local_paths(name: str, tmp_path: Path) -> None:
    plan = factories.ALL_PLANS[name]()
    a = write_serving_artifacts(plan, tmp_path / "a")
    b = write_serving_artifacts(plan, tmp_path / "b")
    assert a == b
    for rel in a:
        data = (tmp_path / "a" / rel).read_bytes()
        assert data == (tmp_path / "b" / rel).read_bytes()
        assert str(tmp_path).encode() not in data and str(Path.home()).encode() not in data
        assert b"&id0" not in data  # no YAML anchors


def test_stale_files_are_removed(tmp_path: Path) -> None:
    write_serving_artifacts(factories.edge_vision(), tmp_path)
    write_serving_artifacts(factories.local_demo(), tmp_path)
    assert not (tmp_path / "serving" / "triton").exists()


def test_import_is_cheap() -> None:
    code = ("import sys, serving, serving.artifacts, serving.ray_config, serving.kuberay, serving.triton, "
            "serving.launch; heavy = [m for m in ('ray', 'tritonclient', 'onnxruntime', 'boto3', 'onnx') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"
