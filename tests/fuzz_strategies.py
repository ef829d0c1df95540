"""Shared hypothesis strategies and the outcome classifier for fuzzing mlplan's input entry points.

Used by ``tests/test_fuzz_inputs.py`` (a small profile in the suite) and ``benchmarks/fuzz_inputs.py`` (10,000+
inputs per entry point). Three kinds of input:

- structured documents (spec, HF ``config.json``, catalog overlay) built from real, valid ones (the example specs,
  the HF configs in ``tests/data``, rows of the embedded catalog) and then mutated: a field set to an adversarial
  value (negative, zero, NaN, inf, 1e308, 10**100, wrong type, RTL / zero-width / surrogate text), a field
  deleted, an unknown key added, a section replaced by the wrong type;
- hostile files: alias bombs, deep nesting, ``!!python/object`` tags, duplicate keys, multi-document streams, BOMs,
  CRLF, UTF-16, binary, empty files, files just over the size cap, 5,000-digit integers, truncated or byte-flipped
  copies of valid files;
- command lines for every ``mlplan`` command, with option values drawn from the same adversarial pools.

:func:`classify` runs one input under a per-input time limit (``SIGALRM``) and sorts the result into ``ok``,
``clean`` (the documented error class, one line), ``wrong-class``, ``multi-line``, ``traceback`` or ``hang``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from planner.specs import MAX_SPEC_BYTES, MAX_YAML_BYTES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if not p.name.endswith(".catalog.yaml"))
EXAMPLE_OVERLAYS = sorted((ROOT / "examples").glob("*.catalog.yaml"))
HF_CONFIGS = sorted((ROOT / "tests" / "data" / "hf_configs").glob("*/config.json"))
MAX_HF_BYTES = 2_000_000

# ------------------------------------------------------------------------------------------ adversarial atoms

NASTY_NUMBERS: tuple[Any, ...] = (
    0, -0.0, -1, 1, 2, 7, -7.5, 0.5, 1e-300, -1e-300, 5e-324, 1e-12, 1e308, -1e308, 1.7976931348623157e308,
    math.inf, -math.inf, math.nan, 10**100, -(10**100), 2**31, 2**53 + 1, 2**63, 2**64 + 1, 10**400, True, False,
)
NASTY_STRINGS: tuple[str, ...] = (
    "", " ", "\t", "\u202eevil", "llama\u200b-3-8b", "\ufeffbom", "a\x00b", "\ud800", "\udcff", "\U0001f600",
    "e\u0301", "\ufb01", "\u216b", "\u0663", "NaN", "nan", "inf", "-inf", "1e999", "-1", "0", "0x10", "1_000",
    "+1", ".5", "1e9", "null", "~", "yes", "no", "on", "true", "2024-02-30", "../../../../etc/passwd", "/dev/zero",
    "C:\\Windows\\system32", "s3://bucket/../../x", "${HOME}", "$(rm -rf /)", "`id`", "%s%s%n", "{{7*7}}",
    "<script>alert(1)</script>", "'\"", "x" * 300, "a\nb", "\r\n", "\x85", "\u2028", "-", "--help", "--json",
    "llama-3-8b", "h100-sxm", "g5.xlarge", "dgx-h100", "aws", "gcp", "eu", "us", "us-east-1", "eu-west",
    "builtin://mlp-demo",
)
NUMBER_STRINGS: tuple[str, ...] = (
    "0", "-0", "-1", "1", "2", "8", "0.5", "-0.5", "1e-300", "5e-324", "1e308", "-1e308", "1e309", "1e999", "nan",
    "NaN", "-nan", "inf", "-inf", "Infinity", str(10**100), str(-(10**100)), str(2**63), "1" * 5000, "0x10",
    "1_000", "13e9", "7e9", "1e16", "1e17", "", " ", "abc", "\u0663", "1,5", "1.5.5", "+3", "1000000", "1000001",
    "1025", "65536", "99", "100",
)


@cache
def nasty_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(NASTY_NUMBERS),
        st.sampled_from(NASTY_STRINGS),
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=12),
    )


@cache
def nasty_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        nasty_scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(NASTY_STRINGS[:20])), inner, max_size=4),
        ),
        max_leaves=8,
    )


# ------------------------------------------------------------------------------------------- hostile documents


def _alias_bomb(levels: int, width: int) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    lines.append(f"model: {{preset: gpt2, name: *l{levels - 1}}}")
    return "\n".join(lines) + "\n"


def _deep(kind: str, depth: int) -> str:
    if kind == "flow-seq":
        return "model: " + "[" * depth + "]" * depth + "\n"
    if kind == "flow-map":
        return "model: " + "{a: " * depth + "1" + "}" * depth + "\n"
    if kind == "block-seq":
        return "".join("  " * i + "-\n" for i in range(depth)) + "  " * depth + "- 1\n"
    return "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "v: 1\n"


TAG_DOCS: tuple[str, ...] = (
    'model: !!python/object/apply:os.system ["echo pwned"]\n',
    "model: !!python/name:os.system\n",
    "model: !!python/object:planner.specs.Spec {}\n",
    "model: !!python/tuple [1, 2]\n",
    "model: {preset: !!binary aGVsbG8=}\n",
    "model: {preset: !!binary '@@@'}\n",
    "model: !!set {a, b}\n",
    "model: !!omap [{preset: gpt2}]\n",
    "model: !!pairs [[preset, gpt2]]\n",
    "model: {params: !!float 1e400}\n",
    "model: {params: !!int 0x1F}\n",
    "model: {params: !!int 1_0}\n",
    "model: {params: !!int '12abc'}\n",
    "model: {preset: !!timestamp 2001-02-30}\n",
    "model: {preset: !!timestamp 2001-12-14t21:59:43.10-05:00}\n",
    "model: {preset: 2001-12-14t21:59:43.10-05:00}\n",
    "model: {params: 190:20:30}\n",
    "model: {preset: !custom gpt2}\n",
    "%TAG ! tag:evil.example,2000:\n---\nmodel: !x {preset: gpt2}\n",
    "%YAML 1.1\n---\nmodel: {preset: gpt2}\n",
    "%YAML 9.9\n---\nmodel: {preset: gpt2}\n",
    "a: &a {preset: gpt2}\nmodel: {<<: *a}\n",
    "model: {<<: 5}\n",
    "model: {<<: [*undefined]}\n",
    "? [a, b]\n: 1\nmodel: {preset: gpt2}\n",
    "? {a: 1}\n: 1\n",
    "model: {preset: gpt2}\n---\nmodel: {preset: gpt2}\n",
    "model: {preset: gpt2}\n...\n",
    'model: {preset: "\\ud800"}\n',
    'model: {preset: "\\udfff\\ud800"}\n',
    'model: {preset: "\\U0010ffff"}\n',
    'model: {preset: "\\x00"}\n',
    'model: {preset: "\\q"}\n',
    'model: {preset: "\\U00110000"}\n',
    "model: {preset: gpt2}\nmodel: {preset: gpt2}\n",
    "model: {preset: gpt2, preset: llama-3-8b}\n",
    "model: {preset: gpt2}\nconstraints: {privacy: public, privacy: restricted}\n",
    "1: 2\n",
    "null: 1\nmodel: {preset: gpt2}\n",
    "model: {preset: gpt2}\n\x07bell: 1\n",
    "model: {preset: gpt2}\n\t- tab\n",
    "model:\n\tpreset: gpt2\n",
    "model: &x {preset: gpt2}\nworkload: *x\n",
    "&a [*a]\n",
    "model: *a\n",
    "model: {preset: gpt2}\nname: \u202emodnar\n",
    "model: {preset: llama\u200b-3-8b}\n",
    "model: {preset: 'gpt2\u0000'}\n",
)

EMPTY_DOCS: tuple[str, ...] = (
    "", "\n", "   ", "# only a comment\n", "---\n", "...\n", "--- |\n", "null\n", "~\n", "[]\n", "{}\n", "0\n",
    "'model'\n", "model:\n", "model: null\n", "model: []\n", "model: ''\n", "\ufeff", "\ufeff\n",
)


@st.composite
def hostile_yaml(draw: st.DrawFn, cap: int = MAX_SPEC_BYTES) -> bytes:
    """A hostile YAML file (bytes), independent of the document's meaning; ``cap`` is the loader's size cap."""
    kind = draw(st.sampled_from(["alias", "deep", "tag", "empty", "huge", "digits", "binary", "many", "longstr"]))
    if kind == "alias":
        return _alias_bomb(draw(st.integers(2, 9)), draw(st.integers(2, 10))).encode()
    if kind == "deep":
        kind_ = draw(st.sampled_from(["flow-seq", "flow-map", "block-seq", "block-map"]))
        # block nesting costs depth**2 bytes of indentation: 2,000 levels (4 MB) is past libyaml's 1,000 already
        depth = draw(st.sampled_from([50, 200, 400, 999, 1001, 2000] + ([20_000] if kind_.startswith("flow") else [])))
        return _deep(kind_, depth).encode()
    if kind == "tag":
        return draw(st.sampled_from(TAG_DOCS)).encode("utf-8", "surrogatepass")
    if kind == "empty":
        return draw(st.sampled_from(EMPTY_DOCS)).encode()
    if kind == "huge":
        head = b"model: {preset: gpt2}\n#"
        extra = draw(st.sampled_from([-1, 0, 1, 2, 4096]))
        return head + b"x" * (cap - len(head) + extra)
    if kind == "digits":
        n = draw(st.sampled_from([400, 4300, 4301, 5000, 100_000]))
        lit = draw(st.sampled_from(["1" * n, "1" + "0" * n + ".0", "0." + "0" * n + "1", "1e" + "9" * min(n, 50)]))
        return f"model: {{params: {lit}}}\n".encode()
    if kind == "binary":
        return draw(st.binary(min_size=1, max_size=256))
    if kind == "many":
        n = draw(st.sampled_from([1000, 20000]))
        return ("model: {preset: gpt2}\n" + "".join(f"k{i}: {i}\n" for i in range(n))).encode()
    size = draw(st.sampled_from([10_000, cap - 30, cap + 1]))
    return b"model: {preset: '" + b"a" * size + b"'}\n"


@st.composite
def byte_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    """A truncated, byte-flipped, spliced or re-encoded copy of a valid file."""
    op = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "dup-line", "utf16", "bom", "crlf", "cr"]))
    if not data:
        return data
    i = draw(st.integers(0, len(data) - 1))
    if op == "truncate":
        return data[:i]
    if op == "flip":
        return data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1:]
    if op == "insert":
        return data[:i] + draw(st.binary(min_size=1, max_size=8)) + data[i:]
    if op == "delete":
        return data[:i] + data[i + draw(st.integers(1, 16)):]
    if op == "dup-line":
        lines = data.splitlines(keepends=True)
        j = draw(st.integers(0, len(lines) - 1))
        return b"".join(lines[:j + 1] + lines[j:])
    if op == "utf16":
        return data.decode("utf-8", "replace").encode("utf-16")
    if op == "bom":
        return b"\xef\xbb\xbf" + data
    if op == "crlf":
        return data.replace(b"\n", b"\r\n")
    return data.replace(b"\n", b"\r")


def dump_yaml(data: Any, draw: st.DrawFn) -> bytes:
    """Serialise ``data`` as YAML in a random style (block / flow, ASCII escapes or raw unicode, CRLF, BOM)."""
    try:
        text = yaml.safe_dump(data, allow_unicode=draw(st.booleans()), sort_keys=False,
                              default_flow_style=draw(st.sampled_from([False, None, True])), width=10_000)
    except (yaml.YAMLError, RecursionError, ValueError):
        text = json.dumps(data, default=repr)
    raw = text.encode("utf-8", "surrogatepass")
    style = draw(st.sampled_from(["plain"] * 6 + ["crlf", "bom", "bom+crlf", "utf16"]))
    if "crlf" in style:
        raw = raw.replace(b"\n", b"\r\n")
    if "bom" in style:
        raw = b"\xef\xbb\xbf" + raw
    if style == "utf16":
        raw = text.encode("utf-16", "surrogatepass")
    return raw


# ------------------------------------------------------------------------------------------------- spec files


@cache
def example_specs() -> tuple[dict[str, Any], ...]:
    """The example specs as data, overlay paths made absolute, plus a bare-size, a custom and an HF spec."""
    out: list[dict[str, Any]] = []
    for p in EXAMPLES:
        data = yaml.safe_load(p.read_text())
        if data.get("catalog_overlay"):
            data["catalog_overlay"] = str(p.parent / data["catalog_overlay"])
        out.append(data)
    out.append({"model": {"params": 13e9}, "workload": {"kind": "inference", "requests_per_s": 2}})
    out.append({"model": {"params": 25e6, "kind": "vision", "flops_per_inference": 8e9,
                          "input_shape": [3, 224, 224]},
                "workload": {"kind": "inference", "requests_per_s": 50, "batch_size": 4},
                "constraints": {"latency_s": 0.1}})
    if HF_CONFIGS:
        out.append({"model": {"hf_config": str(HF_CONFIGS[0])}, "constraints": {"ttft_s": 2.0}})
    return tuple(out)


@cache
def spec_fields() -> tuple[tuple[str, ...], ...]:
    """Every (section, field) path of a spec, read from the pydantic models (new fields are fuzzed too)."""
    from planner.specs import Assumptions, Constraints, InferenceWorkload, ModelSpec, Spec, TrainingWorkload

    paths: list[tuple[str, ...]] = [(name,) for name in Spec.model_fields]
    for section, model in (("model", ModelSpec), ("workload", InferenceWorkload), ("workload", TrainingWorkload),
                           ("constraints", Constraints), ("assumptions", Assumptions)):
        paths.extend((section, name) for name in model.model_fields)
    return tuple(sorted(set(paths)))


def _mutate_mapping(draw: st.DrawFn, data: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> None:
    """Apply one random mutation to a nested mapping, in place."""
    op = draw(st.sampled_from(["set", "set", "set", "delete", "unknown", "retype", "nested-unknown"]))
    path = draw(st.sampled_from(paths))
    parent: Any = data
    for key in path[:-1]:
        if not isinstance(parent.get(key), dict):
            parent[key] = {}
        parent = parent[key]
    leaf = path[-1]
    if op == "set":
        parent[leaf] = draw(nasty_values())
    elif op == "delete":
        parent.pop(leaf, None)
    elif op == "unknown":
        data[draw(st.sampled_from(["modle", "workloads", "x" * 100, "\u202emodel", "model\u200b", "", "MODEL"]))] = (
            draw(nasty_values()))
    elif op == "retype":
        data[path[0]] = draw(st.one_of(st.sampled_from([None, [], "", 0, [1, 2], "model"]), nasty_scalars()))
    else:
        parent[draw(st.text(min_size=1, max_size=10))] = draw(nasty_scalars())


@st.composite
def mutated_spec_data(draw: st.DrawFn) -> Any:
    data = copy.deepcopy(draw(st.sampled_from(example_specs())))
    for _ in range(draw(st.integers(0, 4))):
        _mutate_mapping(draw, data, spec_fields())
    if draw(st.integers(0, 30)) == 0:
        return draw(nasty_values())
    return data


@st.composite
def spec_files(draw: st.DrawFn) -> bytes:
    """The bytes of a spec file: a mutated real spec (mostly), a hostile YAML file, or a damaged example."""
    kind = draw(st.sampled_from(["mutated"] * 6 + ["hostile"] * 3 + ["damaged"] * 2 + ["valid"]))
    if kind == "mutated":
        return dump_yaml(draw(mutated_spec_data()), draw)
    if kind == "hostile":
        return draw(hostile_yaml())
    example = draw(st.sampled_from(EXAMPLES)).read_bytes()
    if kind == "valid":
        return example
    return draw(byte_mutation(example))


# ------------------------------------------------------------------------------------------- valid random specs

GEOGRAPHIES = ("us", "eu", "uk", "apac", "ca")


@cache
def _catalog_ids() -> dict[str, tuple[str, ...]]:
    from planner.catalog import Catalog

    cat = Catalog.load()
    return {
        "regions": tuple(sorted({r.region for r in cat.regions.values()})),
        "zones": tuple(sorted(cat.rtt.zones)),
        "accelerators": tuple(sorted(cat.accelerators)),
        "edge": tuple(sorted(cat.edge_devices)),
        "instances": tuple(sorted({i.instance for i in cat.instances})),
        "onprem": tuple(sorted(s.sku for s in cat.onprem_servers)),
    }


def _opt(draw: st.DrawFn, strategy: st.SearchStrategy[Any], p_none: int = 2) -> Any:
    """``strategy`` or None (absent), None with probability 1/p_none."""
    return None if draw(st.integers(0, p_none - 1)) == 0 else draw(strategy)


def _pos(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def valid_spec_data(draw: st.DrawFn) -> dict[str, Any]:
    """A spec that validates: a preset, bare size or HF config model; an inference or training workload; random
    constraints from the real catalog's regions and zones. Planning it gives plans or an InfeasibleError."""
    from planner.models.presets import preset_names
    from planner.specs import PRIVACY_ORDER

    ids = _catalog_ids()
    source = draw(st.sampled_from(["preset"] * 4 + ["params", "hf"]))
    if source == "preset":
        model: dict[str, Any] = {"preset": draw(st.sampled_from(preset_names()))}
    elif source == "params":
        model = {"params": draw(_pos(1e7, 2e12))}  # below 1e7 a bare size is refused (ModelConfigError)
    else:
        model = {"hf_config": str(draw(st.sampled_from(HF_CONFIGS)))}
    if draw(st.booleans()):
        workload: dict[str, Any] = {
            "kind": "inference",
            "requests_per_s": draw(_pos(1e-3, 5e3)),
            "input_tokens": draw(st.integers(1, 32_768)),
            "output_tokens": draw(st.integers(1, 8192)),
            "batch_size": _opt(draw, st.integers(1, 256), 4),
            "peak_to_average": draw(_pos(1.0, 10.0)),
            "local_traffic_fraction": draw(_pos(0.0, 1.0)),
            "sensitive_traffic_fraction": draw(_pos(0.0, 1.0)),
            "fleet_size": _opt(draw, st.integers(1, 5000), 3),
        }
    else:
        workload = {
            "kind": "training",
            "tokens": draw(_pos(1e6, 1e13)),
            "epochs": draw(_pos(0.01, 10.0)),
            "sequence_length": draw(st.integers(16, 32_768)),
            "micro_batch_size": draw(st.integers(1, 64)),
            "optimizer": draw(st.sampled_from(["adamw", "adam", "sgd", "sgd-momentum"])),
            "mixed_precision": draw(st.sampled_from(["bf16", "fp16", "fp32"])),
            "activation_checkpointing": draw(st.booleans()),
            "zero_stage": _opt(draw, st.sampled_from([0, 1, 2, 3])),
            "target_wall_time_h": _opt(draw, _pos(0.1, 2000.0)),
            "method": draw(st.sampled_from(["full", "lora"])),
        }
    constraints: dict[str, Any] = {
        "ttft_s": _opt(draw, _pos(1e-3, 60.0)),
        "tpot_s": _opt(draw, _pos(1e-4, 2.0)),
        "latency_s": _opt(draw, _pos(1e-4, 60.0)),
        "min_throughput_rps": _opt(draw, _pos(1e-3, 1e4), 3),
        "privacy": draw(st.sampled_from(PRIVACY_ORDER)),
        "allowed_regions": _opt(draw, st.lists(st.sampled_from(GEOGRAPHIES + ids["regions"]), min_size=1,
                                               max_size=4, unique=True)),
        "dedicated_tenancy": draw(st.booleans()),
        "budget_usd_per_month": _opt(draw, _pos(1.0, 1e7)),
        "placements": draw(st.lists(st.sampled_from(["cloud", "on-prem", "edge", "hybrid"]), min_size=1,
                                    max_size=4, unique=True)),
        "precisions": draw(st.lists(st.sampled_from(["fp32", "bf16", "fp16", "fp8", "int8", "int4"]), min_size=1,
                                    max_size=6, unique=True)),
        "providers": _opt(draw, st.lists(st.sampled_from(["aws", "gcp", "azure"]), min_size=1, max_size=3,
                                         unique=True), 3),
        "allow_spot": draw(st.booleans()),
        "users_location": _opt(draw, st.sampled_from(ids["zones"])),
        "memory_headroom": draw(_pos(0.0, 0.8)),
        "runtime": _opt(draw, st.sampled_from(["ray", "triton", "vllm", "tensorrt-llm"]), 3),
        "max_training_days": draw(_pos(0.01, 365.0)),
        "max_accuracy_loss": draw(st.sampled_from(["none", "small", "moderate"])),
    }
    spec: dict[str, Any] = {
        "name": draw(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)),
        "model": model,
        "workload": {k: v for k, v in workload.items() if v is not None},
        "constraints": {k: v for k, v in constraints.items() if v is not None},
    }
    if draw(st.integers(0, 3)) == 0:
        spec["assumptions"] = {
            "gpu_average_utilization": draw(_pos(0.05, 1.0)),
            "planning_utilization": draw(_pos(0.05, 1.0)),
            "power_usd_per_kwh": draw(_pos(0.0, 1.0)),
            "pue": draw(_pos(1.0, 3.0)),
            "training_mfu": draw(_pos(0.01, 1.0)),
        }
    return spec


