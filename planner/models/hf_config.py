"""Read a Hugging Face ``config.json`` offline and count the model's parameters exactly from its shape.

Nothing here touches the network: the file is read from disk (size-capped, regular files only), parsed as strict
JSON, and each supported ``model_type`` is mapped to a :class:`TransformerShape`. :func:`count_params` then counts
every weight tensor the Hugging Face ``transformers`` implementation of that family creates, so a config without
an explicit parameter count still gives the exact figure (``model.num_parameters()``), e.g. Llama-2-7B
6,738,415,616, Meta-Llama-3-8B 8,030,261,248, gpt2 124,439,808, bert-base-uncased 109,482,240.

Supported ``model_type`` values: see :data:`SUPPORTED_MODEL_TYPES`. Every failure (missing file, bad JSON, a
missing or ill-typed key, an absurd number) raises :class:`~planner.errors.ModelConfigError` in one line that
names the file and the field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from planner.errors import ModelConfigError
from planner.models.arch import ModelArch
from planner.specs import ModelKind

__all__ = [
    "MAX_CONFIG_BYTES",
    "SUPPORTED_MODEL_TYPES",
    "ParamCount",
    "TransformerShape",
    "arch_from_config",
    "count_params",
    "read_hf_config",
]

MAX_CONFIG_BYTES = 2_000_000
"""config.json files are a few KB (large id2label maps reach ~100 KB); anything over this is not a config."""

MAX_PARAMS = 100_000_000_000_000
"""1e14: two orders of magnitude above the largest published dense or MoE model."""

_FIX = "use the config.json from the model's repository unchanged, or give params: <count> instead"


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


# ------------------------------------------------------------------------------------------- field access


class _Fields:
    """Typed, bounded access to the keys of one config.json, each failure one line naming the field."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, key: str, value: Any, problem: str) -> ModelConfigError:
        shown = repr(value)
        if len(shown) > 40:
            shown = shown[:37] + "..."
        return ModelConfigError(f"{self.where}: field '{key}' = {shown}: {problem}", fix=_FIX)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def int_(self, key: str, default: int | None = None, *, lo: int = 1, hi: int = 1 << 24) -> int:
        if key not in self.data or self.data[key] is None:
            if default is None:
                raise ModelConfigError(
                    f"{self.where}: required field '{key}' is missing", fix=_FIX
                )
            return default
        v = self.data[key]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.fail(key, v, f"must be an integer, got {type(v).__name__}")
        if isinstance(v, float):
            if not math.isfinite(v) or not v.is_integer():
                raise self.fail(key, v, "must be a whole number")
            v = int(v)
        if v < lo:
            raise self.fail(key, v, f"must be at least {lo}")
        if v > hi:
            raise self.fail(key, v, f"must be at most {hi:,} (is this a real config?)")
        return v

    def any_int(self, keys: Sequence[str], default: int | None = None, *, lo: int = 1, hi: int = 1 << 24) -> int:
        for key in keys:
            if self.has(key):
                return self.int_(key, lo=lo, hi=hi)
        if default is None:
            raise ModelConfigError(
                f"{self.where}: required field '{keys[0]}' is missing", fix=_FIX
            )
        return default

    def bool_(self, key: str, default: bool) -> bool:
        if key not in self.data or self.data[key] is None:
            return default
        v = self.data[key]
        if not isinstance(v, bool):
            raise self.fail(key, v, f"must be true or false, got {type(v).__name__}")
        return v

    def int_list(self, key: str) -> tuple[int, ...]:
        v = self.data.get(key)
        if v is None:
            return ()
        if not isinstance(v, list) or any(isinstance(x, bool) or not isinstance(x, int) for x in v):
            raise self.fail(key, v, "must be a list of integers")
        return tuple(v)


# bounds on each dimension: generous (10x the largest published model) but finite
_LAYERS = 4096
_HIDDEN = 262_144
_HEADS = 16_384
_HEAD_DIM = 4096
_INTER = 4_194_304
_VOCAB = 16_777_216
_EXPERTS = 4096
_POSITIONS = 1 << 27


@dataclass(frozen=True)
class _Parsed:
    shape: TransformerShape
    family: str
    kind: ModelKind = "llm"
    decoder: bool = True
    max_context: int | None = None
    attention: Literal["full", "sliding"] = "full"
    sliding_window: int | None = None


