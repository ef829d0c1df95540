"""Hostile input at scale: 10,000+ generated inputs per entry point, counting what goes wrong.

Entry points: the spec loader (``load_spec``), the HF ``config.json`` reader, the catalog overlay loader, every
``mlplan`` command's arguments through ``mlplan.cli.main`` (in-process, stdout strict UTF-8 as on a terminal),
and ``recommend`` end to end on random *valid* specs (plans or InfeasibleError, nothing else). Inputs come from
the hypothesis strategies in ``tests/fuzz_strategies.py`` (mutated real documents, hostile YAML/JSON files,
adversarial option values). Each entry point runs in its own worker process; each input under a time limit
(SIGALRM, plus a faulthandler watchdog that kills a worker stuck in C code). Prints one table row per entry
point: inputs, ok, clean errors, wrong error class, multi-line messages, tracebacks, hangs, p50/p99/max time;
then the distinct problems found, each with its reproducer. Goal: 0 tracebacks and 0 hangs.

    .venv/bin/python benchmarks/fuzz_inputs.py                  # every entry point, 10,000 inputs each
    .venv/bin/python benchmarks/fuzz_inputs.py --n 500 --entry spec-loader --entry cli:estimate
    .venv/bin/python benchmarks/fuzz_inputs.py --jobs 2 --seed 7 --json out.json

Exit status 1 when any traceback, wrong-class error, multi-line message or hang was seen.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BASE_ENTRIES = ("spec-loader", "hf-config", "catalog-overlay", "recommend-valid")
KINDS = ("ok", "clean", "wrong-class", "multi-line", "traceback", "hang")


def all_entries() -> list[str]:
    from tests.fuzz_strategies import cli_commands

    return [*BASE_ENTRIES, *(f"cli:{c}" for c in cli_commands())]


# ------------------------------------------------------------------------------------------------- worker


def _one(entry: str, data: Any, ws: Any, limit_s: float) -> Any:
    from planner.catalog import Catalog
    from planner.errors import CatalogError, InfeasibleError, ModelConfigError, SpecError
    from planner.models.hf_config import read_hf_config
    from planner.specs import load_spec
    from tests import fuzz_strategies as fs

    if entry == "spec-loader":
        path = ws.write(data.draw(fs.spec_files()))
        return fs.classify(lambda: load_spec(path), SpecError, limit_s), path
    if entry == "hf-config":
        path = ws.write(data.draw(fs.hf_config_files()), ".json")
        return fs.classify(lambda: read_hf_config(path), ModelConfigError, limit_s), path
    if entry == "catalog-overlay":
        path = ws.write(data.draw(fs.overlay_files()))
        return fs.classify(lambda: Catalog.load(overlay=path), CatalogError, limit_s), path
    if entry == "recommend-valid":
        from planner.optimizer import recommend
        from planner.specs import spec_from_data

        spec_data = data.draw(fs.valid_spec_data())

        def plan() -> None:
            fs.check_recommendation(recommend(spec_from_data(spec_data), Catalog.load()))

        return fs.classify(plan, InfeasibleError, limit_s), json.dumps(spec_data, default=str)
    command = entry.removeprefix("cli:")
    argv = data.draw(fs.cli_argv(command, ws))
    return fs.run_cli(argv, limit_s), repr(argv)


def worker(entry: str, n: int, seed: int, limit_s: float) -> dict[str, Any]:
    import faulthandler

    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    from tests import fuzz_strategies as fs

    for key, value in fs.quiet_environment().items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    counts: Counter[str] = Counter()
    times: list[float] = []
    problems: dict[str, str] = {}
    tmp = tempfile.TemporaryDirectory(prefix=f"fuzz-{entry.replace(':', '-')}-")
    ws = fs.Workspace(Path(tmp.name))
    os.chdir(tmp.name)  # commands that write relative paths write here

    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @hseed(seed)
    @given(st.data())
    def run(data: Any) -> None:
        faulthandler.dump_traceback_later(limit_s * 10 + 30, exit=True)
        try:
            outcome, reproducer = _one(entry, data, ws, limit_s)
        finally:
            faulthandler.cancel_dump_traceback_later()
        counts[outcome.kind] += 1
        times.append(outcome.seconds)
        if len(times) % 2000 == 0:
            print(f"  {entry}: {len(times)} inputs", file=sys.stderr, flush=True)
        if outcome.bad:
            key = f"{outcome.kind}: {_generic(outcome.detail.split(' -> ')[-1])[:110]}"
            if key not in problems:
                problems[key] = f"{outcome.detail[:400]} | input: {reproducer[:300]}"
        ws.cleanup()

    run()
    tmp.cleanup()
    return {"entry": entry, "counts": dict(counts), "times": times, "problems": problems}


def _generic(text: str) -> str:
    """A problem's message with paths and numbers blanked, so one bug is listed once however often it shows."""
    text = re.sub(r"/tmp/fuzz-[^/\s'\"]+/[^\s'\":]*", "<file>", text)
    text = re.sub(r"x{20,}", "xxx...", text)
    return re.sub(r"\d+", "N", text)


