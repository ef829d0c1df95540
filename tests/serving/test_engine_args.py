"""vLLM flags from the plan's engine settings, checked against the option table of ``vllm serve`` dumped from vLLM
0.33.0 itself (``serving/data``), and against vLLM's own parser where a Python with vLLM is at hand
(``MLPLAN_VLLM_PYTHON``: a side venv with torch's CPU build and ``vllm --no-deps``)."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from planner.plan import Plan
from serving import engine_args
from stacks import layout, manifests
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = os.environ.get("MLPLAN_VLLM_PYTHON", "")


@cache
def vllm_plans() -> dict[str, Plan]:
    """Factory plans and the examples' top plans whose parts run vLLM."""
    from planner.catalog import Catalog
    from planner.optimizer import recommend
    from planner.specs import load_spec
    from tests.security.audit import example_specs

    out = {}
    for name, make in factories.ALL_PLANS.items():
        plan = make()
        if any(p.runtime == "vllm" and p.engine for p in plan.parts):
            out[f"factory-{name}"] = plan
    for path in example_specs():
        spec = load_spec(path)
        if spec.model.preset is None and spec.model.hf_config is None:
            continue
        for i, plan in enumerate(recommend(spec, Catalog.load(spec.catalog_overlay), top=3).plans):
            if any(p.runtime == "vllm" and p.engine for p in plan.parts):
                out[f"example-{path.stem}-{i}"] = plan
    return out


def server_args(plan: Plan) -> list[list[str]]:
    """The ``vllm serve`` flags of each vLLM part (as the Deployment and the EC2 user data run them)."""
    out = []
    for info in layout.parts(plan):
        if info.part.runtime == "vllm":
            c = manifests.server_container(plan, info)
            assert c["command"] == ["vllm", "serve"]
            out.append(c["args"])
    return out


@pytest.mark.parametrize("name", sorted(vllm_plans()))
def test_flags_carry_the_plans_engine_settings(name: str) -> None:
    plan = vllm_plans()[name]
    for args, part in zip(server_args(plan), [p for p in plan.parts if p.runtime == "vllm"], strict=True):
        e = part.engine
        assert e is not None

        def value(flag: str, args: list[str] = args) -> str:
            return args[args.index(flag) + 1]

        assert value("--tensor-parallel-size") == str(part.tensor_parallel)
        assert value("--pipeline-parallel-size") == str(part.pipeline_parallel)
        assert value("--max-model-len") == str(e.max_model_len)
        assert value("--max-num-seqs") == str(e.max_num_seqs)
        assert value("--max-num-batched-tokens") == str(e.max_num_batched_tokens)
        assert float(value("--gpu-memory-utilization")) == e.gpu_memory_utilization
        assert value("--kv-cache-dtype") == e.kv_cache_dtype
        assert ("--quantization" in args) == (e.quantization is not None)
        assert ("--enable-expert-parallel" in args) == e.enable_expert_parallel
        assert engine_args.check_cli_args(args) == []


def test_quantization_and_expert_parallel_flags() -> None:
    plan = factories.cloud_llm_single_gpu()  # fp8: quantized by the engine at load time, fp8 KV cache
    part = plan.parts[0]
    assert part.engine is not None
    moe = part.model_copy(update={"engine": part.engine.model_copy(update={"enable_expert_parallel": True})})
    args = engine_args.cli_args(engine_args.engine_kwargs(plan, moe, "/models/m"))
    assert args[args.index("--quantization") + 1] == "fp8" and args[args.index("--kv-cache-dtype") + 1] == "fp8"
    assert "--enable-expert-parallel" in args
    assert engine_args.check_cli_args(args) == []


@pytest.mark.parametrize(("args", "problem"), [
    (["--max-num-seq", "8"], "unknown flag '--max-num-seq'"),
    (["--tensor-parallel-size", "two"], "is not a int"),
    (["--kv-cache-dtype", "fp9"], "'fp9' is not one of"),
    (["--quantization", "int8"], "'int8' is not one of"),
    (["--dtype", "bf16"], "'bf16' is not one of"),
    (["--enable-expert-parallel", "true"], "unknown flag 'true'"),
    (["--enable-expert-parallel=true"], "takes no value"),
    (["--gpu-memory-utilization"], "needs a value"),
])
def test_the_flag_check_catches_wrong_flags(args: list[str], problem: str) -> None:
    found = engine_args.check_cli_args(args)
    assert any(problem in p for p in found), found


def test_the_table_is_vllms_own() -> None:
    table = engine_args.flag_table()
    assert table["version"] == engine_args.VLLM_VERSION == manifests.IMAGES["vllm"].rsplit(":v", 1)[1]
    assert "make_arg_parser" in table["source"]
    assert len(table["options"]) > 300  # every option of vllm serve, not a hand-picked list


def test_ray_serve_llm_engine_kwargs_are_engine_args_fields() -> None:
    """Ray Serve LLM passes engine_kwargs to vLLM's AsyncEngineArgs: every key is a dest of vllm serve's parser."""
    from serving.ray_config import build_serve_config

    dests = {o["dest"] for o in engine_args.flag_table()["options"].values()}
    plan = factories.cloud_llm_tensor_parallel()
    cfg = build_serve_config(plan, model_path="/models/llama-3-70b")
    engine = cfg["applications"][0]["args"]["llm_configs"][0]["engine_kwargs"]
    assert set(engine) <= dests, set(engine) - dests
    assert engine["max_num_seqs"] == plan.parts[0].engine.max_num_seqs  # type: ignore[union-attr]


def _vllm_parse(arg_lists: list[list[str]]) -> list[str]:
    """vLLM's own parser on each flag list, in one process: an error per list ("" when accepted)."""
    import json

    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([VLLM_PYTHON, "-m", "serving.engine_args", "parse"], input=json.dumps(arg_lists),
                          capture_output=True, text=True, timeout=600, env=env, check=True)
    out: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.skipif(not VLLM_PYTHON, reason="MLPLAN_VLLM_PYTHON is unset: no Python with vLLM to run its own parser "
                                            "(the vendored option table of vLLM 0.33.0 checks the flags instead)")
def test_vllms_own_parser_accepts_the_flags_and_refuses_a_typo() -> None:
    all_args: list[Any] = [a for plan in vllm_plans().values() for a in server_args(plan)]
    bad = [["--model", "/models/x", "--max-num-sequences", "8"], ["--model", "/models/x", "--tensor-parallel-size",
                                                                  "two"]]
    results = _vllm_parse([*all_args, *bad])
    assert results[:len(all_args)] == [""] * len(all_args), results
    assert all(results[len(all_args):]), results  # vLLM refuses both
