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


def test_the_worker_warms_what_it_is_told_last_until_its_folder_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    """``warm KIND ...`` lines replace the queue of SDK modules to load (the spec's clouds first, then the plan's
    own); the worker loads one chain at a time and returns the first other line, the folder to preview."""
    import stacks.preview as pv

    steps = [st for m in pv.STACK_MODULES["k8s"]
             for st in ([(m,), *pv.warm_steps(m)] if m.startswith("stacks.") else [tuple(m.split("."))])]
    last = steps[-1]
    warmed: list[tuple[str, ...]] = []
    r, w = os.pipe()

    def record(step: tuple[str, ...]) -> None:
        warmed.append(step)
        if step == last:  # the parent ends its input once everything is loaded: the worker then stops waiting
            os.close(w)

    monkeypatch.setattr(pv, "warm", record)
    os.write(w, b"warm aws gcp\nwarm k8s\n")  # the plan turned out to need only a cluster
    assert pv.wait_for_folder(r) == ""  # end of input: no preview wanted
    os.close(r)
    assert warmed == list(dict.fromkeys(steps))  # each once, in order
    assert not [s for s in warmed if s[0] in ("stacks.aws", "stacks.gcp", "pulumi_aws", "pulumi_gcp")], warmed
    assert ("pulumi_kubernetes", "core", "v1", "Service") in warmed  # the chains stacks/k8s.py uses, from its source
    warmed.clear()
    r, w = os.pipe()
    os.write(w, b"warm gcp\n/some/plan/infra\n")  # the folder is ready before anything was warmed: preview now
    os.close(w)
    assert pv.wait_for_folder(r) == "/some/plan/infra" and warmed == []
    os.close(r)


@pytest.mark.slow
@pytest.mark.parametrize("example", ["gke-a3-eu", "aks-confidential-us", "chat-eu-pii", "vision-jetson-fleet"])
def test_a_warmed_worker_imports_nothing_more_to_preview(tmp_path: Path, example: str) -> None:
    """What the worker loads for a plan's stacks (:func:`stacks.preview.plan_stacks`) is every module its preview
    imports: a fresh Python warms them, then previews the written folder, and no module is loaded during the
    preview (an SDK's lazily loaded submodule counts once loaded), so a stack module that starts using another
    SDK submodule fails here rather than slowing `mlplan plan` down unseen."""
    from planner.catalog import Catalog
    from planner.optimizer import recommend
    from planner.specs import load_spec
    from stacks.preview import plan_stacks

    spec = load_spec(ROOT / "examples" / f"{example}.yaml")
    cat = Catalog.load(spec.catalog_overlay)
    rec = recommend(spec, cat)
    out = tmp_path / "p"
    writer.write_plan_folder(spec, rec, out, catalog=cat, preview=False)
    kinds = plan_stacks(rec.plans[0])
    assert kinds
    script = f"""
import json, sys, types
import stacks.program
from pathlib import Path
from stacks import preview
for kind in {kinds!r}:
    for m in preview.STACK_MODULES[kind]:
        for st in ([(m,), *preview.warm_steps(m)] if m.startswith("stacks.") else [tuple(m.split("."))]):
            preview.warm(st)
def loaded():
    return {{m for m, v in list(sys.modules.items()) if type(v) is types.ModuleType}}
before = loaded()
records = preview.preview_in_process(Path({str(out / "infra")!r}))
print(json.dumps({{"records": len(records), "new": sorted(loaded() - before)}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["records"] > 0 and got["new"] == [], (kinds, got["new"])
