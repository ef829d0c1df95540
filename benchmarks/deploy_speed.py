"""How long does ``mlplan deploy --target local`` take to a ready server, and is the user ever left in silence?

For the local demo (``examples/local-demo.yaml``) served by Ray Serve and by Triton, each run as a user runs it
(subprocesses of the ``mlplan`` CLI, this repository's virtual environment):

- ``plan``: ``mlplan plan SPEC --out DIR --no-preview``;
- ``deploy to ready``: ``mlplan deploy DIR --target local --smoke-requests 0`` until it exits 0, which it does once
  the server answers its health route (Ray Serve: the app's ``/health``; Triton: ``/v2/health/ready``);
- ``longest silence``: the longest gap between two progress lines on stderr (from the start of the command), the
  figure issue 16 asks to keep well under 30 s;
- the deploy's own step timings (``local: <step> done in N s``) and the start-up phases it reports;
- ``redeploy``: a second ``mlplan deploy`` of the unchanged folder (a no-op: "already deployed and healthy");
- ``destroy``: ``mlplan destroy DIR`` until every process of the server's session is gone and its ports closed.

    .venv/bin/python benchmarks/deploy_speed.py [--repeat N]
"""

from __future__ import annotations

import argparse
import itertools
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MLPLAN = str(Path(sys.executable).parent / "mlplan")
STEP = re.compile(r"^local: (.+) done in ([\d.]+) s$")
PHASE = re.compile(r"^  (.+) \(([\d.]+) s\)$")


@dataclass
class Run:
    runtime: str
    plan_s: float = 0.0
    deploy_s: float = 0.0
    silence_s: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)
    phases: list[str] = field(default_factory=list)
    redeploy_s: float = 0.0
    destroy_s: float = 0.0


def _run(*args: str, timeout: float = 600) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    done = subprocess.run([MLPLAN, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"mlplan {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return took, done


def _streamed(*args: str, timeout: float = 900) -> tuple[float, float, list[str]]:
    """(seconds to exit, longest gap between stderr lines, the lines) of one command, read as they come."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([MLPLAN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    stamps: list[float] = [t0]
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stamps.append(time.perf_counter())
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"mlplan {' '.join(args)} failed ({proc.returncode}):\n" + "\n".join(lines[-30:]))
    stamps.append(t0 + took)
    gap = max(b - a for a, b in itertools.pairwise(stamps))
    return took, gap, lines


def one(runtime: str, work: Path) -> Run:
    spec_src = ROOT / "examples" / "local-demo.yaml"
    spec = work / f"local-demo-{runtime}.yaml"
    spec.write_text(spec_src.read_text().replace("runtime: ray", f"runtime: {runtime}"))
    shutil.copy(ROOT / "examples" / "local-demo.catalog.yaml", work / "local-demo.catalog.yaml")
    out = work / f"plan-{runtime}"
    run = Run(runtime)
    run.plan_s, _ = _run("plan", str(spec), "--out", str(out), "--no-preview")
    try:
        run.deploy_s, run.silence_s, lines = _streamed("deploy", str(out), "--target", "local", "--smoke-requests", "0")
        for line in lines:
            if m := STEP.match(line):
                run.steps[m.group(1)] = float(m.group(2))
            elif m := PHASE.match(line):
                run.phases.append(f"{m.group(1)} at {m.group(2)} s")
        run.redeploy_s, again = _run("deploy", str(out), "--target", "local", "--smoke-requests", "0")
        if "already deployed and healthy" not in again.stderr:
            raise SystemExit(f"the second deploy was not a no-op:\n{again.stderr}")
    finally:
        run.destroy_s, _ = _run("destroy", str(out))
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per runtime (the median is shown)")
    parser.add_argument("--runtime", action="append", choices=["ray", "triton"], help="default: both")
    args = parser.parse_args()
    runtimes = args.runtime or ["ray", "triton"]
    import os

    print(f"mlplan deploy --target local, {os.cpu_count()} CPUs, median of {args.repeat} run(s) per runtime")
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlplan-deploy-speed-") as tmp:
        for runtime in runtimes:
            runs = []
            for i in range(args.repeat):
                work = Path(tmp) / f"{runtime}-{i}"
                work.mkdir(parents=True)
                runs.append(one(runtime, work))
            med = sorted(runs, key=lambda r: r.deploy_s)[len(runs) // 2]
            rows.append((runtime, statistics.median(r.plan_s for r in runs),
                         statistics.median(r.deploy_s for r in runs), max(r.silence_s for r in runs),
                         statistics.median(r.redeploy_s for r in runs), statistics.median(r.destroy_s for r in runs),
                         med))
    head = f"{'runtime':8} {'plan':>7} {'deploy to ready':>16} {'longest silence':>16} {'redeploy':>9} {'destroy':>8}"
    print(head)
    print("-" * len(head))
    for runtime, plan_s, deploy_s, silence, redeploy, destroy, _ in rows:
        print(f"{runtime:8} {plan_s:6.1f}s {deploy_s:15.1f}s {silence:15.1f}s {redeploy:8.1f}s {destroy:7.1f}s")
    for runtime, *_, med in rows:
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in med.steps.items())
        print(f"\n{runtime}: steps {steps}")
        for phase in med.phases:
            print(f"  {phase}")


if __name__ == "__main__":
    main()
