"""``mlplan deploy / status / destroy / preflight`` under faults, run as a user runs them (subprocesses).

Each case: a clear one-line error with the documented exit code (4 environment, 5 deploy), a deploy state that
``mlplan status`` reports truthfully (non-zero, naming the failed step), and a ``mlplan destroy`` that exits 0
and leaves no process and no open port. Fake secrets are planted in every command's environment and must not
show up in the plan folder, the deploy state, the server logs or the captured output.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from serving import launch
from serving.launch import free_port
from tests import factories
from tests.deploy.conftest import write_plan_folder
from tests.faults.conftest import (
    MLPLAN,
    ROOT,
    MotoServer,
    mlplan,
    mlplan_env,
    one_line_error,
    secrets_in,
)

# Ray 2.60's serve config models pass extra kwargs to pydantic Field (their code, warned at import)
RAY_PYDANTIC_WARNING = (
    "ignore:Using extra keyword arguments on `Field` is deprecated:pydantic.warnings.PydanticDeprecatedSince20"
)


def state_of(folder: Path) -> dict[str, Any]:
    path = folder / ".mlplan" / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def servers(folder: Path) -> list[dict[str, Any]]:
    rec = state_of(folder).get("targets", {}).get("local") or {}
    return [r for r in rec.get("resources", []) if r.get("kind")]


def current_step(folder: Path) -> str | None:
    try:
        steps = state_of(folder)["targets"]["local"]["steps"]
    except (KeyError, ValueError, OSError):
        return None
    return str(steps[-1]["name"]) if steps else None


def wait_for_server(folder: Path, proc: subprocess.Popen[str], timeout: float = 180,
                    step: str | None = None) -> dict[str, Any]:
    """The server record, as soon as ``mlplan deploy`` writes it into the deploy state (the server is recorded
    the moment it is spawned); with ``step``, once the deploy has also reached that step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = servers(folder)
        except ValueError:  # caught between write and rename? (writes are atomic, so never; keep polling)
            found = []
        if found and (step is None or current_step(folder) == step):
            return found[0]
        if proc.poll() is not None:
            pytest.fail(f"deploy ended (exit {proc.returncode}) before its server was recorded:\n"
                        f"{proc.communicate()[1]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the server never appeared in the deploy state")


def assert_cleaned_up(folder: Path, record: dict[str, Any]) -> None:
    """``mlplan destroy`` exits 0, leaves no process of the server's session and no open port; status then says
    nothing is deployed; a second destroy is a no-op."""
    done = mlplan("destroy", str(folder))
    assert done.returncode == 0, done.stderr
    assert not launch.session_members(int(record["sid"]))
    assert not [p for p in record["ports"] if launch.port_open(int(p))]
    after = mlplan("status", str(folder))
    assert after.returncode == 5 and "is deployed" in one_line_error(after)
    assert mlplan("destroy", str(folder)).returncode == 0
    assert not secrets_in(folder, done.stdout, done.stderr, after.stdout, after.stderr)