# ---------------------------------------------------------------------------------------------- HF config.json


@cache
def hf_config_data() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(p.read_text()) for p in HF_CONFIGS)


HF_KEYS: tuple[str, ...] = (
    "model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "vocab_size", "max_position_embeddings", "tie_word_embeddings", "num_local_experts",
    "num_experts_per_tok", "num_experts", "moe_intermediate_size", "shared_expert_intermediate_size",
    "sliding_window", "n_embd", "n_layer", "n_head", "n_inner", "n_positions", "rotary_dim", "ffn_dim",
    "word_embed_proj_dim", "type_vocab_size", "attention_bias", "_name_or_path", "decoder_sparse_step",
    "mlp_only_layers", "use_sliding_window", "architectures", "torch_dtype",
)


def _json_bytes(data: Any, draw: st.DrawFn) -> bytes:
    try:
        text = json.dumps(data, indent=draw(st.sampled_from([None, 2])), ensure_ascii=draw(st.booleans()))
    except (ValueError, RecursionError):
        text = "{}"
    raw = text.encode("utf-8", "surrogatepass")
    return b"\xef\xbb\xbf" + raw if draw(st.integers(0, 9)) == 0 else raw


HOSTILE_JSON: tuple[bytes, ...] = (
    b"", b" ", b"null", b"[]", b"{}", b"0", b'"config"', b"{", b'{"model_type": "llama",}', b"{'model_type': 1}",
    b'{"model_type": "llama"} {"x": 1}', b'{"model_type": NaN}', b'{"hidden_size": Infinity}',
    b'{"hidden_size": -Infinity}', b'{"hidden_size": 1e400}', b'{"hidden_size": -0}', b'{"a": 1, "a": 2}',
    b'{"model_type": "\\ud800"}', b'{"model_type": "llama\\u0000"}', b"// comment\n{}", b"\xff\xfe{\x00}\x00",
    b'{"model_type": "llama", "hidden_size": ' + b"1" * 5000 + b"}",
    b'{"model_type": "gpt2", "n_embd": 1' + b"0" * 400 + b".5}",
)