def _attention_dims(f: _Fields, hidden: int, *, heads_key: str = "num_attention_heads",
                    default_head_dim: int | None = None) -> tuple[int, int, int]:
    heads = f.int_(heads_key, hi=_HEADS)
    kv = f.int_("num_key_value_heads", heads, hi=_HEADS) if heads_key == "num_attention_heads" else heads
    if kv > heads or heads % kv:
        raise f.fail("num_key_value_heads", kv, f"must divide num_attention_heads ({heads})")
    if f.has("head_dim"):
        head_dim = f.int_("head_dim", hi=_HEAD_DIM)
    elif default_head_dim is not None:
        head_dim = default_head_dim
    else:
        if hidden % heads:
            raise f.fail(heads_key, heads, f"must divide hidden size {hidden} (or give head_dim)")
        head_dim = hidden // heads
    return heads, kv, head_dim


def _llama_like(f: _Fields, family: str) -> _Parsed:
    """llama, mistral, mixtral, qwen2, qwen2_moe, gemma, gemma2, phi3: RMSNorm, gated MLP, rotary positions."""
    hidden = f.int_("hidden_size", hi=_HIDDEN)
    layers = f.int_("num_hidden_layers", hi=_LAYERS)
    heads, kv, head_dim = _attention_dims(
        f, hidden, default_head_dim=256 if family in ("gemma", "gemma2") else None
    )
    inter = f.int_("intermediate_size", hi=_INTER)
    vocab = f.int_("vocab_size", hi=_VOCAB)
    max_ctx = f.int_("max_position_embeddings", 0, lo=0, hi=_POSITIONS) or None
    tied = f.bool_("tie_word_embeddings", family in ("gemma", "gemma2"))
    attention_bias = f.bool_("attention_bias", False)
    qkv_bias = family in ("qwen2", "qwen2_moe") or attention_bias
    common: dict[str, Any] = dict(
        layers=layers, hidden=hidden, heads=heads, kv_heads=kv, head_dim=head_dim, intermediate=inter,
        vocab=vocab, qkv_bias=qkv_bias, o_bias=attention_bias, mlp_bias=f.bool_("mlp_bias", False),
        norms_per_layer=4 if family == "gemma2" else 2, lm_head="tied" if tied else "separate",
    )
    if family == "mixtral":
        experts = f.int_("num_local_experts", hi=_EXPERTS)
        top_k = f.int_("num_experts_per_tok", hi=_EXPERTS)
        if top_k > experts:
            raise f.fail("num_experts_per_tok", top_k, f"must be at most num_local_experts ({experts})")
        common.update(moe_layers=layers, experts=experts, experts_per_token=top_k)
    elif family == "qwen2_moe":
        experts = f.int_("num_experts", hi=_EXPERTS)
        top_k = f.int_("num_experts_per_tok", hi=_EXPERTS)
        if top_k > experts:
            raise f.fail("num_experts_per_tok", top_k, f"must be at most num_experts ({experts})")
        step = f.int_("decoder_sparse_step", 1, hi=_LAYERS)
        dense_only = set(f.int_list("mlp_only_layers"))
        moe_layers = sum(1 for i in range(layers) if i not in dense_only and (i + 1) % step == 0)
        shared = f.int_("shared_expert_intermediate_size", 0, lo=0, hi=_INTER)
        common.update(
            moe_layers=moe_layers, experts=experts, experts_per_token=top_k,
            moe_intermediate=f.int_("moe_intermediate_size", hi=_INTER),
            shared_expert_intermediate=shared, shared_expert_gate=shared > 0,
        )
    # Sliding-window attention caps the KV cache only where every layer uses it: Mistral (and Mixtral when its
    # config sets a window). Qwen2 applies it only with use_sliding_window and only above max_window_layers,
    # Gemma-2 alternates local and global layers, and Phi-3's window is not applied by every server: all three
    # are planned with full attention, the conservative choice for memory.
    attention: Literal["full", "sliding"] = "full"
    window: int | None = None
    if family in ("mistral", "mixtral") and f.has("sliding_window"):
        window = f.int_("sliding_window", hi=_POSITIONS)
        if max_ctx is None or window < max_ctx:
            attention = "sliding"
        else:
            window = None
    return _Parsed(TransformerShape(**common), family=family, max_context=max_ctx, attention=attention,
                   sliding_window=window)


