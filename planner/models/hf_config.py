"""Read a Hugging Face ``config.json`` (or a local model folder) offline into a :class:`ModelArch`.

Nothing here touches the network: the file is read from disk (size-capped, regular files only) and parsed as JSON
(``Infinity`` and ``NaN`` accepted, as published files have them: Nemotron-H's ``time_step_limit``). The
``model_type`` picks a family parser (:mod:`planner.models.families`) that follows the ``transformers``
configuration class (a field left out takes its default) and counts every weight the ``transformers`` modeling
code creates, tower by tower; the decoder's layers are described one by one (full / sliding / chunked attention,
multi-head latent attention, linear attention, Mamba-2). ``torch_dtype`` and ``quantization_config`` give the
checkpoint's own precision and weight bytes (:mod:`planner.models.quant`); a model folder with safetensors files
gives the exact bytes from their headers (:mod:`planner.models.safetensors_header`).

Supported ``model_type`` values: :data:`SUPPORTED_MODEL_TYPES`. Every failure (missing file, bad JSON, a missing or
ill-typed key, an absurd number, an unknown architecture) raises :class:`~planner.errors.ModelConfigError` in one
line that names the file and the field. :class:`TransformerShape` / :func:`count_params` remain for the
Llama-shaped decoders of bare-size models (:mod:`planner.models.sized`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from planner.errors import ModelConfigError
from planner.models.arch import ModelArch
from planner.models.families import FIX, PARSERS, Fields, Parsed
from planner.models.quant import checkpoint_precision
from planner.models.tally import fold

__all__ = [
    "MAX_CONFIG_BYTES",
    "SUPPORTED_MODEL_TYPES",
    "ParamCount",
    "TransformerShape",
    "arch_from_config",
    "count_params",
    "parse_config",
    "read_hf_config",
]

MAX_CONFIG_BYTES = 2_000_000
"""config.json files are a few KB (large id2label maps reach ~100 KB); anything over this is not a config."""

MAX_PARAMS = 100_000_000_000_000
"""1e14: two orders of magnitude above the largest published dense or MoE model."""

_FIX = FIX
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(PARSERS))

# ------------------------------------------------------------------------------------------ parameter count


@dataclass(frozen=True)
class TransformerShape:
    """Everything that decides the parameter count of a (decoder or encoder) transformer stack.

    Per family the flags follow the ``transformers`` modeling code: Llama/Mistral/Mixtral/Phi-3/Gemma use RMSNorm
    (weight only), a gated MLP (gate, up, down) and no biases; Qwen2 adds q/k/v biases; GPT-2/GPT-NeoX/OPT/BERT
    use LayerNorm (weight and bias), a plain two-matrix MLP and biases everywhere; GPT-J has no attention biases,
    one LayerNorm per block (parallel attention + MLP) and an lm_head bias.
    """

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    mlp: Literal["gated", "plain"] = "gated"
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    norm_bias: bool = False
    norms_per_layer: int = 2
    final_norm: bool = True
    embedding_norm: bool = False
    lm_head: Literal["separate", "tied", "none"] = "separate"
    lm_head_bias: bool = False
    position_embeddings: int = 0
    token_type_embeddings: int = 0
    pooler: bool = False
    embed_dim: int | None = None
    # mixture of experts
    moe_layers: int = 0
    experts: int = 1
    experts_per_token: int = 1
    moe_intermediate: int | None = None
    shared_expert_intermediate: int = 0
    shared_expert_gate: bool = False


@dataclass(frozen=True)
class ParamCount:
    total: int
    active: int
    """parameters touched per token: total minus the experts a token is not routed to."""


def count_params(s: TransformerShape) -> ParamCount:
    """Exact parameter count of a transformer from its shape.

    Source: the module layout of Hugging Face ``transformers`` (``modeling_llama.py``, ``modeling_mixtral.py``,
    ``modeling_qwen2(_moe).py``, ``modeling_gemma(2).py``, ``modeling_phi3.py``, ``modeling_gpt2.py``,
    ``modeling_gptj.py``, ``modeling_gpt_neox.py``, ``modeling_opt.py``, ``modeling_bert.py``); checked against
    the published counts in ``tests/test_models.py``.

    - attention: q = hidden x heads*head_dim, k and v = hidden x kv_heads*head_dim (grouped-query attention),
      o = heads*head_dim x hidden, plus biases where the family has them;
    - MLP: gated (Llama style, 3 matrices) or plain (GPT-2 style, 2 matrices);
    - MoE layers: ``experts`` MLPs of ``moe_intermediate``, a router (hidden x experts, no bias), an optional
      always-on shared expert with its sigmoid gate (hidden x 1);
    - norms: RMSNorm = hidden weights, LayerNorm = hidden weights + hidden biases;
    - embeddings (+ learned positions, token types), final norm, lm_head (none when tied), BERT pooler.
    """
    h, hd = s.hidden, s.head_dim
    q_out, kv_out = s.heads * hd, s.kv_heads * hd
    attn = h * q_out + 2 * h * kv_out + q_out * h
    if s.qkv_bias:
        attn += q_out + 2 * kv_out
    if s.o_bias:
        attn += h

    def mlp(inter: int) -> int:
        if s.mlp == "gated":
            return 3 * h * inter + ((2 * inter + h) if s.mlp_bias else 0)
        return 2 * h * inter + ((inter + h) if s.mlp_bias else 0)

    norm = h * (2 if s.norm_bias else 1)
    norms = s.norms_per_layer * norm
    dense_layer = attn + mlp(s.intermediate) + norms

    expert = mlp(s.moe_intermediate if s.moe_intermediate is not None else s.intermediate)
    shared = (mlp(s.shared_expert_intermediate) if s.shared_expert_intermediate else 0) + (
        h if s.shared_expert_gate else 0
    )
    moe_layer = attn + s.experts * expert + h * s.experts + shared + norms
    dense_layers = s.layers - s.moe_layers

    embed_dim = s.embed_dim if s.embed_dim is not None else h
    embeddings = s.vocab * embed_dim + s.position_embeddings * h + s.token_type_embeddings * h
    if s.embedding_norm:
        embeddings += norm
    if embed_dim != h:  # OPT-350m: project_in / project_out, no bias
        embeddings += 2 * embed_dim * h
    head = 0
    if s.lm_head == "separate":
        head = s.vocab * embed_dim + (s.vocab if s.lm_head_bias else 0)
    tail = (norm if s.final_norm else 0) + head + ((h * h + h) if s.pooler else 0)

    total = dense_layers * dense_layer + s.moe_layers * moe_layer + embeddings + tail
    idle_experts = s.moe_layers * (s.experts - s.experts_per_token) * expert
    return ParamCount(total=total, active=total - idle_experts)


# ---------------------------------------------------------------------------------------------- entry points


def _safe_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")
    return name[:64].rstrip("-.") or "model"


_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def hf_id_of(text: Any) -> str | None:
    """``org/name`` if ``text`` is a Hugging Face repository id (not a local path), else None."""
    if isinstance(text, str) and _HF_ID.match(text.strip()) and ".." not in text:
        return text.strip()
    return None


def _model_type(data: Any, where: str) -> str:
    if not isinstance(data, dict):
        raise ModelConfigError(
            f"{where}: must be a JSON object with model_type, hidden_size, ..., got {type(data).__name__}", fix=_FIX
        )
    model_type = data.get("model_type")
    if model_type is None:
        raise ModelConfigError(f"{where}: required field 'model_type' is missing", fix=_FIX)
    if model_type == "kimi_k2" or (isinstance(model_type, str) and model_type not in PARSERS
                                   and "DeepseekV3ForCausalLM" in (data.get("architectures") or [])):
        return "deepseek_v3"  # Kimi-K2 ships the DeepSeek-V3 architecture under its own model_type
    if not isinstance(model_type, str) or model_type not in PARSERS:
        shown = model_type if isinstance(model_type, str) else repr(model_type)
        raise ModelConfigError(
            f"{where}: model_type {shown[:40]!r} is not supported (supported: {', '.join(SUPPORTED_MODEL_TYPES)})",
            fix="give params: <count> (and active_params / experts for a mixture of experts) for other "
                "architectures",
        )
    return model_type


def parse_config(data: Any, where: str = "config.json") -> Parsed:
    """Parse a config mapping with its family parser (the counted tally and the layer plans)."""
    model_type = _model_type(data, where)
    try:
        return PARSERS[model_type](Fields(data, where), model_type)
    except RecursionError:
        raise ModelConfigError(f"{where}: nested too deeply", fix=_FIX) from None


def arch_from_config(data: Any, *, name: str, source: str, where: str = "config.json",
                     quant_override: dict[str, Any] | None = None, weight_bytes: int | None = None,
                     weight_source: str | None = None) -> ModelArch:
    """Turn an already-parsed config mapping into a :class:`ModelArch` (used for files and for presets)."""
    parsed = parse_config(data, where)
    t = parsed.tally
    total, active = t.total, t.active
    if total > MAX_PARAMS:
        raise ModelConfigError(
            f"{where}: the shape describes {total:.3e} parameters, over the {MAX_PARAMS:.0e} limit", fix=_FIX
        )
    if total < 1:
        raise ModelConfigError(f"{where}: the shape describes no parameters", fix=_FIX)
    assert isinstance(data, dict)
    precision = checkpoint_precision(data, t, where, quant_override)
    groups = fold(parsed.layers)
    attention_layers = [g for g in groups if g.kind not in ("none", "cross")]
    legacy: Literal["full", "sliding", "none"] = "full"
    window: int | None = None
    if parsed.decoder and attention_layers and all(g.kind == "sliding" for g in attention_layers):
        windows = {g.window for g in attention_layers}
        if len(windows) == 1:
            legacy, window = "sliding", windows.pop()
    components = t.by_component()
    comps = tuple(sorted(components.items(), key=lambda kv: (kv[0] != "text", kv[0])))
    hf_id = hf_id_of(data.get("_name_or_path"))
    wbytes = weight_bytes if weight_bytes is not None else precision.weight_bytes
    quant = precision.description
    if weight_bytes is not None and weight_source:
        quant = f"{quant}; " if quant else ""
        quant += f"weight bytes from {weight_source}"
    n_layers = len(parsed.layers) if parsed.family != "whisper" else int(parsed.extra.get("decoder_layers", 0))
    return ModelArch(
        name=name,
        kind=parsed.kind,
        family=parsed.family,
        params=total,
        active_params=active,
        layers=n_layers or None,
        hidden_size=parsed.hidden or None,
        attention_heads=parsed.heads or None,
        kv_heads=parsed.kv_heads or None,
        head_dim=parsed.head_dim or None,
        intermediate_size=parsed.intermediate or None,
        vocab_size=parsed.vocab or None,
        max_context=parsed.max_context,
        experts=parsed.experts,
        experts_per_token=parsed.experts_per_token,
        tied_embeddings=parsed.tied,
        attention=legacy,
        sliding_window=window,
        decoder=parsed.decoder,
        flops_per_inference=parsed.flops_per_inference,
        input_shape=parsed.input_shape,
        source=source,
        hf_id=hf_id,
        layer_groups=groups if parsed.decoder else (),
        components=comps if len(comps) > 1 else (),
        expert_params=t.routed_expert_params or None,
        moe_layers=t.moe_layers or None,
        dtype=precision.dtype,
        weight_bytes=wbytes if wbytes else None,
        expert_weight_bytes=(round(precision.expert_bytes * wbytes / precision.weight_bytes)
                             if precision.expert_bytes and precision.weight_bytes and wbytes else None),
        quantization=quant,
        image_tokens=parsed.image_tokens,
    )


_NO_DUPLICATES_LIMIT = 1_000_000


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _read_json(p: Path, label: str, path: str, limit: int = MAX_CONFIG_BYTES) -> Any:
    try:
        with p.open("rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as e:
        raise ModelConfigError(f"cannot read model config {path}: {e.strerror}", fix="check its permissions") from None
    if len(raw) > limit:
        raise ModelConfigError(
            f"model config {label} is over the {limit:,} byte limit: not a config.json",
            fix="pass the model's config.json, not a weights or tokenizer file",
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ModelConfigError(f"model config {label} is not UTF-8 text", fix="pass the model's config.json") from None
    try:
        # Infinity / NaN are accepted: published configs carry them (Nemotron-H: time_step_limit [0.0, Infinity])
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise ModelConfigError(
            f"model config {label} is not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}", fix=_FIX
        ) from None
    except RecursionError:
        raise ModelConfigError(f"model config {label} is nested too deeply", fix=_FIX) from None
    except ValueError as e:
        raise ModelConfigError(f"model config {label} is not valid JSON: {e}", fix=_FIX) from None


def read_hf_config(path: str) -> ModelArch:
    """Read a Hugging Face ``config.json`` or a model folder offline into a :class:`ModelArch`.

    The file is capped at :data:`MAX_CONFIG_BYTES`, must be a regular file (never a FIFO or device, so this
    cannot hang), UTF-8 JSON without duplicate keys, and a JSON object. A folder is read for its ``config.json``,
    an optional ModelOpt ``hf_quant_config.json``, and the exact weight bytes of its safetensors files (headers
    only, see :mod:`planner.models.safetensors_header`).
    """
    from planner.models.safetensors_header import folder_weight_bytes

    p = Path(path)
    try:
        folder = p if p.is_dir() else None
        if folder is not None:
            p = p / "config.json"
        exists, regular = p.exists(), p.is_file()
    except (OSError, ValueError) as e:  # a name too long, a NUL byte in the path ...
        why = getattr(e, "strerror", None) or e
        raise ModelConfigError(f"model config path {str(path)[:80]!r} cannot be used: {why}",
                               fix="check the hf_config path") from None
    label = f"{p.parent.name}/{p.name}" if p.parent.name else p.name
    if not exists:
        raise ModelConfigError(f"model config file not found: {path}", fix="check the hf_config path")
    if not regular:
        raise ModelConfigError(f"model config path is not a regular file: {path}", fix="pass a config.json file")
    data = _read_json(p, label, path)
    quant_override: dict[str, Any] | None = None
    weight_bytes: int | None = None
    weight_source: str | None = None
    if folder is not None and isinstance(data, dict):
        hq = folder / "hf_quant_config.json"
        if hq.is_file():
            hq_data = _read_json(hq, f"{folder.name}/{hq.name}", str(hq))
            if isinstance(hq_data, dict) and isinstance(hq_data.get("quantization"), dict):
                quant_override = {"quant_method": "modelopt", **hq_data["quantization"]}
        found = folder_weight_bytes(folder)
        if found is not None:
            weight_bytes, weight_source = found
    name_hint = data.get("_name_or_path") if isinstance(data, dict) else None
    if isinstance(name_hint, str) and name_hint.strip():
        name = _safe_name(name_hint.rstrip("/").rsplit("/", 1)[-1])
    elif p.name == "config.json" and p.parent.name:
        name = _safe_name(p.parent.name)
    else:
        name = _safe_name(p.stem)
    model_type = data.get("model_type") if isinstance(data, dict) else None
    source = f"Hugging Face {label} (model_type {model_type}); params counted from the shape"
    return arch_from_config(data, name=name, source=source, where=f"model config {label}",
                            quant_override=quant_override, weight_bytes=weight_bytes, weight_source=weight_source)