@st.composite
def hf_config_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["mutated"] * 6 + ["hostile", "deep", "huge", "damaged", "valid"]))
    if kind == "hostile":
        return draw(st.sampled_from(HOSTILE_JSON))
    if kind == "deep":
        depth = draw(st.sampled_from([100, 1000, 100_000]))
        return b'{"model_type": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "huge":
        head = b'{"model_type": "llama", "pad": "'
        return head + b"x" * (MAX_HF_BYTES - len(head) - 2 + draw(st.sampled_from([-1, 0, 1, 100]))) + b'"}'
    base = copy.deepcopy(draw(st.sampled_from(hf_config_data())))
    if kind == "valid":
        return _json_bytes(base, draw)
    if kind == "damaged":
        return draw(byte_mutation(_json_bytes(base, draw)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "set", "set", "delete", "type", "unknown", "root"]))
        key = draw(st.sampled_from(HF_KEYS))
        if op == "set":
            base[key] = draw(nasty_values())
        elif op == "delete":
            base.pop(key, None)
        elif op == "type":
            base["model_type"] = draw(st.sampled_from(["llama", "mistral", "mixtral", "qwen2", "qwen2_moe",
                                                       "gemma", "gemma2", "phi3", "gpt2", "gptj", "gpt_neox",
                                                       "opt", "bert", "t5", "", "LLAMA", "llama\u200b"]))
        elif op == "unknown":
            base[draw(st.text(max_size=10))] = draw(nasty_values())
        else:
            return _json_bytes(draw(nasty_values()), draw)
    return _json_bytes(base, draw)


