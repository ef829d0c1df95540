"""``mlplan plan`` and ``mlplan diff`` as a user runs them (subprocesses): the real optimizer, the offline
preview in its own process, one-line errors with the exit code of their class."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MLPLAN = str(Path(sys.executable).parent / "mlplan")


def mlplan(*args: str, cwd: Path = ROOT, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLPLAN_DEBUG"}
    return subprocess.run([MLPLAN, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout,
                          check=False)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("cli")
    a, b = base / "chosen", base / "runner-up"
    r = mlplan("plan", "examples/chat-eu-pii.yaml", "--out", str(a))
    assert r.returncode == 0, r.stderr
    assert f"wrote {a}" in r.stdout and "/month" in r.stdout
    r = mlplan("plan", "examples/chat-eu-pii.yaml", "--out", str(b), "--plan-index", "1")
    assert r.returncode == 0, r.stderr
    return a, b


def test_plan_writes_a_complete_folder_from_a_spec(folders: tuple[Path, Path]) -> None:
    a, _ = folders
    data = yaml.safe_load((a / "plan.yaml").read_text())
    assert data["spec"]["name"] == "chat-eu-pii" and data["plan"]["rank"] == 1
    md = (a / "PLAN.md").read_text()
    assert "## Resources the stack will create" in md and "aws:eks/cluster:Cluster" in md  # offline preview ran
    assert not (a / ".mlplan").exists()
    assert not [p for p in a.parent.iterdir() if p.name.startswith((".mlplan-tmp-", ".mlplan-old-"))]
    manifests = sorted((a / "k8s").glob("*.yaml"))
    assert manifests
    # every non-CRD object validates with the kubernetes-validate CLI, as a user would run it
    plain = a.parent / "plain.yaml"
    docs = [d for m in manifests for d in yaml.safe_load_all(m.read_text()) if not d["apiVersion"].startswith("ray.io")]
    plain.write_text(yaml.safe_dump_all(docs))
    tool = str(Path(sys.executable).parent / "kubernetes-validate")
    r = subprocess.run([tool, "--strict", "-k", "1.32", "--quiet", str(plain)], capture_output=True, text=True,
                       check=False, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_diff_between_the_chosen_plan_and_the_runner_up(folders: tuple[Path, Path]) -> None:
    a, b = folders
    r = mlplan("diff", str(a), str(b), "--markdown")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("### mlplan diff:") and "**Monthly cost:**" in r.stdout
    assert "**Resources:**" in r.stdout and "**Files:**" in r.stdout
    r = mlplan("diff", str(a), str(b))  # rendered for a terminal
    assert r.returncode == 0 and "Monthly cost" in r.stdout


def test_errors_are_one_line_with_their_exit_code(folders: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = folders
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {preset: llama-3-8b}\nworkload: {kind: inference, requests_per_s: -1}\n")
    r = mlplan("plan", str(bad), "--out", str(tmp_path / "x"), "--no-preview")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "requests_per_s" in r.stderr
    assert "Traceback" not in r.stderr
    r = mlplan("diff", str(tmp_path / "missing"), str(a))
    assert r.returncode == 5 and "plan folder not found" in r.stderr and "To fix:" in r.stderr
    r = mlplan("plan", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "y"))
    assert r.returncode == 2 and "not found" in r.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.pulumi_cli
@pytest.mark.kind
def test_pulumi_preview_with_the_real_cli(folders: tuple[Path, Path], tmp_path: Path) -> None:
    """The generated on-prem program previewed by the real pulumi CLI against a kind cluster (local backend)."""
    if shutil.which("pulumi") is None:
        pytest.skip("pulumi CLI not installed here (no PyPI/npm/apt package ships it); runs where it is")
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig or shutil.which("kind") is None:
        pytest.skip("needs a kind cluster (KUBECONFIG) and the kind CLI")
    from planner.plan import Recommendation
    from planner.specs import ModelSpec, Spec
    from stacks.writer import write_plan_folder
    from tests import factories

    out = tmp_path / "onprem"
    rec = Recommendation(spec_name="onprem", catalog_version="test", candidates_searched=1,
                         plans=(factories.onprem_llm(),), rejected=())
    write_plan_folder(Spec(name="onprem", model=ModelSpec(preset="mistral-7b")), rec, out, preview=False)
    infra = out / "infra"
    env = {**os.environ, "PULUMI_BACKEND_URL": f"file://{tmp_path}", "PULUMI_CONFIG_PASSPHRASE": "test",
           "PYTHONPATH": str(ROOT)}
    stack = next(infra.glob("Pulumi.*.yaml")).name.removeprefix("Pulumi.").removesuffix(".yaml")
    for cmd in (["stack", "init", stack], ["config", "set", "--secret", "mlplan:kubeconfig",
                                           Path(kubeconfig).read_text()],
                ["preview", "--non-interactive"]):
        r = subprocess.run(["pulumi", *cmd], cwd=infra, env=env, capture_output=True, text=True, timeout=600,
                           check=False)
        assert r.returncode == 0, r.stdout + r.stderr
