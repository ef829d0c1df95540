"""How long does ``mlplan plan`` take, per example, with and without the offline Pulumi preview?

Runs the real CLI (``mlplan plan SPEC --out DIR [--no-preview] --progress``) in a fresh process per call, as a user
would, and prints per example and mode the median of N runs (default 3) of the wall time and of the CPU time (user +
system of the command and its preview subprocess), with the machine's load average before and after: the goal
(issue 16) is 3 s or less of wall time on the 2-core development machine, charts included; the CPU time says how
much of a slow wall time is other people's load. Also prints the steps ``plan`` reports for the slowest call, so a
regression names its step.

    .venv/bin/python benchmarks/plan_speed.py            # every example, median of 3
    .venv/bin/python benchmarks/plan_speed.py --runs 5 chat-eu-pii local-demo
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if not p.name.endswith(".catalog.yaml"))
GOAL_S = 3.0


def load() -> str:
    """The 1, 5 and 15 minute load averages and the number of CPUs (``os.getloadavg``)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def _children_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


MLPLAN = Path(sys.executable).with_name("mlplan")


def has_progress() -> bool:
    """Whether this mlplan has ``plan --progress`` (an older checkout, timed for comparison, has not)."""
    done = subprocess.run([str(MLPLAN), "plan", "--help"], capture_output=True, text=True, check=False, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "200"})
    return "--progress" in done.stdout


def plan_once(spec: Path, out: Path, *, preview: bool, progress: bool = True) -> tuple[float, float, int, str]:
    """One ``mlplan plan`` call in a new process: (wall seconds, CPU seconds, exit status, stderr)."""
    cmd = [str(MLPLAN), "plan", str(spec), "--out", str(out)] + (["--progress"] if progress else []) \
        + ([] if preview else ["--no-preview"])
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    return time.perf_counter() - t0, _children_cpu() - cpu0, proc.returncode, proc.stderr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="example names (default: every example)")
    ap.add_argument("--runs", type=int, default=3, help="runs per example and mode (median reported)")
    args = ap.parse_args(argv)
    specs = [p for p in EXAMPLES if not args.names or p.stem in args.names]
    if not specs:
        print(f"no example named {args.names}; have {[p.stem for p in EXAMPLES]}", file=sys.stderr)
        return 2
    progress = has_progress()
    print(f"before: {load()}")
    print(f"{'':26} {'--no-preview':>17} {'with preview':>17}")
    print(f"{'example':26} {'wall s':>8} {'cpu s':>8} {'wall s':>8} {'cpu s':>8}  wall of each run (preview)")
    slowest: tuple[float, str, str] = (0.0, "", "")
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="plan-speed-") as tmp:
        for spec in specs:
            cells: list[str] = []
            runs: list[float] = []
            for preview in (False, True):
                walls, cpus = [], []
                for i in range(args.runs):
                    out = Path(tmp) / f"{spec.stem}-{preview}-{i}"
                    wall, cpu, rc, err = plan_once(spec, out, preview=preview, progress=progress)
                    if rc != 0:
                        last = (err.strip().splitlines() or ["no output"])[-1]
                        print(f"{spec.stem}: mlplan plan failed (exit {rc}): {last}", file=sys.stderr)
                        return 1
                    walls.append(wall)
                    cpus.append(cpu)
                    if wall > slowest[0]:
                        slowest = (wall, f"{spec.stem}{'' if preview else ' --no-preview'}", err)
                worst = max(worst, statistics.median(walls))
                cells += [f"{statistics.median(walls):>8.2f}", f"{statistics.median(cpus):>8.2f}"]
                runs = walls
            print(f"{spec.stem:26} {' '.join(cells)}  " + " ".join(f"{t:.2f}" for t in runs), flush=True)
    print(f"after: {load()}")
    print(f"slowest median {worst:.2f} s (goal {GOAL_S:.0f} s or less)")
    print(f"\nsteps of the slowest call ({slowest[1]}, {slowest[0]:.2f} s):")
    print("".join(f"  {line}\n" for line in slowest[2].splitlines()), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