# -------------------------------------------------------------------------------------------- catalog overlays

OVERLAY_SECTIONS = ("accelerators", "edge_devices", "instances", "onprem_servers", "regions")


@cache
def catalog_rows() -> dict[str, tuple[dict[str, Any], ...]]:
    """A few real rows per section of the embedded catalog, as plain data."""
    from planner.catalog import Catalog

    cat = Catalog.load()
    rows = {
        "accelerators": [a.model_dump(mode="json") for a in sorted(cat.accelerators.values(), key=lambda a: a.id)],
        "edge_devices": [d.model_dump(mode="json") for d in sorted(cat.edge_devices.values(), key=lambda d: d.id)],
        "instances": [i.model_dump(mode="json") for i in cat.instances[::97]],
        "onprem_servers": [s.model_dump(mode="json") for s in cat.onprem_servers],
        "regions": [r.model_dump(mode="json") for r in cat.regions.values()],
    }
    for p in EXAMPLE_OVERLAYS:
        for section, items in (yaml.safe_load(p.read_text()) or {}).items():
            if isinstance(items, list):
                rows[section].extend(items)
    return {k: tuple(v[:12]) for k, v in rows.items()}


@st.composite
def overlay_data(draw: st.DrawFn) -> Any:
    rows = catalog_rows()
    data: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from(OVERLAY_SECTIONS), min_size=1, max_size=3, unique=True)):
        data[section] = [copy.deepcopy(r) for r in draw(st.lists(st.sampled_from(rows[section]), min_size=1,
                                                                 max_size=3))]
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["set", "set", "set", "delete", "unknown-key", "unknown-section", "retype",
                                   "row-type", "version"]))
        section = draw(st.sampled_from(sorted(data)))
        items = data[section]
        if op == "unknown-section":
            data[draw(st.sampled_from(["instance", "gpus", "", "\u202eregions", "rtt"]))] = draw(nasty_values())
        elif op == "retype":
            data[section] = draw(nasty_values())
        elif op == "version":
            data["version"] = draw(nasty_values())
        elif isinstance(items, list) and items:
            n = draw(st.integers(0, len(items) - 1))
            if op == "row-type":
                items[n] = draw(nasty_values())
            elif isinstance(items[n], dict):
                keys = sorted(items[n]) or ["id"]
                key = draw(st.sampled_from(keys))
                if op == "set":
                    items[n][key] = draw(nasty_values())
                elif op == "delete":
                    items[n].pop(key, None)
                else:
                    items[n][draw(st.text(max_size=10))] = draw(nasty_scalars())
    return data


