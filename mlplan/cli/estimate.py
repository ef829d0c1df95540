"""``mlplan estimate MODEL``: memory, latency, throughput and energy of one model on one accelerator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from planner.errors import SpecError


def register(app: typer.Typer) -> None:
    app.command("estimate")(estimate_cmd)


def _model_spec(model: str | None, params: float | None) -> tuple[Any, Any]:
    """MODEL may be a preset name, a config.json, or a spec YAML (then its workload is used too)."""
    from planner.specs import ModelSpec, load_spec

    if model is None:
        if params is None:
            raise SpecError("give a MODEL (preset, config.json or spec YAML) or --params", fix="e.g. --params 13e9")
        return ModelSpec(params=params), None
    if params is not None:
        raise SpecError("give either MODEL or --params, not both")
    p = Path(model)
    if p.suffix in (".yaml", ".yml"):
        spec = load_spec(p)
        return spec.model, spec
    try:
        is_file = p.is_file()
    except (OSError, ValueError):  # not a usable path (too long, a NUL byte): treat it as a preset name
        is_file = False
    if p.suffix == ".json" or is_file:
        return ModelSpec(hf_config=str(p)), None
    return ModelSpec(preset=model), None


def estimate_cmd(
    model: Annotated[str | None, typer.Argument(help="preset name, HF config.json, or spec YAML")] = None,
    params: Annotated[float | None, typer.Option(help="only a size, e.g. 13e9 (a Llama-shaped decoder)")] = None,
    hardware: Annotated[str, typer.Option(help="accelerator or edge device id from the catalog")] = "h100-sxm",
    dtype: Annotated[str | None, typer.Option(
        help="fp32, fp16, bf16, fp8, int8, int4, fp4; default: the checkpoint's own precision (else bf16)")] = None,
    tp: Annotated[int, typer.Option(min=1, max=1024, help="tensor parallel degree")] = 1,
    pp: Annotated[int, typer.Option(min=1, max=1024, help="pipeline parallel degree")] = 1,
    ep: Annotated[int, typer.Option(
        min=1, max=1024, help="expert parallel degree (MoE; divides --tp, as vLLM --enable-expert-parallel)")] = 1,
    batch: Annotated[int | None, typer.Option(min=1, max=1_000_000, help="concurrent sequences / batch")] = None,
    input_tokens: Annotated[int | None, typer.Option(min=1, max=10_000_000)] = None,
    output_tokens: Annotated[int | None, typer.Option(min=1, max=10_000_000)] = None,
    workload: Annotated[Literal["inference", "training"] | None, typer.Option()] = None,
    gpus: Annotated[int, typer.Option(min=1, max=1_000_000, help="training: GPUs in all")] = 8,
    zero: Annotated[int, typer.Option(min=0, max=3, help="training: ZeRO/FSDP stage")] = 0,
    train_tokens: Annotated[float | None, typer.Option(help="training: tokens to train on")] = None,
    whatif: Annotated[bool, typer.Option("--whatif", help="add quantization and pruning what-ifs")] = False,
    sparsity: Annotated[float, typer.Option(min=0.0, max=0.95, help="what-if: pruned fraction")] = 0.5,
    student: Annotated[str | None, typer.Option(help="what-if: a distilled student (preset name)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    rate: Annotated[float | None, typer.Option(
        "--rate", min=0.0, help="simulate an open-loop Poisson load of R requests/s: latency percentiles")] = None,
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", min=1, max=100_000, help="simulate N clients in a closed loop: latency percentiles")] = None,
) -> None:
    """Estimate what a model needs: weights, KV cache, activations; TTFT, TPOT, throughput; training memory/time."""
    import math

    from planner.catalog import Catalog
    from planner.models import resolve

    mspec, spec = _model_spec(model, params)
    for name, val in (("--params", params), ("--train-tokens", train_tokens)):
        if val is not None and (not math.isfinite(val) or val <= 0 or val > 1e16):
            raise SpecError(f"{name} = {val!r} must be a positive finite number below 1e16")
    from planner.specs import SERVING_DTYPES

    if dtype is not None and dtype not in SERVING_DTYPES:
        raise SpecError(f"--dtype {dtype!r} is not a dtype", fix=f"use one of {', '.join(SERVING_DTYPES)}")
    arch = resolve(mspec)
    if dtype is None:
        dtype = arch.dtype if arch.dtype in SERVING_DTYPES else "bf16"
    cat = Catalog.load(spec.catalog_overlay if spec else None)
    wl = workload or (spec.workload.kind if spec else "inference")
    out: dict[str, Any] = {"model": {"name": arch.name, "kind": arch.kind, "family": arch.family,
                                     "params": arch.params, "active_params": arch.active_params,
                                     "components": arch.components_dict, "hf_id": arch.hf_id,
                                     "checkpoint_dtype": arch.dtype, "quantization": arch.quantization,
                                     "experts": arch.experts, "experts_per_token": arch.experts_per_token,
                                     "image_tokens": arch.image_tokens,
                                     "layer_kinds": _layer_kinds(arch)},
                           "hardware": hardware, "dtype": dtype, "tp": tp, "pp": pp, "ep": ep}
    if hardware in cat.edge_devices:
        out.update(_edge(arch, cat.edge_device(hardware), dtype, batch or 1))
    elif wl == "training":
        out.update(_training(arch, cat.accelerator(hardware), spec, gpus, zero, tp, pp, train_tokens, dtype))
    else:
        out.update(_inference(arch, cat.accelerator(hardware), spec, dtype, tp, pp, batch, input_tokens,
                              output_tokens, whatif or student is not None, sparsity, student, ep=ep))
        out["load"] = _load(arch, cat.accelerator(hardware), dtype, tp, pp, batch, out["performance"], rate,
                            concurrency)
    if json_out:
        print(json.dumps(out, indent=2))
    else:
        _print(out)


def _layer_kinds(arch: Any) -> list[dict[str, Any]]:
    """The decoder's layers by kind (and window): how many of each."""
    counts: dict[tuple[str, int | None], int] = {}
    for g in arch.layer_groups:
        counts[(g.kind, g.window)] = counts.get((g.kind, g.window), 0) + g.count
    return [{"kind": k, "window": w, "layers": n} for (k, w), n in counts.items()]


