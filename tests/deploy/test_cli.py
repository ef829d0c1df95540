"""The ``mlplan deploy / status / destroy / preflight`` commands as a user runs them (a subprocess): one line
per error with the exit code of its class, lazy imports, and whole flows against the fake Kubernetes API and
(slow) the local demo served by Ray Serve from a folder that `mlplan plan` wrote."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import factories
from tests.deploy.conftest import write_plan_folder
from tests.deploy.fake_kube import FakeKubeServer
from tests.deploy.test_kube import DEPLOYMENT, SERVICE

ROOT = Path(__file__).resolve().parents[2]
MLPLAN = str(Path(sys.executable).parent / "mlplan")
HEAVY = ("kubernetes", "pulumi", "boto3", "botocore", "ray", "tritonclient", "urllib3")


def mlplan(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    full.pop("MLPLAN_DEBUG", None)
    return subprocess.run([MLPLAN, *args], capture_output=True, text=True, env=full, timeout=timeout, check=False,
                          cwd=ROOT)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error line of a failed command: exactly one ``mlplan: error:`` line, the last on stderr (progress
    lines may come before it), no traceback."""
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("mlplan: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    return errors[0]


@pytest.mark.parametrize("command", ["deploy", "status", "destroy", "preflight"])
def test_help_imports_no_heavy_library(command: str) -> None:
    code = (f"import sys\nfrom mlplan.cli import main\ntry:\n    main([{command!r}, '--help'])\n"
            f"except SystemExit:\n    pass\nprint('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip().splitlines()[-1] == "HEAVY=", done.stdout


def test_missing_and_corrupt_folders(tmp_path: Path) -> None:
    done = mlplan("deploy", str(tmp_path / "nope"))
    assert done.returncode == 5
    assert "plan folder not found" in one_line_error(done) and "To fix: run `mlplan plan SPEC --out DIR`" in done.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "plan.yaml").write_text("plan: {id: 3}\n")
    done = mlplan("status", str(bad))
    assert done.returncode == 5 and "has no valid .mlplan-folder marker" in one_line_error(done)
    from stacks.folder import MARKER, marker_text

    (bad / MARKER).write_text(marker_text("3", bad, [bad / "plan.yaml"]))
    done = mlplan("status", str(bad))
    assert done.returncode == 5 and "plan.yaml: plan: field" in one_line_error(done)


def test_status_and_destroy_of_a_folder_never_deployed(tmp_path: Path) -> None:
    folder = write_plan_folder(tmp_path / "p", factories.local_demo())
    done = mlplan("status", str(folder))
    assert done.returncode == 5 and "is deployed" in one_line_error(done)
    done = mlplan("destroy", str(folder))
    assert done.returncode == 0 and "nothing to destroy" in done.stderr and "destroyed: 0 removed" in done.stdout


def test_pulumi_missing_is_exit_4(tmp_path: Path) -> None:
    folder = write_plan_folder(tmp_path / "c", factories.cloud_llm_single_gpu(),
                               {"infra/Pulumi.yaml": "name: x\nruntime: python\n"})
    empty = tmp_path / "bin"
    empty.mkdir()
    done = mlplan("deploy", str(folder), "--preview", env={"PATH": str(empty)})
    assert done.returncode == 4
    assert "the pulumi CLI is not installed" in one_line_error(done) and "https://get.pulumi.com" in done.stderr


def test_preflight_without_credentials_is_exit_4(tmp_path: Path) -> None:
    folder = write_plan_folder(tmp_path / "c", factories.cloud_llm_single_gpu())
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "x"),
           "AWS_CONFIG_FILE": str(tmp_path / "x"), "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    env_clean = {k: v for k, v in env.items() if v}
    full = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    full.update(env_clean)
    done = subprocess.run([MLPLAN, "preflight", str(folder)], capture_output=True, text=True, env=full, timeout=60,
                          check=False)
    assert done.returncode == 4
    assert "[FAIL] credentials: sts:GetCallerIdentity: no AWS credentials found" in done.stdout
    assert "preflight: 1 of 1 checks failed" in one_line_error(done)
    onprem = write_plan_folder(tmp_path / "o", factories.onprem_llm())
    done = mlplan("preflight", str(onprem))
    assert done.returncode == 2 and "has no cloud part" in one_line_error(done)