@st.composite
def overlay_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["mutated"] * 6 + ["hostile"] * 2 + ["damaged", "valid"]))
    if kind == "hostile":
        return draw(hostile_yaml(MAX_YAML_BYTES))
    if kind == "mutated":
        return dump_yaml(draw(overlay_data()), draw)
    example = dump_yaml({k: list(v[:2]) for k, v in catalog_rows().items()}, draw)
    return example if kind == "valid" else draw(byte_mutation(example))


# ------------------------------------------------------------------------------------------------ command lines


class Workspace:
    """A scratch folder for one fuzz run: fixed hostile paths plus a fresh file per drawn document."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.n = 0
        (root / "empty-dir").mkdir(exist_ok=True)
        (root / "garbage-plan").mkdir(exist_ok=True)
        (root / "garbage-plan" / "plan.yaml").write_bytes(b"\x00\x01 not a plan")
        (root / "wrong-plan").mkdir(exist_ok=True)
        (root / "wrong-plan" / "plan.yaml").write_text("mlplan_version: 1\nplan: {rank: 0}\n")
        (root / "spec-as-plan").mkdir(exist_ok=True)
        (root / "spec-as-plan" / "plan.yaml").write_text(EXAMPLES[0].read_text())
        (root / "half-plan").mkdir(exist_ok=True)
        (root / "half-plan" / "PLAN.md").write_text("# plan\n")
        (root / "half-plan" / "infra").mkdir(exist_ok=True)
        (root / "binary.yaml").write_bytes(bytes(range(256)))
        (root / "over-cap.yaml").write_bytes(b"#" * (MAX_SPEC_BYTES + 1))
        fifo = root / "fifo.yaml"
        if not fifo.exists():
            os.mkfifo(fifo)
        self.fixed_paths: tuple[str, ...] = (
            str(root / "missing.yaml"), str(root / "empty-dir"), str(root / "binary.yaml"), str(root / "over-cap.yaml"),
            str(fifo), "/dev/null", "/dev/zero", "", ".", "-", "~/spec.yaml", "x" * 5000, "a\x00b.yaml",
            str(root / "\u202eevil.yaml"), str(EXAMPLES[0]), str(root / "garbage-plan" / "plan.yaml"),
        )
        self.non_plan_folders: tuple[str, ...] = (
            str(root / "empty-dir"), str(root / "garbage-plan"), str(root / "wrong-plan"),
            str(root / "spec-as-plan"), str(root / "half-plan"), str(root / "missing-dir"), str(root / "binary.yaml"),
            "/dev/null", "", "x" * 5000, "a\x00b", str(fifo),
        )

        self.made: list[Path] = []

    def write(self, data: bytes, suffix: str = ".yaml") -> str:
        self.n += 1
        p = self.root / f"in-{self.n}{suffix}"
        p.write_bytes(data)
        self.made.append(p)
        return str(p)

    def out_dir(self) -> str:
        self.n += 1
        p = self.root / f"out-{self.n}"
        self.made.append(p)
        return str(p)

    def cleanup(self) -> None:
        """Remove what this input wrote (a 10,000-input run would otherwise leave gigabytes)."""
        import shutil

        for p in self.made:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        for p in self.root.glob(".out-*"):  # an atomic writer's leftovers, if any
            shutil.rmtree(p, ignore_errors=True)
        self.made.clear()


def _num_arg(draw: st.DrawFn) -> str:
    return draw(st.one_of(st.sampled_from(NUMBER_STRINGS), st.integers().map(str), st.floats().map(repr)))


def _str_arg(draw: st.DrawFn, real: tuple[str, ...] = ()) -> str:
    return draw(st.one_of(st.sampled_from(NASTY_STRINGS + real), st.text(max_size=16)))


def _options(draw: st.DrawFn, table: dict[str, Callable[[], str] | None]) -> list[str]:
    """Pick a random subset of options; None marks a flag. One in ten times add an unknown option."""
    args: list[str] = []
    for name in draw(st.lists(st.sampled_from(sorted(table)), max_size=5, unique=True)):
        make = table[name]
        args.append(name)
        if make is not None:
            args.append(make())
    if draw(st.integers(0, 9)) == 0:
        args.append(draw(st.sampled_from(["--nope", "-x", "--json=1", "--", "--help"])))
    return args


@st.composite
def cli_argv(draw: st.DrawFn, command: str, ws: Workspace) -> list[str]:
    """A random command line for one ``mlplan`` command (no program name)."""
    from planner.models.presets import preset_names

    ids = _catalog_ids()
    hw = ids["accelerators"] + ids["edge"]
    num = lambda: _num_arg(draw)  # noqa: E731
    spec = lambda: (ws.write(draw(spec_files()), draw(st.sampled_from([".yaml", ".yml", ".json", ""])))  # noqa: E731
                    if draw(st.integers(0, 3)) else draw(st.sampled_from(ws.fixed_paths + tuple(map(str, EXAMPLES)))))
    overlay = lambda: (ws.write(draw(overlay_files())) if draw(st.integers(0, 2))  # noqa: E731
                       else draw(st.sampled_from(ws.fixed_paths + tuple(map(str, EXAMPLE_OVERLAYS)))))
    folder = lambda: draw(st.sampled_from(ws.non_plan_folders))  # noqa: E731
    if command == "estimate":
        model_kind = draw(st.sampled_from(["preset", "preset", "nasty", "hf", "spec", "none"]))
        head: list[str] = []
        if model_kind == "preset":
            head = [draw(st.sampled_from(preset_names()))]
        elif model_kind == "nasty":
            head = [_str_arg(draw)]
        elif model_kind == "hf":
            head = [ws.write(draw(hf_config_files()), ".json")]
        elif model_kind == "spec":
            head = [spec()]
        opts = _options(draw, {
            "--params": num, "--hardware": lambda: _str_arg(draw, hw), "--dtype": lambda: _str_arg(
                draw, ("fp32", "fp16", "bf16", "fp8", "int8", "int4", "tf32")),
            "--tp": num, "--pp": num, "--batch": num, "--input-tokens": num, "--output-tokens": num,
            "--workload": lambda: draw(st.sampled_from(["inference", "training", "sleeping", ""])),
            "--gpus": num, "--zero": num, "--train-tokens": num, "--whatif": None, "--json": None,
        })
        return [command, *head, *opts]
    if command in ("recommend", "plan", "explain"):
        args = [command, spec()]
        if command == "explain":
            args.append(_str_arg(draw, ids["instances"][:40] + hw + ids["onprem"]))
        table: dict[str, Callable[[], str] | None] = {"--catalog": overlay}
        if command == "recommend":
            table.update({"--json": None, "--markdown": None, "--top": num})
        if command == "plan":
            table.update({"--plan-index": num})
            # the offline Pulumi preview takes seconds per plan (tests/ covers it): fuzz the arguments without it
            args += ["--out", ws.out_dir(), "--no-preview"]
        if command == "explain":
            table["--json"] = None
        return args + _options(draw, table)
    if command == "catalog":
        return [command, *_options(draw, {
            "--kind": lambda: _str_arg(draw, ("accelerators", "edge", "instances", "onprem", "regions")),
            "--provider": lambda: _str_arg(draw, ("aws", "gcp", "azure")),
            "--region": lambda: _str_arg(draw, ids["regions"] + GEOGRAPHIES),
            "--accelerator": lambda: _str_arg(draw, hw), "--max-price": num, "--catalog": overlay,
            "--models": None, "--json": None,
        })]
    if command == "diff":
        return [command, folder(), folder(), *_options(draw, {"--markdown": None})]
    if command in ("status", "destroy"):
        # never /dev/zero or a FIFO as a kubeconfig: the Kubernetes client's own reader is not ours to fuzz
        kubeconfigs = tuple(p for p in ws.fixed_paths if p != "/dev/zero" and not p.endswith("fifo.yaml"))
        table: dict[str, Callable[[], str] | None] = {
            "--kubeconfig": lambda: draw(st.sampled_from(kubeconfigs)), "--context": lambda: _str_arg(draw)}
        if command == "destroy":
            table["--target"] = lambda: _str_arg(draw, ("local", "kubernetes", "pulumi"))
        return [command, folder(), *_options(draw, table)]
    if command == "deploy":
        return [command, folder(), *_options(draw, {
            "--target": lambda: _str_arg(draw, ("local", "kubernetes", "pulumi")), "--dry-run": None,
            "--namespace": lambda: _str_arg(draw), "--timeout": num, "--port": num, "--concurrency": num,
            "--smoke-requests": num, "--no-wait": None,
        })]
    if command == "preflight":
        return [command, folder(), *_options(draw, {"--catalog": overlay, "--bucket": lambda: _str_arg(draw)})]
    raise ValueError(f"no argv strategy for command {command!r}")


def cli_commands() -> tuple[str, ...]:
    """The commands this build registers that the fuzzer knows how to drive (``catalog refresh`` reads a cloud
    account and is left to the deploy fault tests)."""
    import typer.main

    from mlplan.cli import app

    group: Any = typer.main.get_command(app)
    known = {"estimate", "recommend", "plan", "explain", "catalog", "diff", "status", "destroy", "deploy",
             "preflight"}
    return tuple(c for c in group.list_commands(None) if c in known)


# ---------------------------------------------------------------------------------------------- classification


class Hang(BaseException):
    """Raised by the per-input alarm; a BaseException so that ``except Exception`` in the code under test
    cannot swallow it."""


WALL_FACTOR = 10.0
"""A call that waits (on a socket, a lock) spends no CPU: the wall-clock backstop is this many times the limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise Hang once this process has spent ``seconds`` of CPU time (ITIMER_PROF), or WALL_FACTOR times that of
    wall-clock time (a call blocked on I/O). The CPU clock is the limit because other work on a loaded 2-core
    machine stretches wall-clock time: a wall-clock limit turned a slow but finite recommend into a "hang" in CI."""
    def _alarm(signum: int, frame: Any) -> None:
        raise Hang(f"over {seconds} s")

    old_prof = signal.signal(signal.SIGPROF, _alarm)
    old_alrm = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    signal.setitimer(signal.ITIMER_REAL, seconds * WALL_FACTOR)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGPROF, old_prof)
        signal.signal(signal.SIGALRM, old_alrm)


@dataclass(frozen=True)
class Outcome:
    kind: str
    """ok | clean | wrong-class | multi-line | traceback | hang"""
    detail: str
    seconds: float

    @property
    def bad(self) -> bool:
        return self.kind not in ("ok", "clean")


def _where(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    last = frames[-1] if frames else None
    loc = f" at {Path(last.filename).name}:{last.lineno}" if last else ""
    return f"{type(err).__name__}: {' '.join(str(err).split())[:200]}{loc}"


def _message_problem(msg: str) -> str | None:
    if "\n" in msg or "\r" in msg:
        return "multi-line"
    if "Traceback" in msg or len(msg.strip()) < 10:
        return "multi-line"
    return None


def classify(fn: Callable[[], Any], expected: type[BaseException] | tuple[type[BaseException], ...],
             limit_s: float = 2.0) -> Outcome:
    """Run ``fn`` under a time limit; ``expected`` is the documented error class of this entry point."""
    from planner.errors import MlplanError

    t0 = time.perf_counter()
    try:
        with time_limit(limit_s):
            fn()
    except Hang:
        return Outcome("hang", f"over {limit_s} s", time.perf_counter() - t0)
    except expected as e:
        dt = time.perf_counter() - t0
        msg = str(e)
        problem = _message_problem(msg)
        return Outcome(problem or "clean", msg[:300], dt)
    except MlplanError as e:
        return Outcome("wrong-class", _where(e), time.perf_counter() - t0)
    except Exception as e:
        return Outcome("traceback", _where(e), time.perf_counter() - t0)
    return Outcome("ok", "", time.perf_counter() - t0)


ALLOWED_EXIT = {0, 2, 3, 4, 5}
SLOW_COMMANDS = {"plan": 4.0, "explain": 4.0}
"""Time-limit multipliers: ``plan`` writes and validates a whole folder (several seconds on a loaded 2-core CI
machine), ``explain`` plans twice; the limit catches hangs, the benchmark's p99 column reports slowness."""


