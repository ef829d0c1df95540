"""A local deploy is private to this machine: every listener of the servers is on the loopback address, Ray's
token authentication is on, and the servers run without the caller's cloud credentials.

Oracles independent of mlplan's own checks: ``ss -ltnp`` (iproute2) for the listeners, ``/proc/<pid>/environ`` of
every process of the server's session for the environment, and a Ray client that connects without the token.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from planner.errors import EnvironmentProblem
from serving import launch
from stacks.deploy import targets
from stacks.deploy.state import DeployState
from tests.deploy.test_local import RAY_PYDANTIC_WARNING, ray_folder, triton_folder

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(RAY_PYDANTIC_WARNING)]

#: credentials the caller has; no server may see any of them (names or values)
PLANTED = {
    "AWS_ACCESS_KEY_ID": "AKIAPLANTEDLOCAL0001", "AWS_SECRET_ACCESS_KEY": "planted-aws-secret-0d9f",
    "AWS_SESSION_TOKEN": "planted-aws-session-77aa", "AWS_PROFILE": "planted-profile",
    "GOOGLE_APPLICATION_CREDENTIALS": "/planted/gcp-key.json", "AZURE_CLIENT_SECRET": "planted-azure-secret-51c2",
    "KUBECONFIG": "/planted/kubeconfig", "HF_TOKEN": "hf_plantedtoken0123456789", "GITHUB_TOKEN": "ghp_planted0123",
    "MY_SERVICE_API_KEY": "planted-api-key-4e4e", "DB_PASSWORD": "planted-db-password",
    "PULUMI_CONFIG_PASSPHRASE": "planted-passphrase", "RAY_ADDRESS": "10.9.9.9:6379", "RAY_AUTH_MODE": "disabled",
}


def ss_listeners(pids: set[int]) -> list[tuple[str, int, int]]:
    """(address, port, pid) of the TCP listeners of ``pids``, as ``ss -ltnpH`` reports them."""
    done = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True)
    out = []
    for line in done.stdout.splitlines():
        cols = line.split()
        local = cols[3]
        for pid in map(int, re.findall(r"pid=(\d+)", line)):
            if pid in pids:
                addr, port = local.rsplit(":", 1)
                out.append((addr.strip("[]"), int(port), pid))
    return out


def environ(pid: int) -> dict[str, str]:
    """The process's environment from /proc, or {} when unreadable. A process that renamed itself with
    setproctitle (Ray's ``ray::DashboardAgent`` ...) may have its original environment area overwritten by the
    title: {} too. Each such process inherits from a parent whose environment is checked (raylet, gcs_server)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    env = dict(e.decode(errors="replace").split("=", 1) for e in raw.split(b"\0") if b"=" in e)
    return env if "PATH" in env else {}


def assert_private(record: dict[str, Any]) -> list[int]:
    pids = launch.session_members(int(record["sid"]))
    assert pids
    listeners = ss_listeners(set(pids))
    assert listeners, "the servers listen nowhere?"
    public = [(a, p, pid) for a, p, pid in listeners if a not in ("127.0.0.1", "::ffff:127.0.0.1")]
    assert not public, f"listeners off the loopback address: {public}"
    assert int(record["http_port"]) in {p for _, p, _ in listeners}
    for pid in pids:
        env = environ(pid)
        leaked = sorted(k for k in env if k in PLANTED and k not in ("RAY_AUTH_MODE",))
        assert not leaked, f"pid {pid} ({launch._comm(pid)}) got {leaked}"
        values = [k for k, v in env.items() if any(secret in v for secret in PLANTED.values())]
        assert not values, f"pid {pid} ({launch._comm(pid)}) got planted values in {values}"
        assert not [k for k in env if k.startswith(("AWS_", "GOOGLE_", "AZURE_", "KUBE"))]
    return pids


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k, v in PLANTED.items():
        monkeypatch.setenv(k, v)
    yield


def test_ray_serve_is_loopback_only_with_token_auth_and_no_credentials(tmp_path: Path, planted: None) -> None:
    folder = ray_folder(tmp_path / "ray")
    out: list[str] = []
    result = targets.deploy(folder, opts=targets.Options(smoke_requests=20, concurrency=2), say=out.append)
    try:
        record = DeployState(folder / ".mlplan", "x").target("local")["resources"][0]  # type: ignore[index]
        assert result.endpoint is not None and result.endpoint.startswith("http://127.0.0.1:")
        pids = assert_private(record)
        assert any(launch._comm(p).startswith("gcs_server") and environ(p) for p in pids)
        assert any(launch._comm(p) == "raylet" and environ(p) for p in pids)
        # the progress lines of the start, as they happened
        assert any(re.fullmatch(r"  Ray head up: GCS on 127\.0\.0\.1:\d+, token authentication on \(\d+\.\d s\)", ln)
                   for ln in out), out
        assert any(ln.startswith("  Ray Serve answers on 127.0.0.1:") and "all on the loopback address" in ln
                   for ln in out), out
        # token authentication: on for every process, the token in a 0600 file of a 0700 directory
        token = Path(record["auth_token_path"])
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert stat.S_IMODE(token.parent.stat().st_mode) == 0o700
        # A process that retitled itself (``ray::DashboardAgent``) may have had the head of its environment area
        # overwritten by the title, so a setting missing there proves nothing; a setting present must still be
        # right. Every process that kept its own title must carry both.
        envs = {pid: environ(pid) for pid in pids}
        kept_title = {pid for pid in pids if envs[pid] and not launch._comm(pid).startswith("ray::")}
        assert {launch._comm(p) for p in kept_title} >= {"gcs_server", "raylet"}
        want = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        off = [(pid, launch._comm(pid), k, env.get(k)) for pid, env in envs.items() for k, v in want.items()
               if (k in env or pid in kept_title) and env.get(k) != v]
        assert not off, off
        # a client without the token is refused; with it, it connects
        code = f"import ray; ray.init(address={record['ray_address']!r}); print('CONNECTED')"
        base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k not in PLANTED}
        base["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        refused = subprocess.run([sys.executable, "-c", code], env={**base, "RAY_AUTH_MODE": "disabled"},
                                 capture_output=True, text=True, timeout=180, check=False)
        assert refused.returncode != 0 and "CONNECTED" not in refused.stdout
        allowed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                                 check=False, env={**base, "RAY_AUTH_MODE": "token",
                                                   "RAY_AUTH_TOKEN_PATH": str(token)})
        assert allowed.returncode == 0 and "CONNECTED" in allowed.stdout, allowed.stderr[-2000:]
    finally:
        targets.destroy(folder, say=lambda _: None)
    assert not token.exists()  # the session's temp dir, token included, goes with the server


