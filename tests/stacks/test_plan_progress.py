"""``mlplan plan``'s progress lines and its early preview process: the writer reports its steps through ``say``
(it prints nothing itself), the CLI prints them with the elapsed time, and the preview worker started before the
recommendation previews the folder, or ends quietly when nobody needs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from planner.errors import ArtifactError
from stacks import writer
from stacks.preview import PreviewWorker
from tests import factories as f
from tests.stacks.test_writer import fixed_catalog, recommendation

ROOT = Path(__file__).resolve().parents[2]
MLPLAN = str(Path(sys.executable).parent / "mlplan")


def _write(plan_name: str, out: Path, *, preview: Any) -> tuple[list[str], list[Path]]:
    plan = getattr(f, plan_name)()
    steps: list[str] = []
    seen: list[Path] = []

    def fake_preview(infra: Path) -> list[dict[str, Any]]:
        seen.append(infra)
        assert (infra / "Pulumi.yaml").is_file()  # the stack is written before it is previewed
        return [{"type": "aws:s3/bucketV2:BucketV2", "name": "fake-bucket", "region": "us-east-1", "custom": True,
                 "inputs": {}}]

    writer.write_plan_folder(f.spec_for(plan, plan_name.replace("_", "-")), recommendation(plan), out,
                             catalog=fixed_catalog(), preview=fake_preview if preview == "fake" else preview,
                             say=steps.append)
    return steps, seen


def test_the_writer_reports_its_steps_in_order(tmp_path: Path) -> None:
    steps, seen = _write("cloud_llm_tensor_parallel", tmp_path / "eks", preview="fake")
    assert tuple(steps) == writer.STEPS == ("serving artifacts", "manifests", "preview", "charts", "PLAN.md")
    # the previewer it was handed ran on the folder being written, and PLAN.md lists what it recorded
    assert len(seen) == 1 and seen[0].name == "infra" and seen[0].parent.name.startswith(writer.TMP_PREFIX)
    assert "fake-bucket" in (tmp_path / "eks" / "PLAN.md").read_text()


@pytest.mark.parametrize(("plan_name", "preview"), [("cloud_llm_tensor_parallel", False), ("microcontroller", "fake")])
def test_no_preview_step_without_a_preview_or_a_stack(tmp_path: Path, plan_name: str, preview: Any) -> None:
    steps, seen = _write(plan_name, tmp_path / "out", preview=preview)
    assert steps == ["serving artifacts", "manifests", "charts", "PLAN.md"] and seen == []


def _plan_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLPLAN_DEBUG"}
    return subprocess.run([MLPLAN, "plan", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
                          check=False)


def test_plan_prints_one_line_per_step_with_the_elapsed_time(tmp_path: Path) -> None:
    done = _plan_cli("examples/chat-eu-pii.yaml", "--out", str(tmp_path / "p"), "--no-preview", "--progress")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    pattern = re.compile(r"^\[ *(\d+\.\d) s\] (.+)$")
    matches = [pattern.match(line) for line in lines]
    assert all(matches), lines
    names = [m.group(2).split(":")[0] for m in matches if m]
    assert names == ["recommend", "serving artifacts", "manifests", "charts", "PLAN.md", "done"]
    elapsed = [float(m.group(1)) for m in matches if m]
    assert elapsed == sorted(elapsed)
    assert done.stdout.startswith(f"wrote {tmp_path / 'p'}: ")  # the result stays on stdout, alone


def test_plan_is_quiet_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    """Scripts and CI capture stderr: no progress lines unless asked, so a failure stays one line."""
    done = _plan_cli("examples/kws-stm32.yaml", "--out", str(tmp_path / "p"))
    assert done.returncode == 0 and done.stderr == ""
    bad = _plan_cli("examples/kws-stm32.yaml", "--out", str(ROOT))  # refused: a repository root
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_an_unused_preview_worker_ends_at_once() -> None:
    t0 = time.perf_counter()
    worker = PreviewWorker()
    worker.close()
    worker.close()  # twice is harmless
    assert worker.proc.returncode is not None and time.perf_counter() - t0 < 10
    with pytest.raises(ArtifactError, match="already used or closed"):
        worker(ROOT / "nowhere" / "infra")


def test_a_preview_worker_that_died_while_importing_says_why(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "python"  # a "Python" without the Pulumi SDK: it fails before it reads its stdin
    fake.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'pulumi'\" >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    worker = PreviewWorker()
    worker.proc.wait(timeout=30)
    with pytest.raises(ArtifactError, match="failed: ModuleNotFoundError: No module named 'pulumi'"):
        worker(tmp_path / "infra")


def test_a_preview_worker_reports_a_failing_program_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "infra").mkdir()  # no Pulumi.yaml, no plan: the program cannot run
    with PreviewWorker() as worker, pytest.raises(ArtifactError, match="offline preview of the generated") as e:
        worker(tmp_path / "infra")
    assert "\n" not in str(e.value) and e.value.fix