def run_cli(argv: list[str], limit_s: float = 5.0) -> Outcome:
    """Run ``mlplan.cli.main(argv)`` in-process as a user's shell would: stdout strict UTF-8 (printing a lone
    surrogate fails, as it does on a real terminal), stderr with backslash escapes (Python's default)."""
    from mlplan.cli import main

    limit_s *= SLOW_COMMANDS.get(argv[0] if argv else "", 1.0)
    out_b, err_b = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_b, encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(err_b, encoding="utf-8", errors="backslashreplace", write_through=True)
    t0 = time.perf_counter()
    code: Any = 0
    try:
        with time_limit(limit_s), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(argv)
            except SystemExit as e:
                code = e.code
    except Hang:
        return Outcome("hang", f"over {limit_s} s: mlplan {' '.join(map(repr, argv))[:200]}",
                       time.perf_counter() - t0)
    except BaseException as e:  # main() let something through: a bug in main itself
        return Outcome("traceback", _where(e), time.perf_counter() - t0)
    dt = time.perf_counter() - t0
    code = 0 if code is None else code
    stderr = err_b.getvalue().decode("utf-8", "replace")
    stdout = out_b.getvalue().decode("utf-8", "replace")
    shown = f"exit {code}: mlplan {' '.join(map(repr, argv))[:160]} -> {stderr.strip()[:240]}"
    if not isinstance(code, int) or code not in ALLOWED_EXIT or "Traceback" in stderr + stdout:
        return Outcome("traceback", shown, dt)
    errors = [line for line in stderr.splitlines() if line.startswith("mlplan: error:")]
    if code in (3, 4, 5) and len(errors) != 1:
        return Outcome("multi-line", shown, dt)
    if errors and (len(errors) != 1 or len(errors[0]) < 24):
        return Outcome("multi-line", shown, dt)
    return Outcome("ok" if code == 0 else "clean", shown if code else "", dt)