def _inference(arch: Any, acc: Any, spec: Any, dtype: str, tp: int, pp: int, batch: int | None,
               input_tokens: int | None, output_tokens: int | None, whatif: bool, sparsity: float = 0.5,
               student: str | None = None, ep: int = 1) -> dict[str, Any]:
    from planner.estimator import (
        distillation_whatif,
        estimate_inference,
        profile,
        pruning_whatif,
        quantization_whatif,
        shape_of,
    )
    from planner.estimator.inference import (
        kv_bytes_per_sequence,
        kv_bytes_per_token_all_layers,
        state_bytes_per_sequence,
    )
    from planner.models import image_context_tokens

    w = spec.workload if spec is not None and spec.workload.kind == "inference" else None
    i = input_tokens or (w.input_tokens if w else 512)
    o = output_tokens or (w.output_tokens if w else 256)
    b = batch or (w.batch_size if w and w.batch_size else 1)
    images = image_context_tokens(arch, w.images_per_request) if w else 0
    i += images
    prof = profile(acc)
    e = estimate_inference(arch, prof, dtype, tp=tp, pp=pp, input_tokens=i, output_tokens=o, batch=b, ep=ep)
    m = e.memory
    s = shape_of(arch)
    res: dict[str, Any] = {
        "memory": {
            "weights_bytes": m.weights_bytes, "weights_bytes_per_gpu": m.weights_bytes_per_gpu,
            "kv_cache_bytes_per_token": m.kv_cache_bytes_per_token,
            "kv_cache_bytes_per_token_all_layers": kv_bytes_per_token_all_layers(s, dtype),
            "kv_cache_bytes_per_sequence": kv_bytes_per_sequence(s, dtype, i + o),
            "state_bytes_per_sequence": state_bytes_per_sequence(s, dtype),
            "kv_cache_bytes_per_gpu": m.kv_cache_bytes_per_gpu,
            "activation_bytes_per_gpu": m.activation_bytes_per_gpu, "overhead_bytes_per_gpu": m.overhead_bytes_per_gpu,
            "total_bytes_per_gpu": m.total_bytes_per_gpu, "capacity_bytes_per_gpu": prof.memory_bytes,
            "fits": e.fits,
        },
        "performance": {
            "batch": b, "input_tokens": i, "image_tokens": images, "output_tokens": o, "ttft_s": e.ttft_s,
            "tpot_s": e.tpot_s,
            "throughput_tokens_per_s": e.throughput_tokens_per_s, "max_batch": e.max_batch,
            "requests_per_s": e.requests_per_s, "latency_s": e.latency_s,
            "energy_j_per_token": e.energy_j_per_token, "energy_j_per_request": e.energy_j_per_request,
        },
    }
    if whatif:
        rows = quantization_whatif(arch, prof, ("bf16", "fp16", "fp8", "int8", "int4"), baseline=dtype,
                                   input_tokens=i, output_tokens=o, tp=tp)
        for structured in (False, True):
            rows += pruning_whatif(arch, prof, sparsity, structured, dtype=dtype, input_tokens=i,
                                   output_tokens=o)[1:]
        if student is not None:
            from planner.models import resolve
            from planner.specs import ModelSpec

            rows += distillation_whatif(arch, resolve(ModelSpec(preset=student)), prof, dtype=dtype,
                                        input_tokens=i, output_tokens=o)[1:]
        res["whatif"] = [_asdict(r) for r in rows]
    return res