def _gpt2(f: _Fields, family: str) -> _Parsed:
    hidden = f.int_("n_embd", hi=_HIDDEN)
    layers = f.int_("n_layer", hi=_LAYERS)
    heads = f.int_("n_head", hi=_HEADS)
    if hidden % heads:
        raise f.fail("n_head", heads, f"must divide n_embd ({hidden})")
    positions = f.int_("n_positions", 1024, hi=_POSITIONS)
    shape = TransformerShape(
        layers=layers, hidden=hidden, heads=heads, kv_heads=heads, head_dim=hidden // heads,
        intermediate=f.int_("n_inner", 4 * hidden, hi=_INTER), vocab=f.int_("vocab_size", hi=_VOCAB),
        mlp="plain", qkv_bias=True, o_bias=True, mlp_bias=True, norm_bias=True,
        lm_head="tied" if f.bool_("tie_word_embeddings", True) else "separate", position_embeddings=positions,
    )
    return _Parsed(shape, family=family, max_context=positions)


def _gptj(f: _Fields, family: str) -> _Parsed:
    hidden = f.int_("n_embd", hi=_HIDDEN)
    heads = f.int_("n_head", hi=_HEADS)
    if hidden % heads:
        raise f.fail("n_head", heads, f"must divide n_embd ({hidden})")
    shape = TransformerShape(
        layers=f.int_("n_layer", hi=_LAYERS), hidden=hidden, heads=heads, kv_heads=heads, head_dim=hidden // heads,
        intermediate=f.int_("n_inner", 4 * hidden, hi=_INTER), vocab=f.int_("vocab_size", hi=_VOCAB),
        mlp="plain", mlp_bias=True, norm_bias=True, norms_per_layer=1,
        lm_head="tied" if f.bool_("tie_word_embeddings", False) else "separate", lm_head_bias=True,
    )
    return _Parsed(shape, family=family, max_context=f.int_("n_positions", 2048, hi=_POSITIONS))


def _gpt_neox(f: _Fields, family: str) -> _Parsed:
    hidden = f.int_("hidden_size", hi=_HIDDEN)
    heads, _, head_dim = _attention_dims(f, hidden)
    bias = f.bool_("attention_bias", True)
    shape = TransformerShape(
        layers=f.int_("num_hidden_layers", hi=_LAYERS), hidden=hidden, heads=heads, kv_heads=heads,
        head_dim=head_dim, intermediate=f.int_("intermediate_size", hi=_INTER), vocab=f.int_("vocab_size", hi=_VOCAB),
        mlp="plain", qkv_bias=bias, o_bias=bias, mlp_bias=True, norm_bias=True,
        lm_head="tied" if f.bool_("tie_word_embeddings", False) else "separate",
    )
    return _Parsed(shape, family=family, max_context=f.int_("max_position_embeddings", 2048, hi=_POSITIONS))


def _opt(f: _Fields, family: str) -> _Parsed:
    hidden = f.int_("hidden_size", hi=_HIDDEN)
    heads, _, head_dim = _attention_dims(f, hidden)
    positions = f.int_("max_position_embeddings", 2048, hi=_POSITIONS)
    bias = f.bool_("enable_bias", True)
    final_norm = f.bool_("do_layer_norm_before", True) and not f.bool_("_remove_final_layer_norm", False)
    shape = TransformerShape(
        layers=f.int_("num_hidden_layers", hi=_LAYERS), hidden=hidden, heads=heads, kv_heads=heads,
        head_dim=head_dim, intermediate=f.int_("ffn_dim", hi=_INTER), vocab=f.int_("vocab_size", hi=_VOCAB),
        mlp="plain", qkv_bias=bias, o_bias=bias, mlp_bias=bias, norm_bias=True, final_norm=final_norm,
        lm_head="tied" if f.bool_("tie_word_embeddings", True) else "separate",
        position_embeddings=positions + 2,  # OPTLearnedPositionalEmbedding keeps an offset of 2
        embed_dim=f.int_("word_embed_proj_dim", hidden, hi=_HIDDEN),
    )
    return _Parsed(shape, family=family, max_context=positions)


def _bert(f: _Fields, family: str) -> _Parsed:
    hidden = f.int_("hidden_size", hi=_HIDDEN)
    heads, _, head_dim = _attention_dims(f, hidden)
    positions = f.int_("max_position_embeddings", 512, hi=_POSITIONS)
    shape = TransformerShape(
        layers=f.int_("num_hidden_layers", hi=_LAYERS), hidden=hidden, heads=heads, kv_heads=heads,
        head_dim=head_dim, intermediate=f.int_("intermediate_size", hi=_INTER), vocab=f.int_("vocab_size", hi=_VOCAB),
        mlp="plain", qkv_bias=True, o_bias=True, mlp_bias=True, norm_bias=True, final_norm=False,
        embedding_norm=True, lm_head="none", position_embeddings=positions,
        token_type_embeddings=f.int_("type_vocab_size", 2, lo=0, hi=1024), pooler=True,
    )
    return _Parsed(shape, family=family, kind="encoder", decoder=False, max_context=positions)