def run_cli_runner(argv: list[str], limit_s: float = 5.0) -> Outcome:
    """The same command through ``typer.testing.CliRunner`` on ``mlplan.cli.app`` (no ``main`` wrapper): the
    command may end in SystemExit with an allowed code or raise an MlplanError (``main`` maps it to one line);
    a pydantic ValidationError from a command-line value is what ``main`` maps to exit 2; anything else is a bug.
    """
    from pydantic import ValidationError
    from typer.testing import CliRunner

    from mlplan.cli import app
    from planner.errors import MlplanError

    limit_s *= SLOW_COMMANDS.get(argv[0] if argv else "", 1.0)
    t0 = time.perf_counter()
    try:
        with time_limit(limit_s):
            result = CliRunner().invoke(app, argv)
    except Hang:
        return Outcome("hang", f"over {limit_s} s: mlplan {' '.join(map(repr, argv))[:200]}",
                       time.perf_counter() - t0)
    dt = time.perf_counter() - t0
    exc = result.exception
    if exc is None or isinstance(exc, SystemExit):
        code = result.exit_code
        return Outcome("ok" if code == 0 else "clean" if code in ALLOWED_EXIT else "traceback",
                       f"exit {code}: {argv!r}"[:300], dt)
    if isinstance(exc, MlplanError | ValidationError):
        problem = _message_problem(str(exc)) if isinstance(exc, MlplanError) else None
        return Outcome(problem or "clean", str(exc)[:300], dt)
    return Outcome("traceback", f"{_where(exc)}: mlplan {argv!r}"[:400], dt)