def _load(arch: Any, acc: Any, dtype: str, tp: int, pp: int, batch: int | None, perf: dict[str, Any],
          rate: float | None, concurrency: int | None) -> dict[str, Any]:
    """Simulated percentiles under --rate / --concurrency (planner.simulator), else a note that the figures
    above are idle ones."""
    from planner.simulator.estimate import IDLE_NOTE, simulate_estimate

    if rate is None and concurrency is None:
        return {"mode": "idle", "note": IDLE_NOTE}
    if rate is not None and rate <= 0:
        raise SpecError(f"--rate {rate!r} must be a positive number of requests/s", fix="e.g. --rate 10")
    from planner.estimator import profile

    return simulate_estimate(arch, profile(acc), dtype, tp=tp, pp=pp, input_tokens=perf["input_tokens"],
                             output_tokens=perf["output_tokens"], rate_rps=rate, concurrency=concurrency,
                             max_num_seqs=batch, max_batch_size=batch)


def _asdict(obj: Any) -> dict[str, Any]:
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return dict(vars(obj))


def _training(arch: Any, acc: Any, spec: Any, gpus: int, zero: int, tp: int, pp: int, tokens: float | None,
              dtype: str) -> dict[str, Any]:
    from planner.estimator import estimate_training, profile

    w = spec.workload if spec is not None and spec.workload.kind == "training" else None
    toks = tokens or (w.tokens * w.epochs if w and w.tokens else 1e9)
    mfu = spec.assumptions.training_mfu if spec is not None else 0.4
    e = estimate_training(arch, profile(acc), gpus=gpus, dtype=dtype if dtype in ("bf16", "fp16", "fp32") else "bf16",
                          optimizer=w.optimizer if w else "adamw", zero_stage=zero, tp=tp, pp=pp,
                          micro_batch_size=w.micro_batch_size if w else 1,
                          sequence_length=w.sequence_length if w else 2048,
                          activation_checkpointing=w.activation_checkpointing if w else True, tokens=toks, mfu=mfu)
    return {"training": {
        "gpus": gpus, "zero_stage": zero, "tokens": toks, "mfu": mfu,
        "model_states_bytes_per_gpu": e.model_states_bytes_per_gpu,
        "activation_bytes_per_gpu": e.activation_bytes_per_gpu, "total_bytes_per_gpu": e.total_bytes_per_gpu,
        "capacity_bytes_per_gpu": acc.memory_bytes, "fits": e.fits, "flops_total": e.flops_total,
        "time_s": e.time_s, "gpu_hours": e.gpu_hours,
    }}


def _edge(arch: Any, dev: Any, dtype: str, batch: int) -> dict[str, Any]:
    from planner.estimator import estimate_edge

    e = estimate_edge(arch, dev, dtype, batch=batch)
    return {"edge": _asdict(e) | {"ram_bytes": dev.ram_bytes, "storage_bytes": dev.storage_bytes}}


def _print(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console()
    m = out["model"]
    c.print(f"[bold]{m['name']}[/bold] ({m['family']}, {m['params'] / 1e9:.3g} B params) on {out['hardware']}, "
            f"{out['dtype']}, TP{out['tp']} PP{out['pp']}")
    for section in ("memory", "performance", "training", "edge"):
        if section not in out:
            continue
        t = Table(title=section, title_justify="left", show_header=False)
        for k, v in out[section].items():
            t.add_row(k, _fmt(k, v))
        c.print(t)
    if "load" in out:
        _print_load(c, out["load"])
    if "whatif" in out:
        t = Table(title="quantization what-if", title_justify="left")
        rows = out["whatif"]
        for k in rows[0]:
            t.add_column(k)
        for r in rows:
            t.add_row(*[_fmt(k, v) for k, v in r.items()])
        c.print(t)


def _print_load(c: Any, load: dict[str, Any]) -> None:
    from rich.table import Table

    from planner.simulator.estimate import load_table

    title, columns, rows, footer = load_table(load)
    if columns:
        t = Table(title=title, title_justify="left")
        for col in columns:
            t.add_column(col)
        for row in rows:
            t.add_row(*row)
        c.print(t)
    c.print(footer)


def _fmt(key: str, v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if (isinstance(v, int) and key.endswith("bytes")) or key.endswith("_bytes_per_gpu") or "bytes" in key:
        return f"{v / 1e9:,.3f} GB ({v:,} B)" if isinstance(v, int | float) else str(v)
    if isinstance(v, float) and key.endswith("_s"):
        return f"{v * 1e3:,.2f} ms" if v < 1 else f"{v:,.2f} s"
    if isinstance(v, float):
        return f"{v:,.4g}"
    return str(v)
