"""vLLM engine arguments from the plan (``Part.engine``), as ``vllm serve`` flags and as Ray Serve LLM
``engine_kwargs``, and the check of those flags against vLLM's own argument parser.

The values are the planner's (:mod:`planner.optimizer.engine`): ``--tensor-parallel-size`` and
``--pipeline-parallel-size`` from the sharding, ``--max-model-len``, ``--max-num-seqs``,
``--max-num-batched-tokens``, ``--gpu-memory-utilization``, ``--kv-cache-dtype``, ``--quantization`` (only when
the engine quantizes at load time; a pre-quantized checkpoint names its own method) and
``--enable-expert-parallel``.

The check: :data:`FLAGS_FILE` is the option table of ``vllm serve`` (``vllm.entrypoints.common.cli_args.
make_arg_parser``) dumped from vLLM |VLLM_VERSION| itself, the release the pinned image
``vllm/vllm-openai:v|VLLM_VERSION|`` runs: ``python -m serving.engine_args dump FILE`` under a Python where that
vLLM imports (a side venv with the CPU build of torch and ``VLLM_TARGET_DEVICE=cpu``). :func:`check_cli_args`
judges flags against that table (name, type, choices); tests also run vLLM's own parser when
``MLPLAN_VLLM_PYTHON`` names such a Python.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from planner.errors import ArtifactError
from planner.plan import Part, Plan

VLLM_VERSION = "0.33.0"
FLAGS_FILE = Path(__file__).parent / "data" / f"vllm_serve_flags_v{VLLM_VERSION}.json"
_DTYPE = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def engine_kwargs(plan: Plan, part: Part, model: str) -> dict[str, Any]:
    """vLLM ``EngineArgs`` fields for ``part`` loading the weights at ``model`` (a local path or an HF id)."""
    e = part.engine
    if e is None:
        raise ArtifactError(f"part {part.names.key} runs {part.runtime} but the plan has no engine settings",
                            fix="re-run mlplan plan with this version of mlplan")
    kw: dict[str, Any] = {
        "model": model,
        "served_model_name": [plan.model.name],
        "tensor_parallel_size": part.tensor_parallel,
        "pipeline_parallel_size": part.pipeline_parallel,
        "dtype": _DTYPE.get(part.dtype, "auto"),
        "max_model_len": e.max_model_len,
        "max_num_seqs": e.max_num_seqs,
        "max_num_batched_tokens": e.max_num_batched_tokens,
        "gpu_memory_utilization": e.gpu_memory_utilization,
        "kv_cache_dtype": e.kv_cache_dtype,
    }
    if e.quantization:
        kw["quantization"] = e.quantization
    if e.enable_expert_parallel:
        kw["enable_expert_parallel"] = True
    if spans_nodes(part):
        kw["distributed_executor_backend"] = "ray"  # ranks on several nodes: vLLM over a Ray cluster
    return kw


def spans_nodes(part: Part) -> bool:
    """One replica's GPUs are on more than one node."""
    return part.gpus_per_node > 0 and part.tensor_parallel * part.pipeline_parallel > part.gpus_per_node


def cli_args(kwargs: dict[str, Any]) -> list[str]:
    """``vllm serve`` flags for ``engine_kwargs`` (``max_num_seqs`` -> ``--max-num-seqs 8``; True -> the bare
    flag; lists -> one value each)."""
    out: list[str] = []
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif isinstance(value, list):
            out += [flag, *(str(v) for v in value)]
        elif value is not False and value is not None:
            out += [flag, str(value)]
    return out


@cache
def flag_table() -> dict[str, Any]:
    """The vendored option table: ``{"version", "source", "options": {flag: {dest, type, choices, nargs,
    takes_value}}}``."""
    data: dict[str, Any] = json.loads(FLAGS_FILE.read_text(encoding="utf-8"))
    return data