@pytest.fixture(scope="module")
def ray_plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local demo, planned by `mlplan plan` (Ray Serve on this machine)."""
    out = tmp_path_factory.mktemp("ray") / "plan"
    done = mlplan("plan", "examples/local-demo.yaml", "--out", str(out), "--no-preview")
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def ray_folder(ray_plan: Path, tmp_path: Path) -> Iterator[Path]:
    import shutil

    folder = tmp_path / "plan"
    shutil.copytree(ray_plan, folder)
    yield folder
    for r in servers(folder):  # a failing test must not leave servers behind
        launch.stop(r)


@pytest.fixture
def triton_folder(tmp_path: Path) -> Iterator[Path]:
    from serving.triton import write_model_repository

    plan = factories.local_demo("triton")
    folder = write_plan_folder(tmp_path / "triton", plan)
    write_model_repository(plan, folder / "serving" / "triton" / "model_repository")
    yield folder
    for r in servers(folder):
        launch.stop(r)


@pytest.mark.slow
@pytest.mark.filterwarnings(RAY_PYDANTIC_WARNING)
def test_ray_server_killed_mid_deploy(ray_folder: Path) -> None:
    """The Ray head's process group dies during the smoke load: deploy exits 5 with one line, status says
    the server is not running and the state failed, destroy stops whatever is left of the session."""
    proc = subprocess.Popen([MLPLAN, "deploy", str(ray_folder), "--target", "local", "--smoke-requests", "4000",
                             "--concurrency", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=mlplan_env(), cwd=ROOT)
    record = wait_for_server(ray_folder, proc, step="smoke load")
    os.killpg(int(record["pid"]), signal.SIGKILL)  # the server crashes: its process group, at once
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 5, err
    line = one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    assert "smoke load" in line and "requests failed" in line and "To fix: read the server logs" in line
    target = state_of(ray_folder)["targets"]["local"]
    assert target["status"] == "failed" and target["steps"][-1]["name"] == "smoke load"
    assert target["steps"][-1]["status"] == "failed"

    # the rest of the session (raylet, workers) may still be exiting after the head's group died, so /proc is
    # read on both sides of the status call: what status says must be what /proc said at one of those moments
    alive_before = bool(launch.session_members(int(record["sid"])))
    status = mlplan("status", str(ray_folder))
    alive_after = bool(launch.session_members(int(record["sid"])))
    assert status.returncode == 5
    assert "local: NOT healthy (state failed, failed step 'smoke load'" in status.stdout
    said = {"running but its health check fails" if alive else "not running" for alive in (alive_before, alive_after)}
    assert any(s in status.stdout for s in said), (said, status.stdout)
    assert "not healthy" in one_line_error(status)
    assert not secrets_in(ray_folder, out, err, status.stdout, status.stderr)
    assert_cleaned_up(ray_folder, record)


@pytest.mark.slow
def test_triton_killed_after_a_successful_deploy(triton_folder: Path) -> None:
    done = mlplan("deploy", str(triton_folder), "--target", "local", "--smoke-requests", "20")
    assert done.returncode == 0, done.stderr
    record = servers(triton_folder)[0]
    status = mlplan("status", str(triton_folder))
    assert status.returncode == 0 and "local: healthy" in status.stdout
    os.killpg(int(record["pid"]), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while launch.session_members(int(record["sid"])) and time.monotonic() < deadline:
        time.sleep(0.1)
    status = mlplan("status", str(triton_folder))
    assert status.returncode == 5
    assert "local: NOT healthy (state deployed)" in status.stdout
    assert f"triton (pid {record['pid']}) at" in status.stdout and ": not running" in status.stdout
    assert "not healthy" in one_line_error(status)
    # a deploy now notices the dead server and starts a fresh one (the record of the dead one is replaced)
    again = mlplan("deploy", str(triton_folder), "--target", "local", "--smoke-requests", "10")
    assert again.returncode == 0, again.stderr
    fresh = servers(triton_folder)[0]
    assert fresh["pid"] != record["pid"] and launch.is_healthy(fresh)
    assert not secrets_in(triton_folder, done.stdout, done.stderr, again.stdout, again.stderr)
    assert_cleaned_up(triton_folder, fresh)


# ------------------------------------------------------------------------------------------ kubernetes


def test_kubeconfig_pointing_at_a_closed_port(tmp_path: Path) -> None:
    from serving.kuberay import build_rayservice

    plan = factories.onprem_llm()
    folder = write_plan_folder(tmp_path / "k", plan, {
        "serving/kuberay/rayservice.yaml": yaml.safe_dump(build_rayservice(plan, "mlplan-mistral-7b"))})
    port = free_port()  # bound then released: nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dead",
        "clusters": [{"name": "dead", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "kubeconfig-token-must-not-leak-3f9a"}}]}))
    t0 = time.monotonic()
    done = mlplan("deploy", str(folder), "--target", "kubernetes", "--kubeconfig", str(kubeconfig))
    assert time.monotonic() - t0 < 60
    assert done.returncode == 4, done.stderr
    line = one_line_error(done)
    assert f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}: connection refused" in line
    assert "To fix:" in line
    target = state_of(folder)["targets"]["kubernetes"]
    assert target["resources"] == [] and target["status"] == "failed"
    assert [s["name"] for s in target["steps"]] == ["connect"] and target["steps"][0]["status"] == "failed"

    status = mlplan("status", str(folder), "--kubeconfig", str(kubeconfig))
    assert status.returncode == 5
    assert "kubernetes: NOT healthy (state failed, failed step 'connect'" in status.stdout
    gone = mlplan("destroy", str(folder), "--kubeconfig", str(kubeconfig))
    assert gone.returncode == 0, gone.stderr
    after = mlplan("status", str(folder))
    assert after.returncode == 5 and "is deployed" in one_line_error(after)
    for text in (done.stdout, done.stderr, status.stdout, gone.stdout, json.dumps(state_of(folder))):
        assert "kubeconfig-token-must-not-leak-3f9a" not in text
    assert not secrets_in(folder, done.stdout, done.stderr, status.stdout, status.stderr)


# ------------------------------------------------------------------------------------------------ moto


class KillSwitch:
    """An HTTP relay in front of moto that stops the moto server when a chosen AWS action arrives, drops that
    request unanswered and stops listening: from then on the endpoint refuses connections, as a dead server's
    port does."""

    def __init__(self, moto: MotoServer, action: str) -> None:
        self.moto, self.action, self.seen = moto, action, []
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                import http.client

                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target", "")
                action = next((p.split("=", 1)[1] for p in body.decode(errors="replace").split("&")
                               if p.startswith("Action=")), target.rsplit(".", 1)[-1])
                relay.seen.append(action)
                if action == relay.action:
                    relay.moto.stop()
                    threading.Thread(target=relay.server.shutdown, daemon=True).start()
                    relay.server.socket.close()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", relay.moto.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_HEAD = do_PUT = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.slow
@pytest.mark.parametrize(("action", "codes", "text"), [
    ("GetCallerIdentity", (4,), "sts:GetCallerIdentity: cannot reach the AWS endpoint"),
    ("DescribeInstanceTypeOfferings", (4, 5), "ec2:DescribeInstanceTypeOfferings"),
    ("DescribeInstanceTypes", (4, 5), "ec2:DescribeInstanceTypes"),
])
def test_moto_stopped_mid_preflight(tmp_path: Path, action: str, codes: tuple[int, ...], text: str) -> None:
    moto = MotoServer(tmp_path / "moto.log")
    try:
        switch = KillSwitch(moto, action)
        folder = write_plan_folder(tmp_path / "c", factories.cloud_llm_single_gpu())
        env = {k: v for k, v in mlplan_env().items() if not k.startswith("AWS_") or k in (
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
        env.update({"AWS_ENDPOINT_URL": switch.url, "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                    "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")})
        t0 = time.monotonic()
        done = subprocess.run([MLPLAN, "preflight", str(folder)], capture_output=True, text=True, env=env,
                              timeout=120, check=False, cwd=ROOT)
        took = time.monotonic() - t0
    finally:
        moto.stop()
    assert moto.proc.poll() is not None and action in switch.seen
    assert done.returncode in codes, done.stdout + done.stderr
    line = one_line_error(done)
    assert text in line and "To fix:" in line, line
    assert took < 60, f"preflight took {took:.0f} s against a dead endpoint"
    if action != "GetCallerIdentity":
        assert "[ok  ] credentials: account 123456789012" in done.stdout
    status = mlplan("status", str(folder))  # preflight changes nothing: nothing is deployed
    assert status.returncode == 5 and "is deployed" in one_line_error(status)
    assert not (folder / ".mlplan" / "state.json").exists()
    assert not secrets_in(folder, done.stdout, done.stderr)
