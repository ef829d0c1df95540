"""The CLI contract users' CI depends on: JSON fields, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "examples"
MLPLAN = [sys.executable, "-c", "from mlplan.cli import main; main()"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MLPLAN, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_recommend_json_has_the_promised_fields_sorted_by_cost() -> None:
    res = run("recommend", str(EX / "llama-70b-tight-ttft.yaml"), "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data) >= {"plans", "rejected"}
    for p in data["plans"]:
        for key in ("placement", "provider", "region", "instance", "accelerator", "accelerator_count", "nodes",
                    "tensor_parallel", "pipeline_parallel", "replicas", "dtype", "monthly_cost_usd", "predicted",
                    "rationale"):
            assert key in p
        assert {"ttft_s", "tpot_s", "throughput_tokens_per_s"} <= set(p["predicted"])
        assert p["predicted"]["ttft_s"] <= 0.3 and p["predicted"]["tpot_s"] <= 0.04
    costs = [p["monthly_cost_usd"] for p in data["plans"]]
    assert costs == sorted(costs)
    assert any(r["constraint"] == "memory" for r in data["rejected"])


def test_recommend_markdown_is_a_pr_comment() -> None:
    res = run("recommend", str(EX / "chat-eu-pii.yaml"), "--markdown")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("### mlplan recommendation")
    assert "**Decision:**" in res.stdout and "| # |" in res.stdout and "residency" in res.stdout


def test_no_feasible_plan_exits_3_with_the_binding_constraints(tmp_path: Path) -> None:
    spec = tmp_path / "impossible.yaml"
    spec.write_text("model: {preset: llama-3-70b}\nworkload: {kind: inference, requests_per_s: 50}\n"
                    "constraints: {ttft_s: 0.5, tpot_s: 0.05, budget_usd_per_month: 500, placements: [cloud]}\n")
    res = run("recommend", str(spec))
    assert res.returncode == 3
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "budget" in line and "costs $" in line and "budget is $500" in line and "To fix:" in line


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["recommend", "no-such-file.yaml"], 2),
        (["estimate", "no-such-model"], 2),
        (["estimate", "llama-3-8b", "--hardware", "h900"], 2),
        (["estimate", "llama-3-8b", "--dtype", "fp64"], 2),
        (["estimate", "--params", "nan"], 2),
        (["estimate", "--params", "-1"], 2),
        (["explain", str(EX / "chat-eu-pii.yaml"), "zz.none"], 2),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], code: int) -> None:
    res = run(*args)
    assert res.returncode == code, (res.stdout, res.stderr)
    err = res.stderr.strip()
    assert err.count("\n") == 0 or err.startswith("Usage"), err
    assert "Traceback" not in res.stderr


def test_estimate_json_contract_inference_and_training() -> None:
    res = run("estimate", "llama-2-7b", "--hardware", "a100-80gb", "--dtype", "fp16", "--batch", "8",
              "--input-tokens", "512", "--output-tokens", "128", "--json")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["model"]["params"] == 6_738_415_616
    assert d["memory"]["kv_cache_bytes_per_token"] == 524_288  # 512 KiB per token in fp16
    for k in ("weights_bytes", "total_bytes_per_gpu"):
        assert isinstance(d["memory"][k], int)
    for k in ("ttft_s", "tpot_s", "throughput_tokens_per_s", "max_batch"):
        assert d["performance"][k] > 0
    res = run("estimate", "llama-2-7b", "--workload", "training", "--hardware", "h100-sxm", "--gpus", "8",
              "--zero", "3", "--train-tokens", "1e9", "--json")
    assert res.returncode == 0, res.stderr
    t = json.loads(res.stdout)["training"]
    assert isinstance(t["model_states_bytes_per_gpu"], int) and isinstance(t["total_bytes_per_gpu"], int)
    # ZeRO-3, mixed-precision Adam: 16 bytes/param over 8 GPUs
    assert t["model_states_bytes_per_gpu"] == pytest.approx(16 * 6_738_415_616 / 8, rel=0.01)
    assert t["time_s"] > 0


def test_estimate_whatif_lists_quantization_pruning_and_distillation() -> None:
    res = run("estimate", "llama-3-8b", "--hardware", "l4", "--whatif", "--student", "llama-3.2-1b", "--json")
    assert res.returncode == 0, res.stderr
    labels = " ".join(r["label"] for r in json.loads(res.stdout)["whatif"])
    assert "int4" in labels and "unstructured 50%" in labels and "structured 50%" in labels
    assert "llama-3.2-1b" in labels