# ------------------------------------------------------------------------------------------------- parent


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="inputs per entry point")
    ap.add_argument("--entry", action="append", help="entry point (repeatable); default: all")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes at once")
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--limit-s", type=float, default=2.0, help="per-input time limit (CLI: 3x this)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        limit = args.limit_s * (3 if args.worker.startswith("cli:") else 1)
        res = worker(args.worker, args.n, args.seed, limit)
        args.result.write_text(json.dumps(res))  # a file, not a pipe: 10,000 timings overflow a pipe buffer
        return 0

    entries = args.entry or all_entries()
    pending = list(entries)
    running: dict[str, tuple[subprocess.Popen[bytes], float, Path]] = {}
    results: dict[str, dict[str, Any]] = {}
    t_start = time.perf_counter()
    scratch = tempfile.TemporaryDirectory(prefix="fuzz-results-")
    while pending or running:
        while pending and len(running) < args.jobs:
            e = pending.pop(0)
            result = Path(scratch.name) / f"{e.replace(':', '-')}.json"
            log = (Path(scratch.name) / f"{e.replace(':', '-')}.log").open("wb")
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", e, "--n", str(args.n),
                   "--seed", str(args.seed), "--limit-s", str(args.limit_s), "--result", str(result)]
            running[e] = (subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT),
                          time.perf_counter(), result)
        time.sleep(0.5)
        for e, (proc, t0, result) in list(running.items()):
            if proc.poll() is None:
                continue
            if not result.exists():  # the worker died (a hang in C code caught by the watchdog, or a crash)
                log_text = result.with_suffix(".log").read_text(errors="replace")
                results[e] = {"entry": e, "counts": {"hang": 1}, "times": [],
                              "problems": {"worker died": log_text[-600:]}}
            else:
                results[e] = json.loads(result.read_text())
            results[e]["wall_s"] = time.perf_counter() - t0
            del running[e]
            c = results[e]["counts"]
            print(f"  done {e}: {sum(c.values())} inputs in {results[e]['wall_s']:.0f} s: {c}, p99 "
                  f"{pct(results[e]['times'], 0.99) * 1e3:.1f} ms", file=sys.stderr, flush=True)

    header = ("entry point", "inputs", "ok", "clean errors", "wrong class", "multi-line", "tracebacks", "hangs",
              "p50 ms", "p99 ms", "max ms")
    rows = []
    for e in entries:
        r = results[e]
        c, t = r["counts"], r["times"]
        rows.append((e, sum(c.values()), *(c.get(k, 0) for k in KINDS),
                     f"{pct(t, 0.5) * 1e3:.1f}", f"{pct(t, 0.99) * 1e3:.1f}", f"{max(t, default=0) * 1e3:.0f}"))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths)))
    for row in rows:
        print(fmt.format(*row))
    total = [sum(r[i] for r in rows) for i in range(1, 8)]
    print(fmt.format("all", *total, "", "", ""))
    print(f"\n{sum(total[:1])} inputs in {time.perf_counter() - t_start:.0f} s wall, seed {args.seed}, "
          f"{args.jobs} workers, per-input limit {args.limit_s} s (CLI {args.limit_s * 3} s)")
    bad = False
    for e in entries:
        for key, detail in results[e]["problems"].items():
            bad = True
            print(f"\n[{e}] {key}\n    {detail}")
    if args.json:
        args.json.write_text(json.dumps({"seed": args.seed, "n": args.n, "rows": [dict(zip(header, r, strict=True))
                                                                                  for r in rows],
                                         "problems": {e: results[e]["problems"] for e in entries},
                                         "p50_ms_all": statistics.median([t * 1e3 for e in entries
                                                                          for t in results[e]["times"]] or [0])},
                                        indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