def quiet_environment() -> dict[str, str | None]:
    """Environment for fuzzing commands that could reach a cloud or cluster (None: unset): no credentials, no
    metadata service, no kubeconfig, no Pulumi Cloud, no colour."""
    return {
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None,
        "AWS_SESSION_TOKEN": None, "AWS_PROFILE": None, "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials", "KUBECONFIG": "/nonexistent/kubeconfig",
        "PULUMI_BACKEND_URL": "file:///nonexistent", "PULUMI_ACCESS_TOKEN": None, "RAY_AUTH_MODE": "disabled",
        "NO_COLOR": "1", "COLUMNS": "120", "TERM": "dumb", "MLPLAN_DEBUG": None,
    }


def check_recommendation(rec: Any) -> None:
    """What every recommendation must satisfy, whatever the spec: at least one plan, ranks 1..n, finite
    non-negative costs and predictions, memory within capacity, and a plan that survives the plan.yaml round trip
    (a plain serialisable value). Raises AssertionError (counted as a traceback) when not."""
    from planner.plan import Plan

    assert rec.plans, "a Recommendation without plans (should have been an InfeasibleError)"
    assert [p.rank for p in rec.plans] == list(range(1, len(rec.plans) + 1)), "ranks are not 1..n"
    for p in rec.plans:
        assert math.isfinite(p.monthly_cost_usd) and p.monthly_cost_usd >= 0, f"{p.id}: cost {p.monthly_cost_usd}"
        assert abs(p.cost.monthly_usd - p.monthly_cost_usd) <= 1e-6 * max(1.0, p.monthly_cost_usd), p.id
        for name, value in p.predicted.model_dump().items():
            if isinstance(value, float):
                assert math.isfinite(value), f"{p.id}: predicted.{name} = {value}"
        pr = p.predicted
        assert pr.memory_per_gpu_bytes <= pr.memory_capacity_per_gpu_bytes, f"{p.id}: memory over capacity"
        assert p.replicas >= 1 and p.accelerator_count >= 1, p.id
        again = Plan.model_validate(json.loads(p.model_dump_json()))
        assert again == p, f"{p.id}: plan does not survive the JSON round trip"