_PARSERS: dict[str, Callable[[_Fields, str], _Parsed]] = {
    "llama": _llama_like,
    "mistral": _llama_like,
    "mixtral": _llama_like,
    "qwen2": _llama_like,
    "qwen2_moe": _llama_like,
    "gemma": _llama_like,
    "gemma2": _llama_like,
    "phi3": _llama_like,
    "gpt2": _gpt2,
    "gptj": _gptj,
    "gpt_neox": _gpt_neox,
    "opt": _opt,
    "bert": _bert,
}
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(_PARSERS))


# ---------------------------------------------------------------------------------------------- entry points


def _safe_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")
    return name[:64].rstrip("-.") or "model"


def arch_from_config(data: Any, *, name: str, source: str, where: str = "config.json") -> ModelArch:
    """Turn an already-parsed config mapping into a :class:`ModelArch` (used for files and for presets)."""
    if not isinstance(data, dict):
        raise ModelConfigError(
            f"{where}: must be a JSON object with model_type, hidden_size, ..., got {type(data).__name__}", fix=_FIX
        )
    model_type = data.get("model_type")
    if model_type is None:
        raise ModelConfigError(f"{where}: required field 'model_type' is missing", fix=_FIX)
    if not isinstance(model_type, str) or model_type not in _PARSERS:
        shown = model_type if isinstance(model_type, str) else repr(model_type)
        raise ModelConfigError(
            f"{where}: model_type {shown[:40]!r} is not supported (supported: {', '.join(SUPPORTED_MODEL_TYPES)})",
            fix="give params: <count> (and layers / hidden_size if known) for other architectures",
        )
    fields = _Fields(data, where)
    parsed = _PARSERS[model_type](fields, model_type)
    count = count_params(parsed.shape)
    if count.total > MAX_PARAMS:
        raise ModelConfigError(
            f"{where}: the shape describes {count.total:.3e} parameters, over the {MAX_PARAMS:.0e} limit", fix=_FIX
        )
    s = parsed.shape
    return ModelArch(
        name=name,
        kind=parsed.kind,
        family=parsed.family,
        params=count.total,
        active_params=count.active,
        layers=s.layers,
        hidden_size=s.hidden,
        attention_heads=s.heads,
        kv_heads=s.kv_heads,
        head_dim=s.head_dim,
        intermediate_size=s.moe_intermediate if s.moe_layers and s.moe_intermediate else s.intermediate,
        vocab_size=s.vocab,
        max_context=parsed.max_context,
        experts=s.experts,
        experts_per_token=s.experts_per_token,
        tied_embeddings=s.lm_head == "tied",
        attention=parsed.attention,
        sliding_window=parsed.sliding_window,
        decoder=parsed.decoder,
        source=source,
    )


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not a number JSON allows")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def read_hf_config(path: str) -> ModelArch:
    """Read a Hugging Face ``config.json`` (or a model folder holding one) offline into a :class:`ModelArch`.

    The file is capped at :data:`MAX_CONFIG_BYTES`, must be a regular file (never a FIFO or device, so this
    cannot hang), strict UTF-8 JSON (no NaN/Infinity, no duplicate keys) and a JSON object.
    """
    p = Path(path)
    try:
        if p.is_dir():
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
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ModelConfigError(f"cannot read model config {path}: {e.strerror}", fix="check its permissions") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ModelConfigError(
            f"model config {label} is over the {MAX_CONFIG_BYTES:,} byte limit: not a config.json",
            fix="pass the model's config.json, not a weights or tokenizer file",
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ModelConfigError(f"model config {label} is not UTF-8 text", fix="pass the model's config.json") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise ModelConfigError(
            f"model config {label} is not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}", fix=_FIX
        ) from None
    except RecursionError:
        raise ModelConfigError(f"model config {label} is nested too deeply", fix=_FIX) from None
    except ValueError as e:
        raise ModelConfigError(f"model config {label} is not valid JSON: {e}", fix=_FIX) from None
    name_hint = data.get("_name_or_path") if isinstance(data, dict) else None
    if isinstance(name_hint, str) and name_hint.strip():
        name = _safe_name(name_hint.rstrip("/").rsplit("/", 1)[-1])
    elif p.name == "config.json" and p.parent.name:
        name = _safe_name(p.parent.name)
    else:
        name = _safe_name(p.stem)
    model_type = data.get("model_type") if isinstance(data, dict) else None
    source = f"Hugging Face {label} (model_type {model_type}); params counted from the shape"
    return arch_from_config(data, name=name, source=source, where=f"model config {label}")