def test_kubernetes_flow_through_the_cli(tmp_path: Path) -> None:
    folder = write_plan_folder(tmp_path / "k", factories.onprem_llm(), {
        "k8s/service.yaml": yaml.safe_dump(SERVICE), "k8s/deployment.yaml": yaml.safe_dump(DEPLOYMENT)})
    with FakeKubeServer() as server:
        cfg = server.kubeconfig(tmp_path / "kubeconfig")
        dry = mlplan("deploy", str(folder), "--dry-run", "--kubeconfig", cfg)
        assert dry.returncode == 0, dry.stderr
        assert "server-side dry run" in dry.stderr and server.fake.writes == 0
        assert "kubernetes: 3 change(s) would be made (dry run)" in dry.stdout
        done = mlplan("deploy", str(folder), "--kubeconfig", cfg, "--timeout", "30")  # default target: kubernetes
        assert done.returncode == 0, done.stderr
        # progress on stderr, each step as it starts and ends (with its duration), the result on stdout
        assert "Deployment/mistral-7b in mlplan-mistral: created" in done.stderr
        assert "rollout ready" in done.stderr
        steps = [ln for ln in done.stderr.splitlines() if ln.startswith("kubernetes: ")]
        assert [re.sub(r"\d+\.\d s$", "T s", s) for s in steps] == [
            "kubernetes: connect ...", "kubernetes: connect done in T s", "kubernetes: check ownership ...",
            "kubernetes: check ownership done in T s", "kubernetes: apply ...", "kubernetes: apply done in T s",
            "kubernetes: wait for rollout ...", "kubernetes: wait for rollout done in T s"]
        assert done.stdout.splitlines() == ["kubernetes: deployed, 3 change(s), ready"]
        again = mlplan("deploy", str(folder), "--kubeconfig", cfg)
        assert "2 objects with field manager 'mlplan': 0 changed, 2 unchanged" in again.stderr
        assert "kubernetes: deployed, 0 change(s), ready" in again.stdout
        status = mlplan("status", str(folder))  # the deploy's kubeconfig is recorded: no need to repeat it
        assert status.returncode == 0 and "kubernetes: healthy" in status.stdout
        gone = mlplan("destroy", str(folder))
        assert gone.returncode == 0 and "kubernetes: destroyed" in gone.stderr
        assert "destroyed: 3 removed" in gone.stdout
        assert mlplan("destroy", str(folder), "--kubeconfig", cfg).returncode == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg_text = Path(cfg).read_text().replace(server.url, f"http://127.0.0.1:{port}")
    Path(cfg).write_text(cfg_text)
    done = mlplan("deploy", str(folder), "--kubeconfig", cfg)
    assert done.returncode == 4
    assert "cannot reach the Kubernetes API server" in one_line_error(done)


@pytest.mark.slow
def test_local_demo_end_to_end(tmp_path: Path) -> None:
    """The brief's scenario: plan examples/local-demo.yaml, deploy locally, status, destroy, destroy again."""
    out = tmp_path / "demo"
    done = mlplan("plan", "examples/local-demo.yaml", "--out", str(out), "--no-preview")
    assert done.returncode == 0, done.stderr
    deployed = mlplan("deploy", str(out), "--target", "local", "--smoke-requests", "100", timeout=400)
    try:
        assert deployed.returncode == 0, deployed.stderr + deployed.stdout
        endpoint = re.search(r"^endpoint: (http://127\.0\.0\.1:\d+/\S*)$", deployed.stdout, re.M)
        assert endpoint, deployed.stdout
        smoke = re.search(r"p50 ([\d.]+) ms, p99 ([\d.]+) ms, .*\(predicted latency ([\d.]+) ms\)", deployed.stderr)
        assert smoke, deployed.stderr
        status = mlplan("status", str(out))
        assert status.returncode == 0 and "local: healthy" in status.stdout
        pid = re.search(r"ray-serve \(pid (\d+)\)", status.stdout)
        assert pid, status.stdout
        again = mlplan("deploy", str(out), "--target", "local")
        assert again.returncode == 0 and "already deployed and healthy" in again.stderr
        assert f"endpoint: {endpoint.group(1)}" in again.stdout
    finally:
        gone = mlplan("destroy", str(out))
    assert gone.returncode == 0, gone.stderr
    from serving.launch import session_members

    assert not session_members(int(pid.group(1)))  # every process of the Ray session is gone
    port = int(endpoint.group(1).split(":")[2].split("/")[0])
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # port closed
    status = mlplan("status", str(out))
    assert status.returncode == 5
    again = mlplan("destroy", str(out))
    assert again.returncode == 0 and "nothing to destroy" in again.stderr


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                found.append(int(entry))
    return found


@pytest.mark.slow
def test_sigterm_while_starting_leaves_nothing_running(tmp_path: Path) -> None:
    """SIGTERM to `mlplan deploy` while tritonserver starts: one line, exit 5, the failed step on record, and
    (after destroy) no tritonserver of this folder left, whichever phase the signal hit."""
    import json
    import signal
    import time

    from serving.triton import write_model_repository

    plan = factories.local_demo("triton")
    folder = write_plan_folder(tmp_path / "t", plan)
    repo = folder / "serving" / "triton" / "model_repository"
    write_model_repository(plan, repo)
    proc = subprocess.Popen([MLPLAN, "deploy", str(folder), "--smoke-requests", "100000"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    state = folder / ".mlplan" / "state.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            steps = json.loads(state.read_text())["targets"]["local"]["steps"]
        except (OSError, ValueError, KeyError):
            steps = []
        if steps and steps[-1]["name"] == "start tritonserver":
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 5, err
    assert "terminated (SIGTERM)" in one_line_error(subprocess.CompletedProcess(proc.args, 5, out, err))
    rec = json.loads(state.read_text())["targets"]["local"]
    assert rec["status"] == "failed" and rec["steps"][-1]["status"] == "failed"
    assert mlplan("destroy", str(folder)).returncode == 0
    assert not _processes_mentioning(str(repo.resolve()))


@pytest.mark.slow
def test_ctrl_c_while_starting_is_exit_130_and_recorded(tmp_path: Path) -> None:
    import json
    import signal
    import time

    from serving.triton import write_model_repository

    plan = factories.local_demo("triton")
    folder = write_plan_folder(tmp_path / "t", plan)
    repo = folder / "serving" / "triton" / "model_repository"
    write_model_repository(plan, repo)
    proc = subprocess.Popen([MLPLAN, "deploy", str(folder), "--smoke-requests", "0"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    state = folder / ".mlplan" / "state.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "start tritonserver" not in (state.read_text() if state.exists() else ""):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    rec = json.loads(state.read_text())["targets"]["local"]
    assert rec["status"] == "failed" and rec["steps"][-1]["name"] in ("stop on SIGINT", "start tritonserver")
    assert mlplan("destroy", str(folder)).returncode == 0
    assert not _processes_mentioning(str(repo.resolve()))
