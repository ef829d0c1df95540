"""End to end: the generated Triton repository for local_demo(runtime="triton") in a real tritonserver 2.51
(from the nvidia-pytriton wheel), queried over HTTP and gRPC with tritonclient; the dynamic batcher is active."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from serving import launch
from serving.artifacts import write_serving_artifacts
from serving.model.demo import build_bytes
from tests import factories

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(importlib.util.find_spec("pytriton") is None,
                       reason="tritonserver comes from the nvidia-pytriton wheel (Linux x86_64), not installed"),
]
MODEL = "mlp-demo"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    out = tmp_path_factory.mktemp("plan")
    write_serving_artifacts(factories.local_demo(runtime="triton"), out)
    record = launch.start_triton(out / "serving" / "triton" / "model_repository", workdir=out / ".mlplan")
    try:
        yield record
    finally:
        launch.stop(record)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    path = tmp_path_factory.mktemp("ref") / "m.onnx"
    path.write_bytes(build_bytes())
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _http_infer(url: str, x: np.ndarray) -> np.ndarray:
    import tritonclient.http as th

    with_client = th.InferenceServerClient(url.removeprefix("http://"))
    try:
        inp = th.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        res = with_client.infer(MODEL, [inp], outputs=[th.InferRequestedOutput("logits")])
        out: np.ndarray = res.as_numpy("logits")
        return out
    finally:
        with_client.close()


def test_server_sees_the_generated_config(server: dict[str, Any]) -> None:
    import tritonclient.http as th

    client = th.InferenceServerClient(server["endpoint"].removeprefix("http://"))
    try:
        assert client.is_model_ready(MODEL)
        cfg = client.get_model_config(MODEL)
        s = factories.local_demo(runtime="triton").serving
        assert cfg["max_batch_size"] == s.max_batch_size
        assert cfg["dynamic_batching"]["preferred_batch_size"] == list(s.preferred_batch_sizes)
        assert int(cfg["dynamic_batching"]["max_queue_delay_microseconds"]) == s.max_queue_delay_us
        assert cfg["instance_group"][0]["kind"] == "KIND_CPU"
    finally:
        client.close()


def test_http_answers_match_onnxruntime(server: dict[str, Any], reference: ort.InferenceSession) -> None:
    x = np.random.default_rng(1).standard_normal((5, 64)).astype(np.float32)
    np.testing.assert_allclose(_http_infer(server["endpoint"], x), reference.run(None, {"input": x})[0],
                               rtol=1e-4, atol=1e-5)


def test_grpc_concurrent_answers_and_dynamic_batching(server: dict[str, Any],
                                                      reference: ort.InferenceSession) -> None:
    import tritonclient.grpc as tg

    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((1, 64)).astype(np.float32) for _ in range(64)]
    before = _stats(server)

    def one(x: np.ndarray) -> np.ndarray:
        client = tg.InferenceServerClient(server["grpc_endpoint"])
        try:
            inp = tg.InferInput("input", [1, 64], "FP32")
            inp.set_data_from_numpy(x)
            out: np.ndarray = client.infer(MODEL, [inp]).as_numpy("logits")
            return out
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        outs = list(pool.map(one, xs))
    for x, y in zip(xs, outs, strict=True):
        np.testing.assert_allclose(y, reference.run(None, {"input": x})[0], rtol=1e-4, atol=1e-5)
    after = _stats(server)
    inferences = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert inferences == 64
    assert executions < inferences  # the dynamic batcher merged requests into batches > 1


def _stats(server: dict[str, Any]) -> dict[str, int]:
    import tritonclient.http as th

    client = th.InferenceServerClient(server["endpoint"].removeprefix("http://"))
    try:
        st = client.get_inference_statistics(MODEL)["model_stats"][0]
        return {"inference_count": int(st.get("inference_count", 0)),
                "execution_count": int(st.get("execution_count", 0))}
    finally:
        client.close()


def test_wrong_shape_is_refused_with_a_clear_error(server: dict[str, Any]) -> None:
    import tritonclient.http as th
    from tritonclient.utils import InferenceServerException

    client = th.InferenceServerClient(server["endpoint"].removeprefix("http://"))
    try:
        inp = th.InferInput("input", [2, 3], "FP32")
        inp.set_data_from_numpy(np.zeros((2, 3), np.float32))
        with pytest.raises(InferenceServerException, match="input"):
            client.infer(MODEL, [inp])
    finally:
        client.close()


def test_stop_leaves_no_process_and_closes_the_ports(server: dict[str, Any]) -> None:
    assert launch.is_healthy(server)
    launch.stop(server)
    assert launch.session_members(server["sid"]) == []
    assert not any(launch.port_open(p) for p in server["ports"])
    assert not launch.is_healthy(server)
    assert launch.stop(server)["stopped"] == []
