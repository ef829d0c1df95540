"""The config reader against an independent oracle: Hugging Face ``transformers`` itself.

``tests/oracle_transformers.py`` runs once per session in the oracle venv (``.venv-oracle``, built by
``make .venv-oracle/.installed`` from ``requirements-oracle.txt``; CI builds it). It instantiates every config on the
meta device and reports the parameters the model has, its routed experts, and the layers' caches as its modules
define them. Nothing here is pasted from a model card: both sides are computed. A missing oracle venv fails the
tests (it never skips them).

Configs: the 21 published ones under ``shared/hf-configs``, the extra ones vendored under
``tests/data/hf-configs-extra`` (sources in its SOURCES.md), and a config with nothing but ``model_type`` for
every supported family, which checks that each left-out field takes the ``transformers`` default.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from planner.estimator.inference import kv_bytes_per_sequence, state_bytes_per_sequence
from planner.estimator.shape import shape_of
from planner.models import ModelArch
from planner.models import hf_config as hf
from planner.models.families import PARSERS

ROOT = Path(__file__).resolve().parent.parent
ORACLE_PY = ROOT / ".venv-oracle" / "bin" / "python"
# shared/ sits beside the checkout (CI), two levels up from a worktree, or inside the checkout
SHARED = ROOT.parent / "shared" / "hf-configs"
for candidate in (ROOT / "shared", ROOT.parent / "shared", ROOT.parent.parent / "shared"):
    if (candidate / "hf-configs").is_dir():
        SHARED = candidate / "hf-configs"
        break
EXTRA = Path(__file__).parent / "data" / "hf-configs-extra"

# the model class mlplan counts, where a bare config names none
_ARCHITECTURE = {"llama4": "Llama4ForConditionalGeneration", "vit": "ViTForImageClassification",
                 "whisper": "WhisperForConditionalGeneration"}
# transformers' DeepseekV2Config leaves num_experts_per_tok None (a model that cannot route); DeepSeek-V2 uses 6
_REQUIRED = {"deepseek_v2": {"num_experts_per_tok": 6}}
# sub-configs of a multimodal model, not models on their own; kimi_k2 has no transformers config of its own
_NOT_STANDALONE = {"qwen3_vl_text", "qwen3_vl_moe_text", "kimi_k2"}


def _cases() -> dict[str, dict[str, Any]]:
    cases: dict[str, dict[str, Any]] = {}
    for folder in (SHARED, EXTRA):
        for path in sorted(folder.glob("*/config.json")):
            cases[f"{folder.name}/{path.parent.name}"] = json.loads(path.read_text())
    for mt in sorted(set(PARSERS) - _NOT_STANDALONE):
        data: dict[str, Any] = {"model_type": mt, **_REQUIRED.get(mt, {})}
        if mt in _ARCHITECTURE:
            data["architectures"] = [_ARCHITECTURE[mt]]
        cases[f"defaults/{mt}"] = data
    return cases


CASES = _cases()


@cache
def oracle() -> dict[str, Any]:
    if not ORACLE_PY.exists():
        pytest.fail(f"the transformers oracle venv is missing ({ORACLE_PY}): run `make .venv-oracle/.installed`",
                    pytrace=False)
    out = subprocess.run([str(ORACLE_PY), str(Path(__file__).parent / "oracle_transformers.py")],
                         input=json.dumps(CASES), capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        pytest.fail(f"the oracle failed: {out.stderr[-2000:]}", pytrace=False)
    results: dict[str, Any] = json.loads(out.stdout)
    return results


def _mine(label: str) -> ModelArch:
    return hf.arch_from_config(CASES[label], name="m", source="test", where=label)


def _oracle(label: str) -> dict[str, Any]:
    r = oracle()[label]
    assert "error" not in r, r.get("error")
    return r


def test_shared_fixtures_are_all_there() -> None:
    assert len([k for k in CASES if k.startswith("hf-configs/")]) == 21
    assert len([k for k in CASES if k.startswith("hf-configs-extra/")]) >= 15


@pytest.mark.parametrize("label", sorted(CASES))
def test_params_match_transformers(label: str) -> None:
    """Total params within 1% of transformers (all of these are exact), and so active params (total - the
    routed experts a token skips, (E - k) / E of each experts module)."""
    r = _oracle(label)
    arch = _mine(label)
    assert arch.params == pytest.approx(r["params"], rel=0.01)
    active = r["params"] - sum((e - k) * n // e for e, k, n in r["routed"])
    assert arch.active_params == pytest.approx(active, rel=0.01)
    if r["routed"]:
        assert arch.expert_params == pytest.approx(sum(n for _, _, n in r["routed"]), rel=0.01)


@pytest.mark.parametrize("label", sorted(k for k in CASES if not k.startswith("defaults/")))
def test_published_configs_are_counted_exactly(label: str) -> None:
    assert _mine(label).params == _oracle(label)["params"]


def _oracle_kv(layers: list[list[Any]], tokens: int) -> tuple[float, float]:
    """(KV bytes, state bytes) in bf16 for one sequence of ``tokens`` from transformers' layers."""
    kv = state = 0.0
    for kind, window, elems, st in layers:
        kept = tokens if kind in ("full", "mla") else min(tokens, window) if kind in ("sliding", "chunked") \
            else window if kind == "cross" else 0
        kv += 2 * elems * kept
        state += 2 * st
    return kv, state


@pytest.mark.parametrize("tokens", [8192, 32768])
@pytest.mark.parametrize("label", sorted(CASES))
def test_kv_and_state_per_sequence_match_transformers(label: str, tokens: int) -> None:
    """KV per sequence (each layer as transformers builds it: its K/V widths, its window or chunk, the MLA
    latent) and the fixed recurrent state, within 5%."""
    r = _oracle(label)
    arch = _mine(label)
    s = shape_of(arch)
    tokens = min(tokens, arch.max_context or tokens)  # no sequence outgrows the model's context
    kv, state = _oracle_kv(r["layers"], tokens)
    assert kv_bytes_per_sequence(s, "bf16", tokens) == pytest.approx(kv, rel=0.05, abs=1)
    assert state_bytes_per_sequence(s, "bf16") == pytest.approx(state, rel=0.05, abs=1)
    if r["layers"]:
        decoder_layers = [x for x in r["layers"] if x[0] != "cross"]
        caching = sum(g.count for g in arch.layer_groups if g.kind not in ("none", "cross"))
        assert caching == len(decoder_layers)
