"""The demo model: built from code, deterministic, the documented shape, runnable by onnxruntime."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from planner.errors import InputError
from serving.model import demo
from serving.runtime.loader import resolve_model
from serving.runtime.onnx_model import OnnxModel
from tests.factories import local_demo


def test_bytes_identical_on_every_build(tmp_path: Path) -> None:
    a, b = demo.write(tmp_path / "a.onnx"), demo.write(tmp_path / "b.onnx")
    assert a.read_bytes() == b.read_bytes() == demo.build_bytes()


def test_shape_and_parameter_count_match_the_plan(demo_onnx: Path) -> None:
    model = onnx.load(str(demo_onnx))
    onnx.checker.check_model(model)
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert params == demo.PARAMS == local_demo().model.params == 85_002
    assert [i.name for i in model.graph.input] == [local_demo().model.inputs[0].name]
    assert [o.name for o in model.graph.output] == [local_demo().model.outputs[0].name]


def test_runs_batched_and_rows_are_independent(demo_onnx: Path) -> None:
    sess = ort.InferenceSession(str(demo_onnx), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    full = sess.run(None, {"input": x})[0]
    assert full.shape == (5, 10)
    one = sess.run(None, {"input": x[2:3]})[0]
    np.testing.assert_allclose(full[2:3], one, rtol=1e-5, atol=1e-6)
    assert np.isfinite(full).all() and np.std(full) > 0.1  # not a degenerate (all-zero) network


def test_cli_writes_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    assert demo.main([str(out)]) == 0
    assert out.read_bytes() == demo.build_bytes()
    assert hashlib.sha256(out.read_bytes()).hexdigest()[:16] in capsys.readouterr().out
    assert demo.main([]) == 2


def test_builtin_uri_resolves_to_a_cached_build(model_cache: Path) -> None:
    p = resolve_model("builtin://mlp-demo")
    assert p.is_relative_to(model_cache) and p.read_bytes() == demo.build_bytes()
    assert resolve_model("builtin://mlp-demo") == p
    with pytest.raises(InputError, match="unknown builtin"):
        resolve_model("builtin://resnet-9000")


def test_local_paths_and_missing_files(demo_onnx: Path, tmp_path: Path) -> None:
    assert resolve_model(str(demo_onnx)) == demo_onnx
    assert resolve_model(f"file://{demo_onnx}") == demo_onnx
    with pytest.raises(InputError, match="not found"):
        resolve_model(str(tmp_path / "nope.onnx"))


def test_onnx_runner_checks_input_shape(demo_onnx: Path) -> None:
    m = OnnxModel(demo_onnx)
    assert m.predict(np.zeros((3, 64))).shape == (3, 10)
    with pytest.raises(InputError, match=r"shape \[2, 3\]"):
        m.predict(np.zeros((2, 3)))
    with pytest.raises(InputError, match="not a numeric array"):
        m.predict([["a"] * 64])
