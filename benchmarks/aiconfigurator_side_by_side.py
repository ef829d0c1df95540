"""mlplan next to NVIDIA AIConfigurator on the same model, GPU, sequence lengths and SLA.

AIConfigurator (``pip install aiconfigurator``; it models TensorRT-LLM / vLLM / SGLang from measured kernel tables,
offline) runs in its own virtual environment, never as a dependency of mlplan: pass ``--aic-venv`` (default
``.venv-aic`` in the repository); without it the AIConfigurator columns are skipped with a message. For each
case it prints:

- AIConfigurator's pick (aggregated serving, ``aiconfigurator cli default --serving-mode agg``, top 1): GPUs per
  replica (TP), batch, predicted TTFT / TPOT and tokens/s/GPU;
- mlplan today (the optimizer's per-replica option, ``planner.optimizer.options.OptionEvaluator``: the largest
  batch whose decode step meets TPOT, no prefill stalls, no queueing), best TP by tokens/s/GPU;
- mlplan's planner (issue 12: ``planner.optimizer.slo.SloSizer``, the sizing ``mlplan recommend`` does): for each
  TP, the engine it would run (``max_num_seqs`` = the largest batch whose TPOT with prefill stalls meets the SLA)
  and the highest Poisson request rate one replica takes with the simulated p50 TTFT and TPOT within the SLA
  (its load headroom), tokens/s/GPU = rate x output tokens / GPUs; best TP;
- a published figure where one exists: the highest-throughput measured point that meets the SLA (sources as in
  benchmarks/slo_published.py: [NIM-DLI] genai-perf NIM dataset, [NIM-PERF] NVIDIA NIM benchmarking guide).

    .venv/bin/python benchmarks/aiconfigurator_side_by_side.py [--aic-venv PATH] [--cases 1,2,3,4]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from planner.catalog import Catalog  # noqa: E402
from planner.models import resolve  # noqa: E402
from planner.optimizer.options import OptionEvaluator, ReplicaOption  # noqa: E402
from planner.specs import Constraints, InferenceWorkload, ModelSpec  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    preset: str
    aic_model: str
    hw: str
    aic_system: str
    dtype: str
    isl: int
    osl: int
    ttft_ms: float
    tpot_ms: float
    published: str | None = None
    """the best published point meeting the SLA: tokens/s/GPU and where it is from"""


CASES = [
    Case("8B chat", "llama-3.1-8b", "meta-llama/Meta-Llama-3.1-8B", "h100-sxm", "h100_sxm", "bf16", 512, 256,
         300, 30),
    Case("8B short", "llama-3.1-8b", "meta-llama/Meta-Llama-3.1-8B", "h100-sxm", "h100_sxm", "bf16", 200, 200,
         250, 15, "6,550 [NIM-DLI Llama-3-8B fp16 TP1, concurrency 100: TTFT 225 ms, ITL 14.2 ms, 32.75 req/s]"),
    Case("70B long prompt", "llama-3.1-70b", "nvidia/Llama-3.1-70B-Instruct-FP8", "h100-sxm", "h100_sxm", "fp8",
         5000, 500, 1000, 40,
         "312 [NIM-PERF Llama-3.3-70B fp8 TP2, concurrency 25: TTFT 689 ms, ITL 38.8 ms, 623 tok/s]"),
    Case("70B RAG", "llama-3.1-70b", "nvidia/Llama-3.1-70B-Instruct-FP8", "h100-sxm", "h100_sxm", "fp8", 2000, 200,
         3000, 35, "289 [NIM-DLI Llama-3-70B fp8 TP4, concurrency 50: TTFT 2,496 ms, ITL 30.7 ms, 5.77 req/s]"),
]
TPS = (1, 2, 4, 8)


def run_aic(venv: Path, c: Case, backend: str) -> dict[str, Any] | str:
    exe = venv / "bin" / "aiconfigurator"
    if not exe.exists():
        return f"skipped: no AIConfigurator at {exe} (python -m venv {venv} && {venv}/bin/pip install aiconfigurator)"
    with tempfile.TemporaryDirectory(prefix="aic-") as tmp:
        cmd = [str(exe), "cli", "default", "--model-path", c.aic_model, "--total-gpus", "8", "--system",
               c.aic_system, "--isl", str(c.isl), "--osl", str(c.osl), "--ttft", str(c.ttft_ms), "--tpot",
               str(c.tpot_ms), "--backend", backend, "--serving-mode", "agg", "--save-dir", tmp,
               "--log-level", "ERROR", "--no-color"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        wall = time.perf_counter() - t0
        found = sorted(Path(tmp).rglob("agg/best_config_topn.csv"))
        if proc.returncode != 0 or not found:
            return f"failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-300:]}"
        with found[0].open() as fh:
            rows = list(csv.DictReader(fh))
    if not rows:
        return "no configuration meets the SLA"
    r = rows[0]
    return {"tp": int(r["tp"]), "pp": int(r["pp"]), "bs": int(float(r["bs"])), "ttft_ms": float(r["ttft"]),
            "tpot_ms": float(r["tpot"]), "tok_s_gpu": float(r["tokens/s/gpu"]), "gemm": r["gemm"], "wall_s": wall}


def mlplan_today(c: Case, cat: Catalog) -> dict[str, Any] | str:
    arch = resolve(ModelSpec(preset=c.preset))
    ev = OptionEvaluator(arch, InferenceWorkload(input_tokens=c.isl, output_tokens=c.osl),
                         Constraints(ttft_s=c.ttft_ms / 1e3, tpot_s=c.tpot_ms / 1e3, precisions=(c.dtype,)))  # type: ignore[arg-type]
    best: ReplicaOption | None = None
    for tp in TPS:
        opt = ev.gpu(cat.accelerator(c.hw), c.dtype, tp, 1, 0.0, "vllm")
        if isinstance(opt, ReplicaOption) and opt.tokens_per_s is not None and (
                best is None or opt.tokens_per_s / opt.gpus > (best.tokens_per_s or 0) / best.gpus):
            best = opt
    if best is None or best.tokens_per_s is None:
        return "no option meets the SLA"
    return {"tp": best.tp, "bs": best.batch, "ttft_ms": (best.ttft_s or 0) * 1e3, "tpot_ms": (best.tpot_s or 0) * 1e3,
            "tok_s_gpu": best.tokens_per_s / best.gpus}


def mlplan_planner(c: Case, cat: Catalog) -> dict[str, Any] | str:
    """The planner's own sizing (planner.optimizer.slo) for each TP at the SLA's p50: one replica's load headroom
    with the engine settings the plan would carry."""
    from planner.optimizer.slo import SloSizer
    from planner.specs import Spec

    spec = Spec(name="aic", model=ModelSpec(preset=c.preset),
                workload=InferenceWorkload(requests_per_s=0.01, input_tokens=c.isl, output_tokens=c.osl),
                constraints=Constraints(ttft_s=c.ttft_ms / 1e3, tpot_s=c.tpot_ms / 1e3, precisions=(c.dtype,),  # type: ignore[arg-type]
                                        slo_percentile=50))
    ev = OptionEvaluator(resolve(spec.model), spec.workload, spec.constraints)  # type: ignore[arg-type]
    sizer = SloSizer(spec, ev)
    hw = cat.accelerator(c.hw)
    best: dict[str, Any] | None = None
    t0 = time.perf_counter()
    for tp in TPS:
        opt = ev.gpu(hw, c.dtype, tp, 1, 0.0, "vllm")
        if not isinstance(opt, ReplicaOption):
            continue
        sized = sizer.size(hw, opt, runtime="vllm", rtt_s=0.0, rps=0.01, utilization=1.0)
        if not isinstance(sized, tuple):
            continue
        key = sized[0].sizing_key
        rps = sizer.max_rps_within_slo(key)
        if not rps:
            continue
        tuned = sizer.option(key)
        tok = rps * c.osl / tp
        if best is None or tok > best["tok_s_gpu"]:
            best = {"tp": tp, "rps": rps, "tok_s_gpu": tok, "bs": tuned.batch}
    if best is None:
        return "no TP meets the SLA"
    best["wall_s"] = time.perf_counter() - t0
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--aic-venv", type=Path, default=ROOT / ".venv-aic")
    ap.add_argument("--backend", default="trtllm", choices=("trtllm", "vllm", "sglang"))
    ap.add_argument("--cases", default=",".join(str(i + 1) for i in range(len(CASES))))
    args = ap.parse_args()
    cat = Catalog.load()
    picked = [CASES[int(i) - 1] for i in args.cases.split(",")]
    for c in picked:
        print(f"\n== {c.name}: {c.preset} on {c.hw}, {c.dtype}, {c.isl}/{c.osl} tokens, SLA TTFT <= {c.ttft_ms:g} ms, "
              f"TPOT <= {c.tpot_ms:g} ms ==")
        aic = run_aic(args.aic_venv, c, args.backend)
        today = mlplan_today(c, cat)
        sim = mlplan_planner(c, cat)
        print(f"{'':28} {'GPUs/replica':>12} {'batch':>6} {'TTFT ms':>8} {'TPOT ms':>8} {'tok/s/GPU':>10}")
        if isinstance(aic, str):
            print(f"{'AIConfigurator (' + args.backend + ')':28} {aic}")
        else:
            print(f"{'AIConfigurator (' + args.backend + ')':28} {aic['tp'] * aic['pp']:>12} {aic['bs']:>6} "
                  f"{aic['ttft_ms']:>8.0f} {aic['tpot_ms']:>8.1f} {aic['tok_s_gpu']:>10,.0f}   "
                  f"(gemm {aic['gemm']}, {aic['wall_s']:.0f} s)")
        if isinstance(today, str):
            print(f"{'mlplan today':28} {today}")
        else:
            print(f"{'mlplan today':28} {today['tp']:>12} {today['bs']:>6} {today['ttft_ms']:>8.0f} "
                  f"{today['tpot_ms']:>8.1f} {today['tok_s_gpu']:>10,.0f}   (idle TTFT, decode-only TPOT)")
        if isinstance(sim, str):
            print(f"{'mlplan planner (p50)':28} {sim}")
        else:
            print(f"{'mlplan planner (p50)':28} {sim['tp']:>12} {sim['bs']:>6} {'':>8} {'':>8} "
                  f"{sim['tok_s_gpu']:>10,.0f}   ({sim['rps']:.2f} req/s per replica, max_num_seqs {sim['bs']}; "
                  f"{sim['wall_s']:.1f} s)")
        print(f"{'published':28} {c.published or '-'}")


if __name__ == "__main__":
    main()
