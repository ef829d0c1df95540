"""End to end: the generated Serve config for local_demo() served by a real Ray Serve on 127.0.0.1.

One server for the module (cold start ~15-20 s on 2 cores); the last test stops it and checks nothing is left.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from serving import launch
from serving.artifacts import write_serving_artifacts
from serving.model.demo import build_bytes
from tests import factories

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    out = tmp_path_factory.mktemp("plan")
    write_serving_artifacts(factories.local_demo(), out)
    record = launch.start_ray_serve(out / "serving" / "ray" / "serve_config.yaml", workdir=out / ".mlplan")
    try:
        yield record
    finally:
        launch.stop(record)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    path = tmp_path_factory.mktemp("ref") / "m.onnx"
    path.write_bytes(build_bytes())
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _post(url: str, body: Any) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_health_reports_the_plans_batching(server: dict[str, Any]) -> None:
    assert launch.is_healthy(server)
    h = _get(server["health_url"])
    s = factories.local_demo().serving
    assert h["status"] == "ok" and h["max_batch_size"] == s.max_batch_size
    assert h["batch_wait_timeout_s"] == pytest.approx(s.max_queue_delay_us / 1e6)


def test_concurrent_answers_match_onnxruntime(server: dict[str, Any], reference: ort.InferenceSession) -> None:
    rng = np.random.default_rng(7)
    batches = [rng.standard_normal((int(n), 64)).astype(np.float32) for n in rng.integers(1, 4, size=48)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda x: _post(server["endpoint"], {"inputs": x.tolist()}), batches))
    for x, (status, body) in zip(batches, results, strict=True):
        assert status == 200
        want = reference.run(None, {"input": x})[0]
        np.testing.assert_allclose(np.asarray(body["outputs"], dtype=np.float32), want, rtol=1e-4, atol=1e-5)
    stats = _get(server["endpoint"] + "stats")
    assert stats["requests"] >= 48 and stats["rows"] >= sum(len(b) for b in batches)
    assert 1 < stats["max_batch_seen"] <= factories.local_demo().serving.max_batch_size  # @serve.batch batched
    assert stats["batches"] < stats["requests"]


def test_bad_input_is_a_400_with_a_fix(server: dict[str, Any]) -> None:
    status, body = _post(server["endpoint"], {"inputs": [[1.0, 2.0]]})
    assert status == 400 and "64" in body["error"] and body["fix"]
    status, body = _post(server["endpoint"], {"rows": []})
    assert status == 400 and "inputs" in body["error"]


def test_stop_leaves_no_process_and_closes_the_port(server: dict[str, Any]) -> None:
    assert launch.session_members(server["sid"])
    done = launch.stop(server)
    assert done["stopped"]
    assert launch.session_members(server["sid"]) == []
    assert not any(launch.port_open(p) for p in server["ports"])
    assert not launch.is_healthy(server)
    assert not Path(server["temp_dir"]).exists()
    assert launch.stop(server)["stopped"] == []  # idempotent