def test_triton_is_loopback_only_and_gets_no_credentials(tmp_path: Path, planted: None) -> None:
    folder = triton_folder(tmp_path / "triton")
    out: list[str] = []
    targets.deploy(folder, opts=targets.Options(smoke_requests=20, concurrency=2), say=out.append)
    try:
        record = DeployState(folder / ".mlplan", "x").target("local")["resources"][0]  # type: ignore[index]
        pids = assert_private(record)
        assert {launch._comm(p) for p in pids} >= {"tritonserver"}
        assert int(record["grpc_port"]) in {p for _, p, _ in ss_listeners(set(pids))}
    finally:
        targets.destroy(folder, say=lambda _: None)


def test_child_env_is_an_allow_list() -> None:
    parent = {**PLANTED, "PATH": "/usr/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "LC_ALL": "C", "TZ": "UTC",
              "CUDA_VISIBLE_DEVICES": "0", "RANDOM_SETTING": "x", "SSH_AUTH_SOCK": "/tmp/agent", "OPENAI_API_KEY": "k",
              "AWS_REGION": "us-east-1", "CLOUDSDK_CONFIG": "/c", "ARM_CLIENT_SECRET": "s"}
    env = launch.child_env({"RAY_AUTH_MODE": "token"}, parent=parent)
    assert set(env) == {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "PYTHONPATH", "RAY_AUTH_MODE"}
    assert env["PATH"].split(os.pathsep) == [str(Path(sys.executable).parent), "/usr/bin"]
    assert env["RAY_AUTH_MODE"] == "token"


@pytest.mark.parametrize("runtime", ["ray", "triton"])
def test_a_taken_port_is_one_line_and_starts_nothing(tmp_path: Path, runtime: str) -> None:
    folder = ray_folder(tmp_path / "r") if runtime == "ray" else triton_folder(tmp_path / "t")
    if runtime == "triton" and shutil.which("ss") is None:  # pragma: no cover - iproute2 is in the image
        pytest.skip("ss missing")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(EnvironmentProblem) as err:
            targets.deploy(folder, opts=targets.Options(port=port, smoke_requests=0), say=lambda _: None)
    line = err.value.one_line()
    assert err.value.exit_code == 4 and "\n" not in line and len(line) < 400
    assert f"port {port} on 127.0.0.1 is already in use by pid {os.getpid()} (" in line
    assert "To fix: choose another with --port (0 picks a free one)" in line
    state = DeployState(folder / ".mlplan", "x").target("local")
    assert state is not None and state["status"] == "failed" and state["resources"] == []
