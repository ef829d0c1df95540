"""Local target with a real tritonserver serving the demo MLP: deploy answers, status is healthy, a second
deploy changes nothing, a changed artifact restarts, destroy stops every process and closes the ports, a second
destroy is a no-op. The plan folders hold the real serving artifacts the emitters build. The same lifecycle
with Ray Serve runs through the CLI from `mlplan plan examples/local-demo.yaml` (tests/deploy/test_cli.py)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from planner.errors import ArtifactError, DeployError, InputError
from serving import launch
from serving.ray_config import build_serve_config
from serving.triton import write_model_repository
from stacks.deploy import targets
from stacks.deploy.local import percentile
from stacks.deploy.state import DeployState
from stacks.folder import load_folder
from tests import factories
from tests.deploy.conftest import reseal, write_plan_folder

# Ray 2.60's own serve config models pass ``update_type=`` to pydantic ``Field`` (PydanticDeprecatedSince20 at
# import); that is Ray's code, so exactly that message is ignored here, as in tests/serving.
RAY_PYDANTIC_WARNING = (
    "ignore:Using extra keyword arguments on `Field` is deprecated:pydantic.warnings.PydanticDeprecatedSince20"
)
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(RAY_PYDANTIC_WARNING)]


def ray_folder(root: Path) -> Path:
    plan = factories.local_demo("ray")
    return write_plan_folder(root, plan, {"serving/ray/serve_config.yaml": yaml.safe_dump(build_serve_config(plan))})


def triton_folder(root: Path) -> Path:
    plan = factories.local_demo("triton")
    folder = write_plan_folder(root, plan)
    write_model_repository(plan, folder / "serving" / "triton" / "model_repository")
    reseal(folder)
    return folder


def _lifecycle(folder: Path, body: dict, restart: Callable[[Path], None] | None = None) -> list[str]:  # type: ignore[type-arg]
    out: list[str] = []
    opts = targets.Options(smoke_requests=60, concurrency=2)
    result = targets.deploy(folder, opts=opts, say=out.append)  # default target: local (instance localhost)
    try:
        assert result.target == "local" and result.changed == 1 and result.ready
        endpoint = result.endpoint
        assert endpoint is not None
        assert endpoint.startswith("http://127.0.0.1:")
        smoke = result.details["smoke"]
        assert smoke["requests"] == 60 and smoke["errors"] == 0
        assert 0 < smoke["p50_ms"] <= smoke["p99_ms"]
        assert any("predicted latency 4.0 ms" in line and "p50" in line for line in out)
        # the printed endpoint answers a request of our own too
        req = urllib.request.Request(endpoint, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.loads(resp.read())
        assert "outputs" in answer
        healthy, lines = targets.status(folder)
        assert healthy, lines
        record0 = DeployState(folder / ".mlplan", "x").target("local")["resources"][0]  # type: ignore[index]
        again = targets.deploy(folder, opts=opts, say=out.append)
        assert again.changed == 0 and again.endpoint == endpoint
        if restart is not None:  # a changed artifact: the next deploy restarts the server with it
            restart(folder)
            third = targets.deploy(folder, opts=opts, say=out.append)
            assert third.changed == 1
            assert any("artifacts changed since the last deploy: restarting" in line for line in out)
            assert DeployState(folder / ".mlplan", "x").target("local")["resources"][0]["pid"] != record0["pid"]
            assert not launch.session_members(int(record0["sid"]))  # the old server is gone
        state = DeployState(folder / ".mlplan", "x").target("local")
        assert state is not None and state["status"] == "deployed"
        record = state["resources"][0]
    finally:
        assert targets.destroy(folder, say=out.append) == 1
    assert not launch.session_members(int(record["sid"]))
    assert not any(launch.port_open(p) for p in record["ports"])
    healthy, lines = targets.status(folder)
    assert not healthy and lines == [f"nothing from {folder.resolve()} is deployed"]
    assert targets.destroy(folder, say=out.append) == 0  # second destroy: a no-op
    return out


def test_local_triton_lifecycle(tmp_path: Path) -> None:
    body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}
    def bump(folder: Path) -> None:
        cfg = next((folder / "serving/triton/model_repository").glob("*/config.pbtxt"))
        cfg.write_text(cfg.read_text().replace("max_queue_delay_microseconds: 2000",
                                               "max_queue_delay_microseconds: 1000"))
        reseal(folder)  # as a re-plan writes it

    _lifecycle(triton_folder(tmp_path / "triton"), body, restart=bump)


def test_local_dry_run_validates_and_starts_nothing(tmp_path: Path) -> None:
    folder = ray_folder(tmp_path / "ray")
    out: list[str] = []
    assert targets.deploy(folder, dry_run=True, say=out.append).dry_run is True
    assert "config valid" in out[-1]
    assert not (folder / ".mlplan" / "state.json").exists()
    (folder / "serving/ray/serve_config.yaml").write_text(yaml.safe_dump({"applications": [{"nme": "x"}]}))
    with pytest.raises(ArtifactError, match="changed since `mlplan plan` wrote the folder"):
        targets.deploy(folder, dry_run=True, say=out.append)
    reseal(folder)  # even a folder whose marker matches is validated before anything starts
    with pytest.raises(ArtifactError, match="invalid Serve config"):
        targets.deploy(folder, dry_run=True, say=out.append)


def test_a_failed_start_is_recorded(tmp_path: Path) -> None:
    folder = triton_folder(tmp_path / "t")
    cfg = next((folder / "serving/triton/model_repository").glob("*/config.pbtxt"))
    cfg.write_text(cfg.read_text().replace("max_batch_size: 8", "max_batch_size: -3"))
    reseal(folder)
    with pytest.raises(DeployError, match="tritonserver"):
        targets.deploy(folder, opts=targets.Options(smoke_requests=0), say=lambda _: None)
    state = DeployState(folder / ".mlplan", "x").target("local")
    assert state is not None and state["status"] == "failed"
    assert state["steps"][-1]["name"] == "start tritonserver" and state["steps"][-1]["status"] == "failed"
    assert state["resources"] == []  # launch stopped what it started: nothing to clean
    healthy, _ = targets.status(folder)
    assert not healthy
    assert targets.destroy(folder, say=lambda _: None) == 0


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="plan folder not found"):
        load_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match=r"has no plan\.yaml"):
        load_folder(tmp_path / "empty")
    (tmp_path / "empty" / "plan.yaml").write_text("plan: {rank: 0}\n")
    with pytest.raises(ArtifactError, match=r"has no valid \.mlplan-folder marker, so mlplan did not write it"):
        load_folder(tmp_path / "empty")
    reseal(tmp_path / "empty", plan_id="x")
    with pytest.raises(ArtifactError, match=r"plan\.yaml: plan: field 'rank'"):
        load_folder(tmp_path / "empty")
    (tmp_path / "empty" / "plan.yaml").write_text("plan: [\n")
    reseal(tmp_path / "empty", plan_id="x")
    with pytest.raises(ArtifactError, match="is not valid YAML"):
        load_folder(tmp_path / "empty")
    folder = write_plan_folder(tmp_path / "vllm", factories.cloud_llm_single_gpu())
    with pytest.raises(InputError, match="runtime 'vllm'"):
        targets.deploy(folder, "local", say=lambda _: None)
    fw = write_plan_folder(tmp_path / "fw", factories.microcontroller())
    with pytest.raises(InputError, match="firmware plan"):
        targets.deploy(fw, say=lambda _: None)
    hybrid = write_plan_folder(tmp_path / "hy", factories.hybrid_onprem_cloud_burst())
    with pytest.raises(InputError, match="hybrid"):
        targets.deploy(hybrid, say=lambda _: None)
    ray = ray_folder(tmp_path / "ray2")
    (ray / "serving/ray/serve_config.yaml").unlink()
    reseal(ray)  # as if the folder had been written without it
    with pytest.raises(ArtifactError, match=r"the Ray Serve config is missing \(serving/ray/serve_config.yaml\)"):
        targets.deploy(ray, opts=targets.Options(smoke_requests=0), say=lambda _: None)


def test_percentile() -> None:
    values = sorted(float(i) for i in range(1, 101))
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0 and percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0


def test_smoke_load_stops_early_against_a_dead_server() -> None:
    import socket
    import time

    from stacks.deploy.local import smoke_load

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    result = smoke_load(f"http://127.0.0.1:{port}/", b"{}", lambda _: None, requests=4000, concurrency=2, warmup=2)
    assert result.errors >= 200 and result.requests < 4000 and result.errors == result.requests
    assert result.first_error is not None and "Connection refused" in result.first_error
    assert time.monotonic() - t0 < 30