def check_cli_args(args: list[str]) -> list[str]:
    """Problems with ``args`` by the table of ``vllm serve``: unknown flags, missing or extra values, values of
    the wrong type or outside the flag's choices. Empty when vLLM would accept them."""
    options: dict[str, Any] = flag_table()["options"]
    problems: list[str] = []
    i = 0
    while i < len(args):
        flag = args[i]
        name, eq, inline = flag.partition("=")
        opt = options.get(name)
        if not name.startswith("-") or opt is None:
            problems.append(f"unknown flag {flag!r} for vllm serve {flag_table()['version']}")
            i += 1
            continue
        values: list[str] = [inline] if eq else []
        if not eq and opt["takes_value"]:
            j = i + 1
            while j < len(args) and not args[j].startswith("--") and (opt["nargs"] in ("+", "*") or j == i + 1):
                values.append(args[j])
                j += 1
            i = j
        else:
            i += 1
        if opt["takes_value"] and not values and opt["nargs"] not in ("?", "*"):
            problems.append(f"{name} needs a value")
        if not opt["takes_value"] and values:
            problems.append(f"{name} takes no value, got {values[0]!r}")
        for v in values:
            problems += [f"{name} {why}" for why in _bad_value(opt, v)]
    return problems


def _bad_value(opt: dict[str, Any], value: str) -> list[str]:
    typ, choices = opt.get("type"), opt.get("choices")
    if choices and value not in [str(c) for c in choices]:
        return [f"value {value!r} is not one of {choices}"]
    try:
        if typ == "int" or (typ == "int-or-auto" and value != "auto"):
            int(value)
        elif typ == "float":
            float(value)
    except ValueError:
        return [f"value {value!r} is not a {typ}"]
    return []


def dump_flags(out: Path) -> None:
    """Write the option table of the installed vLLM's ``vllm serve`` parser to ``out`` (run in a side venv)."""
    import importlib
    import importlib.metadata

    cli = importlib.import_module("vllm.entrypoints.common.cli_args")
    parser_mod = importlib.import_module("vllm.utils.argparse_utils")
    parser = cli.make_arg_parser(parser_mod.FlexibleArgumentParser())
    options: dict[str, Any] = {}
    quant = importlib.import_module("vllm.model_executor.layers.quantization")
    extra_choices = {"quantization": sorted(quant.QUANTIZATION_METHODS)}  # validated after parsing, by the config
    for action in parser._actions:
        takes_value = action.nargs != 0
        typ = getattr(action.type, "__name__", None) if action.type is not None else None
        typ = {"human_readable_int": "int", "human_readable_int_or_auto": "int-or-auto"}.get(str(typ), typ)
        choices = action.choices or (action.metavar if isinstance(action.metavar, (list, tuple)) else None)
        choices = extra_choices.get(action.dest, choices)
        for opt in action.option_strings:
            if not opt.startswith("--"):
                continue
            options[opt] = {"dest": action.dest,
                            "type": typ if typ in ("int", "float", "str", "int-or-auto") else None,
                            "choices": sorted(str(c) for c in choices) if choices else None,
                            "nargs": action.nargs if isinstance(action.nargs, str) else None,
                            "takes_value": takes_value}
    version = importlib.metadata.version("vllm")
    data = {"version": version,
            "source": f"vllm {version} (PyPI wheel), vllm.entrypoints.common.cli_args.make_arg_parser, dumped by "
                      "python -m serving.engine_args dump",
            "options": dict(sorted(options.items()))}
    out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "dump":
        dump_flags(Path(args[1]))
        return 0
    if len(args) == 1 and args[0] == "parse":
        # vLLM's own parser on each flag list of a JSON list on stdin; prints a JSON list of errors ("" = accepted)
        import importlib

        cli = importlib.import_module("vllm.entrypoints.common.cli_args")
        parser_mod = importlib.import_module("vllm.utils.argparse_utils")
        results = []
        for flags in json.loads(sys.stdin.read()):
            parser = cli.make_arg_parser(parser_mod.FlexibleArgumentParser(exit_on_error=False))
            try:
                parser.parse_args(flags)
                results.append("")
            except (Exception, SystemExit) as e:  # argparse reports through exit_on_error / SystemExit
                results.append(f"{type(e).__name__}: {e}")
        print(json.dumps(results))
        return 0
    print("usage: python -m serving.engine_args dump FILE | parse  (JSON list of flag lists on stdin)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
