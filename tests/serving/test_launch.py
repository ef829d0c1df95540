"""Launcher behaviour that needs no long-running server: failures are typed and leave nothing behind."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from planner.errors import DeployError, EnvironmentProblem, MissingDependency
from serving import launch
from serving.ray_config import ServeConfigError, build_serve_config
from tests import factories


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = launch.free_ports(20)
    assert len(set(ports)) == 20 and not any(launch.port_open(p) for p in ports)


def test_free_ports_stay_below_the_ephemeral_range(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Outgoing connections take their local ports from the kernel's ephemeral range, so a port picked there can
    be taken before the server binds it: listening ports come from below it, and a taken one is skipped."""
    low, high = launch._listen_range()
    assert high <= int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(low <= p < high for p in launch.free_ports(50))
    with socket.socket() as client:  # an outgoing connection's port is in the ephemeral range
        client.bind((launch.HOST, 0))
        assert client.getsockname()[1] >= high
    fake = tmp_path / "range"
    fake.write_text("12000\t60999\n")
    monkeypatch.setattr(launch, "EPHEMERAL_RANGE", fake)
    assert launch._listen_range() == (launch.LOWEST_PORT, 12000)
    assert all(launch.LOWEST_PORT <= p < 12000 for p in launch.free_ports(30))
    with socket.socket() as held:
        held.bind((launch.HOST, 0))
        taken = held.getsockname()[1]
        monkeypatch.setattr(launch, "_listen_range", lambda: (taken, taken + 1))
        with pytest.raises(EnvironmentProblem, match=f"found only 0 of 1 free TCP ports .* in {taken}-{taken}"):
            launch.free_ports(1)


def test_missing_triton_wheel_is_a_missing_dependency(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pytriton" else real(name, *a))
    with pytest.raises(MissingDependency, match="nvidia-pytriton") as exc:
        launch.start_triton(tmp_path, workdir=tmp_path / "w")
    assert exc.value.exit_code == 4 and "To fix" in str(exc.value)


def test_stop_of_a_dead_server_is_safe(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    proc.wait()
    record = {"kind": "x", "pid": proc.pid, "sid": proc.pid, "start_ticks": None, "ports": [launch.free_port()]}
    assert launch.stop(record)["stopped"] == []
    assert not launch.is_healthy({**record, "health_url": "http://127.0.0.1:1/"})


def test_stop_kills_the_whole_session_and_nothing_else(tmp_path: Path) -> None:
    script = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);" \
             " time.sleep(60)"
    pid = launch._spawn([sys.executable, "-c", script], env=dict(os.environ), log=tmp_path / "l.log", cwd=tmp_path)
    outsider = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = launch._record("test", pid, ports=[])
        deadline = time.monotonic() + 10
        while len(launch.session_members(pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(launch.session_members(pid)) == 2
        assert launch.is_running(record)
        launch.stop(record)
        assert launch.session_members(pid) == [] and not launch.is_running(record)
        assert outsider.poll() is None  # a process outside the session is untouched
    finally:
        outsider.kill()
        outsider.wait()


def test_pid_reuse_guard(tmp_path: Path) -> None:
    record = {"kind": "x", "pid": os.getpid(), "sid": os.getsid(0), "start_ticks": -1, "ports": []}
    assert not launch.is_running(record)  # start time differs: not ours, so stop() must not touch it
    assert launch.stop(record)["stopped"] == []


def test_invalid_serve_config_is_refused_before_anything_starts(tmp_path: Path) -> None:
    cfg = build_serve_config(factories.local_demo())
    cfg["applications"][0]["deployments"][0]["num_replica"] = 2
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ServeConfigError, match="num_replica"):
        launch.start_ray_serve(path, workdir=tmp_path / "w")
    assert not list((tmp_path / "w").glob("*.log"))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("pytriton") is None, reason="nvidia-pytriton (tritonserver) absent")
def test_triton_that_cannot_load_its_model_fails_cleanly(tmp_path: Path) -> None:
    repo = tmp_path / "repo" / "broken"
    (repo / "1").mkdir(parents=True)
    (repo / "config.pbtxt").write_text('backend: "python"\nmax_batch_size: 1\n'
                                       'input { name: "x" data_type: TYPE_FP32 dims: 1 }\n'
                                       'output { name: "y" data_type: TYPE_FP32 dims: 1 }\n')
    (repo / "1" / "model.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(DeployError, match="tritonserver exited") as exc:
        launch.start_triton(tmp_path / "repo", workdir=tmp_path / "w", timeout_s=60)
    assert "boom" in str(exc.value) or "failed to load" in str(exc.value)
