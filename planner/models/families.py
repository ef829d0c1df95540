"""Each Hugging Face ``model_type`` as its ``transformers`` implementation builds it: weights and layers.

Every parser reads a config the way its ``transformers`` configuration class does (a field left out takes that
class's default; version 5.24, ``src/transformers/models/<family>/configuration_<family>.py``) and adds every
parameter the modeling code creates (``modeling_<family>.py``) to a :class:`~planner.models.tally.Tally`, by tower
and category. The decoder's layers are described one by one (:class:`~planner.models.tally.LayerPlan`): which
attention each uses and what it caches. The counts are checked against ``transformers`` itself (meta-device
instantiation) in ``tests/test_models_oracle.py``.

Families share building blocks: :func:`_decoder` (a pre-norm decoder stack: attention or another token mixer, then
a dense MLP or a mixture of experts), and the vision / audio towers (:func:`_siglip`, :func:`_qwen3_vl_vision`,
:func:`_llama4_vision`, :func:`_pixtral`, :func:`_whisper_encoder`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from planner.errors import ModelConfigError
from planner.models.tally import LayerPlan, Tally, attention_layer
from planner.specs import ModelKind

# bounds on each dimension: generous (10x the largest published model) but finite
LAYERS = 4096
HIDDEN = 262_144
HEADS = 16_384
HEAD_DIM = 4096
INTER = 4_194_304
VOCAB = 16_777_216
EXPERTS = 4096
POSITIONS = 1 << 27

FIX = "use the config.json from the model's repository unchanged, or give params: <count> instead"
_MISSING = object()


class Fields:
    """Typed, bounded access to the keys of one config (or nested sub-config), each failure one line naming it."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ModelConfigError(f"{where}: must be a JSON object, got {type(data).__name__}", fix=FIX)
        self.data: dict[str, Any] = data
        self.where = where

    def fail(self, key: str, value: Any, problem: str) -> ModelConfigError:
        shown = repr(value)
        if len(shown) > 40:
            shown = shown[:37] + "..."
        return ModelConfigError(f"{self.where}: field '{key}' = {shown}: {problem}", fix=FIX)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def _int(self, key: str, v: Any, lo: int, hi: int) -> int:
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
        return int(v)

    def int_(self, key: str, default: int | None = None, *, lo: int = 1, hi: int = 1 << 24) -> int:
        """An integer field; missing or null takes ``default`` (required when ``default`` is None)."""
        v = self.data.get(key)
        if v is None:
            if default is None:
                raise ModelConfigError(f"{self.where}: required field '{key}' is missing", fix=FIX)
            return default
        return self._int(key, v, lo, hi)

    def opt_int(self, key: str, default: int | None, *, lo: int = 1, hi: int = 1 << 27) -> int | None:
        """An integer that may be null: missing takes ``default``, an explicit null stays None (a window)."""
        v = self.data.get(key, _MISSING)
        if v is _MISSING:
            return default
        if v is None:
            return None
        return self._int(key, v, lo, hi)

    def any_int(self, keys: tuple[str, ...], default: int | None = None, *, lo: int = 1, hi: int = 1 << 24) -> int:
        for key in keys:
            if self.has(key):
                return self.int_(key, lo=lo, hi=hi)
        return self.int_(keys[0], default, lo=lo, hi=hi)

    def float_(self, key: str, default: float, *, lo: float = 0.0, hi: float = 1e6) -> float:
        v = self.data.get(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not lo <= v <= hi:
            raise self.fail(key, v, f"must be a number between {lo:g} and {hi:g}")
        return float(v)

    def bool_(self, key: str, default: bool) -> bool:
        v = self.data.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.fail(key, v, f"must be true or false, got {type(v).__name__}")
        return v

    def str_(self, key: str, default: str | None = None) -> str | None:
        v = self.data.get(key)
        if v is None:
            return default
        if not isinstance(v, str):
            raise self.fail(key, v, f"must be a string, got {type(v).__name__}")
        return v

    def int_list(self, key: str, *, hi: int = 1 << 24) -> tuple[int, ...] | None:
        v = self.data.get(key)
        if v is None:
            return None
        if not isinstance(v, list) or len(v) > 1_000_000 or any(
                isinstance(x, bool) or not isinstance(x, int) or not 0 <= x <= hi for x in v):
            raise self.fail(key, v, "must be a list of non-negative integers")
        return tuple(v)

    def str_list(self, key: str) -> tuple[str, ...] | None:
        v = self.data.get(key)
        if v is None:
            return None
        if not isinstance(v, list) or len(v) > 1_000_000 or any(not isinstance(x, str) for x in v):
            raise self.fail(key, v, "must be a list of strings")
        return tuple(v)

    def sub(self, key: str) -> Fields:
        """A nested config (``text_config``, ``vision_config`` ...); missing takes the class defaults (empty)."""
        v = self.data.get(key)
        return Fields({} if v is None else v, f"{self.where} {key}")


# ------------------------------------------------------------------------------------------------- result


@dataclass
class Parsed:
    """What a family parser found: the counted parameters, the layers, and the legacy summary fields."""

    family: str
    tally: Tally
    layers: list[LayerPlan]
    kind: ModelKind = "llm"
    decoder: bool = True
    hidden: int = 0
    heads: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    intermediate: int = 0
    vocab: int = 0
    max_context: int | None = None
    experts: int = 1
    experts_per_token: int = 1
    tied: bool = False
    image_tokens: int | None = None
    flops_per_inference: float | None = None
    input_shape: tuple[int, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ building blocks


@dataclass
class Attn:
    """One softmax-attention block as the family builds it."""

    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    v_head_dim: int | None = None
    q_bias: bool = False
    kv_bias: bool = False
    k_bias: bool | None = None  # None: as kv_bias (Whisper's k_proj has none)
    o_bias: bool = False
    q_gate: bool = False  # Qwen3-Next: q_proj also emits an output gate (2 x heads x head_dim)
    qk_norm: Literal["none", "head", "full", "head_matrix"] = "none"
    qk_norm_bias: bool = False
    sinks: bool = False  # gpt-oss: a learned sink logit per head

    def count(self, t: Tally, component: str = "text") -> None:
        h, hd = self.hidden, self.head_dim
        vd = self.v_head_dim or hd
        q_out = self.heads * hd * (2 if self.q_gate else 1)
        t.linear("attn", h, q_out, bias=self.q_bias, component=component)
        t.linear("attn", h, self.kv_heads * hd, bias=self.kv_bias if self.k_bias is None else self.k_bias,
                 component=component)
        t.linear("attn", h, self.kv_heads * vd, bias=self.kv_bias, component=component)
        t.linear("attn", self.heads * vd, h, bias=self.o_bias, component=component)
        nb = 2 if self.qk_norm_bias else 1
        if self.qk_norm == "head":
            t.add("small", 2 * hd * nb, component)
        elif self.qk_norm in ("full", "head_matrix"):  # OLMo-2: over all heads; Cohere: a (heads, head_dim) weight
            t.add("small", (self.heads + self.kv_heads) * hd * nb, component)
        if self.sinks:
            t.add("small", self.heads, component)

    def plan(self, kind: Literal["full", "sliding", "chunked", "cross"], window: int | None,
             max_context: int | None) -> LayerPlan:
        return attention_layer(kind, self.kv_heads, self.head_dim, self.v_head_dim or self.head_dim, self.heads,
                               window=window, max_context=max_context)


@dataclass
class Mlp:
    hidden: int
    gated: bool = True
    bias: bool = False

    def params(self, inter: int) -> int:
        h = self.hidden
        n = (3 if self.gated else 2) * h * inter
        return n

    def bias_params(self, inter: int) -> int:
        if not self.bias:
            return 0
        return (2 * inter + self.hidden) if self.gated else (inter + self.hidden)

    def count(self, t: Tally, inter: int, category: Literal["mlp", "shared"] = "mlp", component: str = "text") -> None:
        t.add(category, self.params(inter), component)
        t.add("small", self.bias_params(inter), component)


@dataclass
class Moe:
    """A mixture-of-experts block: router, ``experts`` routed MLPs of ``inter``, optional shared experts."""

    hidden: int
    experts: int
    top_k: int
    inter: int
    gated: bool = True
    expert_bias: bool = False  # gpt-oss: gate_up_proj_bias and down_proj_bias
    router_bias: bool = False
    shared_inter: int = 0
    shared_gate: bool = False  # Qwen2-MoE / Qwen3-Next: sigmoid gate (hidden -> 1) on the shared expert
    shared_gated: bool = True

    def count(self, t: Tally, component: str = "text") -> None:
        h = self.hidden
        t.linear("router", h, self.experts, bias=self.router_bias, component=component)
        one = (3 if self.gated else 2) * h * self.inter
        one_bias = ((2 * self.inter + h) if self.gated else (self.inter + h)) if self.expert_bias else 0
        t.add("experts", self.experts * one, component)
        t.add("expert_bias", self.experts * one_bias, component)
        t.idle += (self.experts - self.top_k) * (one + one_bias)
        t.moe_layers += 1
        if self.shared_inter:
            Mlp(h, gated=self.shared_gated).count(t, self.shared_inter, "shared", component)
        if self.shared_gate:
            t.add("small", h, component)


@dataclass
class DecoderLayer:
    mixer: Attn | Callable[[Tally], LayerPlan] | None
    plan: LayerPlan
    ffn: Mlp | Moe | None
    inter: int = 0
    norms: int = 2  # norm weight vectors of width hidden in the layer
    norm_bias: bool = False


def _decoder(t: Tally, layers: list[DecoderLayer], hidden: int) -> list[LayerPlan]:
    """Count a stack of decoder layers; return their plans."""
    plans = []
    for layer in layers:
        if isinstance(layer.mixer, Attn):
            layer.mixer.count(t)
        elif layer.mixer is not None:
            layer.mixer(t)
        if isinstance(layer.ffn, Moe):
            layer.ffn.count(t)
        elif isinstance(layer.ffn, Mlp):
            layer.ffn.count(t, layer.inter)
        t.add("small", layer.norms * hidden * (2 if layer.norm_bias else 1))
        plans.append(layer.plan)
    return plans


def _embeddings(t: Tally, vocab: int, hidden: int, tied: bool, *, final_norm: int = 1) -> None:
    t.add("embed", vocab * hidden)
    if not tied:
        t.add("lm_head", vocab * hidden)
    t.add("small", final_norm * hidden)


def _check_heads(f: Fields, heads: int, kv: int, key: str = "num_key_value_heads") -> None:
    if kv > heads or heads % kv:
        raise f.fail(key, kv, f"must divide num_attention_heads ({heads})")


def _head_dim(f: Fields, hidden: int, heads: int, default: int | None = None) -> int:
    """``head_dim`` if given, else the class default, else hidden // heads (which then must divide)."""
    if f.has("head_dim"):
        return f.int_("head_dim", hi=HEAD_DIM)
    if default is not None:
        return default
    if hidden % heads:
        raise f.fail("num_attention_heads", heads, f"must divide hidden size {hidden} (or give head_dim)")
    return hidden // heads


def _layer_types(f: Fields, n: int, default: list[str]) -> list[str]:
    types = f.str_list("layer_types")
    if types is None:
        return default
    if len(types) < n:
        raise f.fail("layer_types", list(types)[:3], f"must list at least num_hidden_layers ({n}) layer types")
    return list(types[:n])


def _top_k(f: Fields, experts: int, default: int | None = None, key: str = "num_experts_per_tok",
           experts_key: str = "num_local_experts") -> int:
    k = f.int_(key, default, hi=EXPERTS)
    if k > experts:
        raise f.fail(key, k, f"must be at most {experts_key} ({experts})")
    return k


# ------------------------------------------------------------------------------------- llama-style decoders


@dataclass(frozen=True)
class _Defaults:
    """A llama-style family's ``transformers`` configuration defaults (the fields a config may leave out)."""

    vocab: int
    hidden: int
    inter: int
    layers: int
    heads: int
    kv_heads: int | None  # None: = heads
    max_pos: int
    tied: bool = False
    head_dim: int | None = None  # None: hidden // heads
    sliding_window: int | None = None


_LLAMA_DEFAULTS: dict[str, _Defaults] = {
    # configuration_<family>.py of transformers 5.24
    "llama": _Defaults(32000, 4096, 11008, 32, 32, None, 2048),
    "mistral": _Defaults(32000, 4096, 14336, 32, 32, 8, 131072, sliding_window=4096),
    "mixtral": _Defaults(32000, 4096, 14336, 32, 32, 8, 131072),
    "qwen2": _Defaults(151936, 4096, 22016, 32, 32, None, 32768),
    "qwen2_moe": _Defaults(151936, 2048, 5632, 24, 16, None, 32768),
    "qwen3": _Defaults(151936, 4096, 22016, 32, 32, None, 32768, head_dim=128),
    "qwen3_moe": _Defaults(151936, 2048, 6144, 24, 32, 4, 32768),
    "qwen3_vl_text": _Defaults(151936, 4096, 22016, 32, 32, None, 128000, head_dim=128),
    "qwen3_vl_moe_text": _Defaults(151936, 2048, 5632, 24, 16, 16, 128000),
    "gemma": _Defaults(256000, 3072, 24576, 28, 16, 16, 8192, tied=True, head_dim=256),
    "gemma2": _Defaults(256000, 2304, 9216, 26, 8, 4, 8192, tied=True, head_dim=256, sliding_window=4096),
    "gemma3_text": _Defaults(262208, 2304, 9216, 26, 8, 4, 131072, tied=True, head_dim=256, sliding_window=4096),
    "phi3": _Defaults(32064, 3072, 8192, 32, 32, None, 4096),
    "olmo2": _Defaults(50304, 4096, 11008, 32, 32, None, 2048),
    "granite": _Defaults(32000, 4096, 11008, 32, 32, None, 2048),
    "cohere": _Defaults(256000, 8192, 22528, 40, 64, None, 8192, tied=True),
    "cohere2": _Defaults(256000, 8192, 22528, 40, 64, None, 8192, tied=True, head_dim=128, sliding_window=4096),
    "gpt_oss": _Defaults(201088, 2880, 2880, 36, 64, 8, 131072, head_dim=64, sliding_window=128),
    "llama4_text": _Defaults(202048, 5120, 8192, 48, 40, 8, 131072, head_dim=128),
    "ministral3": _Defaults(131072, 4096, 14336, 34, 32, 8, 262144, head_dim=128),
}


def _llama_like(f: Fields, family: str, *, tied_default: bool | None = None) -> Parsed:
    """llama, mistral, mixtral, qwen2(_moe), qwen3(_moe), gemma(2/3), phi3, olmo2, granite, cohere(2), gpt_oss,
    llama4_text and the text towers of Qwen3-VL: an embedding, N decoder layers (attention + dense MLP or MoE),
    a final norm and an LM head (tied or not)."""
    d = _LLAMA_DEFAULTS[family]
    hidden = f.int_("hidden_size", d.hidden, hi=HIDDEN)
    n = f.int_("num_hidden_layers", d.layers, hi=LAYERS)
    heads = f.int_("num_attention_heads", d.heads, hi=HEADS)
    kv = f.int_("num_key_value_heads", d.kv_heads or heads, hi=HEADS)
    _check_heads(f, heads, kv)
    head_dim = _head_dim(f, hidden, heads, d.head_dim)
    inter = f.int_("intermediate_size", d.inter, hi=INTER)
    vocab = f.int_("vocab_size", d.vocab, hi=VOCAB)
    max_ctx = f.int_("max_position_embeddings", d.max_pos, hi=POSITIONS)
    tied = f.bool_("tie_word_embeddings", d.tied if tied_default is None else tied_default)
    window = f.opt_int("sliding_window", d.sliding_window, lo=0, hi=POSITIONS) or None

    bias_default = family == "gpt_oss"
    attention_bias = f.bool_("attention_bias", bias_default)
    qkv_bias = family in ("qwen2", "qwen2_moe") or attention_bias
    if family == "qwen2_moe":
        qkv_bias = f.bool_("qkv_bias", True)
    o_bias = attention_bias and family not in ("qwen2", "qwen2_moe")
    qk_norm: Literal["none", "head", "full", "head_matrix"] = "none"
    if family in ("qwen3", "qwen3_moe", "qwen3_vl_text", "qwen3_vl_moe_text", "gemma3_text"):
        qk_norm = "head"
    elif family == "olmo2":
        qk_norm = "full"
    elif family == "cohere" and f.bool_("use_qk_norm", False):
        qk_norm = "head_matrix"
    attn = Attn(hidden, heads, kv, head_dim, q_bias=qkv_bias, kv_bias=qkv_bias, o_bias=o_bias, qk_norm=qk_norm,
                sinks=family == "gpt_oss")
    mlp = Mlp(hidden, gated=True, bias=f.bool_("mlp_bias", False))
    norms = {"gemma2": 4, "gemma3_text": 4, "cohere": 1, "cohere2": 1}.get(family, 2)

    # which layers slide (transformers' default layer_types per family)
    if family in ("gemma2", "gpt_oss"):
        default_types = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n)]
    elif family in ("gemma3_text", "cohere2"):
        pattern = f.int_("sliding_window_pattern", 6 if family == "gemma3_text" else 4, hi=LAYERS)
        default_types = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n)]
    elif family in ("qwen2", "qwen3"):
        use = f.bool_("use_sliding_window", False)
        mwl = f.int_("max_window_layers", 28, lo=0, hi=LAYERS)
        default_types = ["sliding_attention" if use and window and i >= mwl else "full_attention" for i in range(n)]
    elif family == "qwen2_moe":
        use = f.bool_("use_sliding_window", False)
        mwl = f.int_("max_window_layers", 28, lo=0, hi=LAYERS)
        default_types = ["sliding_attention" if use and window and (i + 1) % 2 and i < mwl else "full_attention"
                         for i in range(n)]
    elif family in ("mistral", "mixtral", "phi3", "ministral3"):
        default_types = ["sliding_attention" if window else "full_attention"] * n
    elif family == "llama4_text":
        chunk = f.opt_int("attention_chunk_size", 8192, hi=POSITIONS)
        rope = f.int_list("no_rope_layers", hi=1)
        if not rope:
            interval = f.int_("no_rope_layer_interval", 4, hi=LAYERS)
            rope = tuple(int((i + 1) % interval != 0) for i in range(n))
        if len(rope) < n:
            raise f.fail("no_rope_layers", list(rope)[:3], f"must have num_hidden_layers ({n}) entries")
        default_types = ["chunked_attention" if r and chunk is not None else "full_attention" for r in rope[:n]]
        window = chunk
    else:
        default_types = ["full_attention"] * n
    types = _layer_types(f, n, default_types)

    # which layers are MoE
    moe: Moe | None = None
    moe_at: set[int] = set()
    experts, top_k = 1, 1
    if family == "mixtral":
        experts = f.int_("num_local_experts", 8, hi=EXPERTS)
        top_k = _top_k(f, experts, 2)
        moe = Moe(hidden, experts, top_k, inter)
        moe_at = set(range(n))
    elif family in ("qwen2_moe", "qwen3_moe", "qwen3_vl_moe_text"):
        experts = f.any_int(("num_experts", "num_local_experts"), 128 if family == "qwen3_moe" else 60,
                            hi=EXPERTS, lo=0)
        default_k = {"qwen2_moe": 4, "qwen3_moe": 8, "qwen3_vl_moe_text": 4}[family]
        top_k = _top_k(f, max(experts, 1), default_k, experts_key="num_experts")
        step = f.int_("decoder_sparse_step", 1, hi=LAYERS)
        dense_only = set(f.int_list("mlp_only_layers") or ())
        default_moe_inter = {"qwen2_moe": 1408, "qwen3_moe": 768, "qwen3_vl_moe_text": 1408}[family]
        m_inter = f.int_("moe_intermediate_size", default_moe_inter, hi=INTER)
        shared = f.int_("shared_expert_intermediate_size", 5632, lo=0, hi=INTER) if family == "qwen2_moe" else 0
        moe = Moe(hidden, experts, top_k, m_inter, shared_inter=shared, shared_gate=shared > 0)
        moe_at = {i for i in range(n) if i not in dense_only and experts > 0 and (i + 1) % step == 0}
    elif family == "gpt_oss":
        experts = f.int_("num_local_experts", 128, hi=EXPERTS)
        top_k = _top_k(f, experts, 4)
        moe = Moe(hidden, experts, top_k, inter, expert_bias=True, router_bias=True)
        moe_at = set(range(n))
    elif family == "llama4_text":
        experts = f.int_("num_local_experts", 16, hi=EXPERTS)
        top_k = _top_k(f, experts, 1)
        listed = f.int_list("moe_layers", hi=LAYERS)
        step = f.int_("interleave_moe_layer_step", 1, hi=LAYERS)
        moe_at = set(listed) if listed is not None else set(range(step - 1, n, step))
        moe = Moe(hidden, experts, top_k, inter, shared_inter=inter)
        inter = f.int_("intermediate_size_mlp", 16384, hi=INTER)  # the dense layers' MLP

    t = Tally()
    layers: list[DecoderLayer] = []
    for i in range(n):
        lt = types[i]
        kind: Literal["full", "sliding", "chunked"] = (
            "sliding" if lt == "sliding_attention" else "chunked" if lt == "chunked_attention" else "full")
        if lt not in ("sliding_attention", "chunked_attention", "full_attention"):
            raise f.fail("layer_types", lt, "must be full_attention, sliding_attention or chunked_attention")
        plan = attn.plan(kind, window if kind != "full" else None, max_ctx)
        ffn: Mlp | Moe = moe if (moe is not None and i in moe_at) else mlp
        layers.append(DecoderLayer(attn, plan, ffn, inter=inter, norms=norms))
    plans = _decoder(t, layers, hidden)
    _embeddings(t, vocab, hidden, tied)
    return Parsed(family=family, tally=t, layers=plans, hidden=hidden, heads=heads, kv_heads=kv, head_dim=head_dim,
                  intermediate=moe.inter if moe is not None and moe_at else inter, vocab=vocab, max_context=max_ctx,
                  experts=experts if moe_at else 1, experts_per_token=top_k if moe_at else 1, tied=tied)


def _llama(f: Fields, family: str) -> Parsed:
    return _llama_like(f, family)


# --------------------------------------------------------------------------------------- DeepSeek (MLA)


def _deepseek(f: Fields, family: str) -> Parsed:
    """DeepSeek-V2 / V3 (and Kimi-K2, which ships as deepseek_v3): multi-head latent attention, routed +
    shared experts, the first ``first_k_dense_replace`` layers dense. The cache per token per layer is the
    compressed latent kv_lora_rank + qk_rope_head_dim (DeepSeek-V2 paper, arXiv:2405.04434, Sec. 2.1.2), the
    same on every tensor-parallel rank. The multi-token-prediction layers (num_nextn_predict_layers) are not
    built by transformers, and not counted."""
    v3 = family == "deepseek_v3"
    hidden = f.int_("hidden_size", 7168 if v3 else 4096, hi=HIDDEN)
    n = f.int_("num_hidden_layers", 61 if v3 else 32, hi=LAYERS)
    heads = f.int_("num_attention_heads", 128 if v3 else 32, hi=HEADS)
    inter = f.int_("intermediate_size", 18432 if v3 else 11008, hi=INTER)
    vocab = f.int_("vocab_size", 129280 if v3 else 102400, hi=VOCAB)
    max_ctx = f.int_("max_position_embeddings", 4096 if v3 else 2048, hi=POSITIONS)
    tied = f.bool_("tie_word_embeddings", False)
    q_lora = f.opt_int("q_lora_rank", 1536, hi=INTER)
    kv_lora = f.int_("kv_lora_rank", 512, hi=INTER)
    nope = f.int_("qk_nope_head_dim", 128, hi=HEAD_DIM)
    rope = f.int_("qk_rope_head_dim", 64, hi=HEAD_DIM)
    v_dim = f.int_("v_head_dim", 128, hi=HEAD_DIM)
    bias = f.bool_("attention_bias", False)
    experts = f.int_("n_routed_experts", 256 if v3 else 64, lo=0, hi=EXPERTS)
    top_k = _top_k(f, max(experts, 1), 8 if v3 else 6, experts_key="n_routed_experts")
    m_inter = f.int_("moe_intermediate_size", 2048 if v3 else 1407, hi=INTER)
    shared = f.int_("n_shared_experts", 1 if v3 else 2, lo=0, hi=EXPERTS)
    first_dense = f.int_("first_k_dense_replace", 3 if v3 else 0, lo=0, hi=LAYERS)
    qk_dim = nope + rope

    def mla(t: Tally) -> LayerPlan:
        if q_lora is None:
            t.linear("attn", hidden, heads * qk_dim)
        else:
            t.linear("attn", hidden, q_lora, bias=bias)
            t.add("small", q_lora)
            t.linear("attn", q_lora, heads * qk_dim)
        t.linear("attn", hidden, kv_lora + rope, bias=bias)
        t.add("small", kv_lora)
        t.linear("attn", kv_lora, heads * (nope + v_dim))
        t.linear("attn", heads * v_dim, hidden, bias=bias)
        return plan

    plan = LayerPlan(kind="mla", kv_elems_per_token=kv_lora + rope, shards=1,
                     attn_dim=heads * (qk_dim + v_dim) // 2)
    moe = Moe(hidden, experts, top_k, m_inter, shared_inter=m_inter * shared)
    mlp = Mlp(hidden)
    t = Tally()
    layers = [DecoderLayer(mla, plan, moe if (i >= first_dense and experts) else mlp, inter=inter)
              for i in range(n)]
    plans = _decoder(t, layers, hidden)
    _embeddings(t, vocab, hidden, tied)
    moe_layers = sum(1 for i in range(n) if i >= first_dense and experts)
    return Parsed(family=family, tally=t, layers=plans, hidden=hidden, heads=heads, kv_heads=1,
                  head_dim=kv_lora + rope, intermediate=m_inter if moe_layers else inter, vocab=vocab,
                  max_context=max_ctx, experts=experts if moe_layers else 1,
                  experts_per_token=top_k if moe_layers else 1, tied=tied,
                  extra={"kv_lora_rank": kv_lora, "qk_rope_head_dim": rope})


# ----------------------------------------------------------------------------------- hybrid: Qwen3-Next


def _qwen3_next(f: Fields, family: str) -> Parsed:
    """Qwen3-Next: Gated DeltaNet linear-attention layers with a gated full-attention layer every
    ``full_attention_interval`` (4), all followed by a sparse MoE with a gated shared expert. A DeltaNet layer
    keeps a fixed state per sequence: the recurrent state (value heads x key dim x value dim) and the causal
    convolution's last kernel-1 inputs (Yang et al. 2024, Gated Delta Networks, arXiv:2412.06464)."""
    hidden = f.int_("hidden_size", 2048, hi=HIDDEN)
    n = f.int_("num_hidden_layers", 48, hi=LAYERS)
    heads = f.int_("num_attention_heads", 16, hi=HEADS)
    kv = f.int_("num_key_value_heads", 2, hi=HEADS)
    _check_heads(f, heads, kv)
    head_dim = f.int_("head_dim", 256, hi=HEAD_DIM)
    inter = f.int_("intermediate_size", 5632, hi=INTER)
    vocab = f.int_("vocab_size", 151936, hi=VOCAB)
    max_ctx = f.int_("max_position_embeddings", 32768, hi=POSITIONS)
    tied = f.bool_("tie_word_embeddings", False)
    kernel = f.int_("linear_conv_kernel_dim", 4, hi=1024)
    kd = f.int_("linear_key_head_dim", 128, hi=HEAD_DIM)
    vd = f.int_("linear_value_head_dim", 128, hi=HEAD_DIM)
    nk = f.int_("linear_num_key_heads", 16, hi=HEADS)
    nv = f.int_("linear_num_value_heads", 32, hi=HEADS)
    experts = f.int_("num_experts", 512, lo=0, hi=EXPERTS)
    top_k = _top_k(f, max(experts, 1), 10, experts_key="num_experts")
    m_inter = f.int_("moe_intermediate_size", 512, hi=INTER)
    s_inter = f.int_("shared_expert_intermediate_size", 512, lo=0, hi=INTER)
    step = f.int_("decoder_sparse_step", 1, hi=LAYERS)
    dense_only = set(f.int_list("mlp_only_layers") or ())
    interval = f.int_("full_attention_interval", 4, hi=LAYERS)
    types = _layer_types(f, n, ["linear_attention" if (i + 1) % interval else "full_attention" for i in range(n)])
    attn = Attn(hidden, heads, kv, head_dim, q_gate=True, qk_norm="head", o_bias=False)
    key_dim, value_dim = nk * kd, nv * vd
    conv_dim = 2 * key_dim + value_dim

    def gdn(t: Tally) -> LayerPlan:
        t.add("small", conv_dim * kernel)  # depthwise conv1d, no bias
        t.linear("mixer", hidden, 2 * key_dim + 2 * value_dim)  # in_proj_qkvz
        t.linear("mixer", hidden, 2 * nv)  # in_proj_ba
        t.add("small", 2 * nv + vd)  # dt_bias, A_log, gated RMSNorm over the value head dim
        t.linear("mixer", value_dim, hidden)  # out_proj
        return gdn_plan

    gdn_plan = LayerPlan(kind="linear", state_elems=nv * kd * vd + conv_dim * (kernel - 1), shards=nv,
                         attn_dim=0)
    moe = Moe(hidden, experts, top_k, m_inter, shared_inter=s_inter, shared_gate=s_inter > 0)
    mlp = Mlp(hidden)
    t = Tally()
    layers = []
    for i in range(n):
        is_moe = i not in dense_only and experts > 0 and (i + 1) % step == 0
        if types[i] == "linear_attention":
            layers.append(DecoderLayer(gdn, gdn_plan, moe if is_moe else mlp, inter=inter))
        elif types[i] == "full_attention":
            layers.append(DecoderLayer(attn, attn.plan("full", None, max_ctx), moe if is_moe else mlp, inter=inter))
        else:
            raise f.fail("layer_types", types[i], "must be linear_attention or full_attention")
    plans = _decoder(t, layers, hidden)
    _embeddings(t, vocab, hidden, tied)
    return Parsed(family=family, tally=t, layers=plans, hidden=hidden, heads=heads, kv_heads=kv, head_dim=head_dim,
                  intermediate=m_inter, vocab=vocab, max_context=max_ctx, experts=experts, experts_per_token=top_k,
                  tied=tied)


# ---------------------------------------------------------------------------------- hybrid: Nemotron-H


def _nemotron_h(f: Fields, family: str) -> Parsed:
    """Nemotron-H: a hybrid of Mamba-2 (M), attention (*), MLP (-) and MoE (E) blocks, each one norm + one mixer,
    laid out by ``hybrid_override_pattern`` (or ``layers_block_type``). A Mamba-2 block keeps a fixed state per
    sequence: heads x head_dim x ssm_state_size, plus the convolution's last conv_kernel - 1 inputs over
    intermediate + 2 x n_groups x ssm_state_size channels (Dao & Gu 2024, Mamba-2, arXiv:2405.21060)."""
    hidden = f.int_("hidden_size", 4096, hi=HIDDEN)
    pattern = f.str_("hybrid_override_pattern")
    mapping = {"M": "linear_attention", "E": "moe", "*": "full_attention", "-": "mlp"}
    if pattern is not None:
        bad = sorted(set(pattern) - set(mapping))
        if bad or not pattern or len(pattern) > LAYERS:
            raise f.fail("hybrid_override_pattern", pattern, "must be a string of M, E, * and - (one per layer)")
        types = [mapping[c] for c in pattern]
    else:
        listed = f.str_list("layers_block_type") or f.str_list("layer_types")
        types = list(listed) if listed else ["linear_attention", "moe", "full_attention", "mlp"]
    heads = f.int_("num_attention_heads", 32, hi=HEADS)
    kv = f.int_("num_key_value_heads", 8, hi=HEADS)
    _check_heads(f, heads, kv)
    head_dim = f.any_int(("head_dim", "attention_head_dim"), 128, hi=HEAD_DIM)
    inter = f.int_("intermediate_size", 21504, hi=INTER)
    vocab = f.int_("vocab_size", 131072, hi=VOCAB)
    max_ctx = f.int_("max_position_embeddings", 4096, hi=POSITIONS)
    tied = f.bool_("tie_word_embeddings", False)
    window = f.opt_int("sliding_window", None, hi=POSITIONS)
    state = f.int_("ssm_state_size", 128, hi=1 << 16)
    m_heads = f.int_("mamba_num_heads", 128, hi=HEADS)
    m_hd = f.int_("mamba_head_dim", 64, hi=HEAD_DIM)
    groups = f.int_("n_groups", 8, hi=HEADS)
    kernel = f.int_("conv_kernel", 4, hi=1024)
    use_bias = f.bool_("use_bias", False)
    conv_bias = f.bool_("use_conv_bias", True)
    mlp_bias = f.bool_("mlp_bias", False)
    attn = Attn(hidden, heads, kv, head_dim, q_bias=f.bool_("attention_bias", False),
                kv_bias=f.bool_("attention_bias", False), o_bias=f.bool_("attention_bias", False))
    m_inter = m_heads * m_hd
    conv_dim = m_inter + 2 * groups * state

    def mamba(t: Tally) -> LayerPlan:
        t.linear("mixer", hidden, m_inter + conv_dim + m_heads, bias=use_bias)
        t.add("small", conv_dim * kernel + (conv_dim if conv_bias else 0))
        t.add("small", 3 * m_heads + m_inter)  # dt_bias, A_log, D; gated RMSNorm
        t.linear("mixer", m_inter, hidden, bias=use_bias)
        return ssm_plan

    ssm_plan = LayerPlan(kind="ssm", state_elems=m_heads * m_hd * state + conv_dim * (kernel - 1), shards=m_heads)
    experts = f.int_("n_routed_experts", 8, lo=0, hi=EXPERTS)
    top_k = _top_k(f, max(experts, 1), 2, experts_key="n_routed_experts")
    moe = Moe(hidden, experts, top_k, f.int_("moe_intermediate_size", 7688, hi=INTER), gated=False,
              shared_inter=f.int_("moe_shared_expert_intermediate_size", 7688, lo=0, hi=INTER), shared_gated=False)
    mlp = Mlp(hidden, gated=False, bias=mlp_bias)
    t = Tally()
    layers = []
    for lt in types:
        if lt == "linear_attention":
            layers.append(DecoderLayer(mamba, ssm_plan, None, norms=1))
        elif lt == "full_attention":
            kind: Literal["full", "sliding"] = "sliding" if window else "full"
            layers.append(DecoderLayer(attn, attn.plan(kind, window, max_ctx), None, norms=1))
        elif lt == "mlp":
            layers.append(DecoderLayer(None, LayerPlan(kind="none"), mlp, inter=inter, norms=1))
        elif lt == "moe":
            layers.append(DecoderLayer(None, LayerPlan(kind="none"), moe, norms=1))
        else:
            raise f.fail("layers_block_type", lt, "must be linear_attention, full_attention, mlp or moe")
    plans = _decoder(t, layers, hidden)
    _embeddings(t, vocab, hidden, tied)
    has_moe = "moe" in types
    return Parsed(family=family, tally=t, layers=plans, hidden=hidden, heads=heads, kv_heads=kv, head_dim=head_dim,
                  intermediate=moe.inter if has_moe else inter, vocab=vocab, max_context=max_ctx,
                  experts=experts if has_moe else 1, experts_per_token=top_k if has_moe else 1, tied=tied)


# -------------------------------------------------------------------------------------- vision towers


def _siglip(t: Tally, v: Fields, component: str = "vision") -> tuple[int, int]:
    """SigLIP vision tower (Gemma-3): conv patch embedding, learned positions, pre-LN encoder layers, post-LN,
    optional attention-pooling head. Returns (hidden, patches)."""
    h = v.int_("hidden_size", 768, hi=HIDDEN)
    inter = v.int_("intermediate_size", 3072, hi=INTER)
    n = v.int_("num_hidden_layers", 12, hi=LAYERS)
    heads = v.int_("num_attention_heads", 12, hi=HEADS)
    ch = v.int_("num_channels", 3, hi=64)
    img = v.int_("image_size", 224, hi=1 << 16)
    patch = v.int_("patch_size", 16, hi=1 << 12)
    patches = (img // patch) ** 2
    t.add("small", ch * patch * patch * h + h + patches * h, component)
    for _ in range(n):
        Attn(h, heads, heads, h // heads, q_bias=True, kv_bias=True, o_bias=True).count(t, component)
        Mlp(h, gated=False, bias=True).count(t, inter, "mlp", component)
        t.add("small", 4 * h, component)
    t.add("small", 2 * h, component)
    if v.bool_("vision_use_head", True):
        # SiglipMultiheadAttentionPoolingHead: probe, nn.MultiheadAttention (in_proj 3h x h + bias, out_proj), LN,
        # MLP
        t.add("small", h + 3 * h * h + 3 * h + h * h + h + 2 * h, component)
        Mlp(h, gated=False, bias=True).count(t, inter, "mlp", component)
    return h, patches


def _gemma3(f: Fields, family: str) -> Parsed:
    """Gemma-3 (multimodal): the gemma3_text decoder + a SigLIP tower + a projector (vision hidden -> text
    hidden, and an RMSNorm); mm_tokens_per_image (256) tokens per image."""
    text = _llama_like(f.sub("text_config"), "gemma3_text", tied_default=f.bool_("tie_word_embeddings", True))
    t = text.tally
    vh, _ = _siglip(t, f.sub("vision_config"))
    t.add("small", vh * text.hidden + vh, "vision")
    text.family = family
    text.image_tokens = f.int_("mm_tokens_per_image", 256, hi=1 << 20)
    return text


def _qwen3_vl_vision(t: Tally, v: Fields, moe: bool) -> int:
    """Qwen3-VL vision tower: Conv3d patch embedding, learned positions, LN encoder blocks, a patch merger and
    the deepstack mergers. Returns tokens per image at the resolution its position table covers."""
    depth = v.any_int(("depth", "num_hidden_layers"), 27, hi=LAYERS)
    h = v.int_("hidden_size", 1152, hi=HIDDEN)
    inter = v.int_("intermediate_size", 4304, hi=INTER)
    v.any_int(("num_heads", "num_attention_heads"), 16, hi=HEADS)  # validated; the fused qkv does not depend on it
    ch = v.int_("in_channels", 3, hi=64)
    patch = v.int_("patch_size", 16, hi=1 << 12)
    tps = v.int_("temporal_patch_size", 2, hi=64)
    merge = v.int_("spatial_merge_size", 2, hi=64)
    out = v.int_("out_hidden_size", 3584, hi=HIDDEN)
    positions = v.int_("num_position_embeddings", 2304, hi=1 << 24)
    deep = v.int_list("deepstack_visual_indexes", hi=LAYERS)
    deepstack = len(deep) if deep is not None else 3
    t.add("small", ch * tps * patch * patch * h + h + positions * h, "vision")
    for _ in range(depth):
        t.add("small", 4 * h, "vision")
        t.linear("attn", h, 3 * h, bias=True, component="vision")
        t.linear("attn", h, h, bias=True, component="vision")
        Mlp(h, gated=False, bias=True).count(t, inter, "mlp", "vision")
    merged = h * merge * merge

    def merger(post_norm: bool) -> None:
        t.add("small", 2 * (merged if post_norm else h), "vision")
        t.linear("mlp", merged, merged, bias=True, component="vision")
        t.linear("mlp", merged, out, bias=True, component="vision")

    merger(False)
    for _ in range(deepstack):
        merger(True)
    return positions // (merge * merge)


def _qwen3_vl(f: Fields, family: str) -> Parsed:
    """Qwen3-VL (dense or MoE text tower) with its vision tower."""
    moe = family == "qwen3_vl_moe"
    text = _llama_like(f.sub("text_config"), "qwen3_vl_moe_text" if moe else "qwen3_vl_text",
                       tied_default=f.bool_("tie_word_embeddings", False))
    text.image_tokens = _qwen3_vl_vision(text.tally, f.sub("vision_config"), moe)
    text.family = family
    return text


def _llama4_vision(t: Tally, v: Fields, text_hidden: int) -> int:
    """Llama-4 vision tower (unfold-linear patches, class token, positions, 34 LN encoder layers, pixel-shuffle
    MLP adapter) and the multimodal projector. Returns tokens per image tile."""
    h = v.int_("hidden_size", 768, hi=HIDDEN)
    n = v.int_("num_hidden_layers", 34, hi=LAYERS)
    heads = v.int_("num_attention_heads", 16, hi=HEADS)
    ch = v.int_("num_channels", 3, hi=64)
    inter = v.int_("intermediate_size", 5632, hi=INTER)
    out_dim = v.int_("vision_output_dim", 7680, hi=HIDDEN)
    img = v.int_("image_size", 448, hi=1 << 16)
    patch = v.int_("patch_size", 14, hi=1 << 12)
    shuffle = v.float_("pixel_shuffle_ratio", 0.5, lo=1e-3, hi=1.0)
    p_in = v.int_("projector_input_dim", 4096, hi=HIDDEN)
    p_out = v.int_("projector_output_dim", 4096, hi=HIDDEN)
    patches = (img // patch) ** 2
    t.linear("small", ch * patch * patch, h, component="vision")
    t.add("small", h + (patches + 1) * h + 4 * h, "vision")  # class token, positions, pre/post LayerNorm
    for _ in range(n):
        Attn(h, heads, heads, h // heads, q_bias=True, kv_bias=True, o_bias=True).count(t, "vision")
        Mlp(h, gated=False, bias=True).count(t, inter, "mlp", "vision")
        t.add("small", 4 * h, "vision")
    t.linear("mlp", inter, p_in, component="vision")  # Llama4VisionMLP2.fc1 (as transformers builds it)
    t.linear("mlp", p_out, p_out, component="vision")
    t.linear("mlp", out_dim, text_hidden, bias=v.bool_("multi_modal_projector_bias", False), component="vision")
    return int(patches * shuffle * shuffle)


def _llama4(f: Fields, family: str) -> Parsed:
    """Llama-4 Scout / Maverick: llama4_text (chunked local attention on RoPE layers, global NoPE layers every
    4th, MoE layers every interleave_moe_layer_step with a shared expert) + the vision tower."""
    text = _llama_like(f.sub("text_config"), "llama4_text", tied_default=f.bool_("tie_word_embeddings", False))
    text.image_tokens = _llama4_vision(text.tally, f.sub("vision_config"), text.hidden)
    text.family = family
    return text


def _pixtral(t: Tally, v: Fields) -> tuple[int, int, int]:
    """Pixtral vision tower (Mistral-3): conv patches (no bias), RMSNorm, gated-MLP encoder layers without biases.
    Returns (hidden, image size, patch)."""
    h = v.int_("hidden_size", 1024, hi=HIDDEN)
    inter = v.int_("intermediate_size", 4096, hi=INTER)
    n = v.int_("num_hidden_layers", 24, hi=LAYERS)
    heads = v.int_("num_attention_heads", 16, hi=HEADS)
    hd = v.int_("head_dim", h // heads, hi=HEAD_DIM)
    ch = v.int_("num_channels", 3, hi=64)
    img = v.int_("image_size", 1024, hi=1 << 16)
    patch = v.int_("patch_size", 16, hi=1 << 12)
    t.add("small", ch * patch * patch * h + h, "vision")
    for _ in range(n):
        Attn(h, heads, heads, hd).count(t, "vision")
        Mlp(h).count(t, inter, "mlp", "vision")
        t.add("small", 2 * h, "vision")
    return h, img, patch


_MISTRAL3_TEXT = {"head_dim": 128, "hidden_size": 5120, "intermediate_size": 32768, "max_position_embeddings": 131072,
                  "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 40,
                  "num_key_value_heads": 8, "sliding_window": None, "vocab_size": 131072}
_MISTRAL3_VISION = {"intermediate_size": 4096, "hidden_size": 1024, "patch_size": 14, "image_size": 1540,
                    "num_hidden_layers": 24, "num_attention_heads": 16, "head_dim": 64}
"""Mistral3Config.sub_configs_defaults (Mistral-Small-3.1): used when a sub-config is absent altogether."""


def _mistral3(f: Fields, family: str) -> Parsed:
    """Mistral-Small-3.x (mistral3): a mistral text decoder, a Pixtral tower and the patch-merger projector.
    Tokens per image at the tower's full size: (image / patch / merge)^2 plus one [IMG_BREAK] per row."""
    if f.data.get("text_config") is None:
        f = Fields({**f.data, "text_config": dict(_MISTRAL3_TEXT)}, f.where)
    if f.data.get("vision_config") is None:
        f = Fields({**f.data, "vision_config": dict(_MISTRAL3_VISION)}, f.where)
    tf = f.sub("text_config")
    sub_type = tf.str_("model_type", "mistral")
    text = _llama_like(tf, sub_type if sub_type in _LLAMA_DEFAULTS else "mistral",
                       tied_default=f.bool_("tie_word_embeddings", True))
    t = text.tally
    vh, img, patch = _pixtral(t, f.sub("vision_config"))
    merge = f.int_("spatial_merge_size", 2, hi=64)
    layers = f.data.get("vision_feature_layer", -1)
    feats = len(layers) if isinstance(layers, list) else 1
    pbias = f.bool_("multimodal_projector_bias", False)
    t.add("small", vh, "vision")  # projector RMSNorm
    t.linear("mlp", vh * merge * merge, vh, component="vision")  # patch merger
    t.linear("mlp", vh * feats, text.hidden, bias=pbias, component="vision")
    t.linear("mlp", text.hidden, text.hidden, bias=pbias, component="vision")
    side = img // patch // merge
    text.image_tokens = side * side + side
    text.family = family
    return text


# --------------------------------------------------------------------------------------- encoders


def _bert(f: Fields, family: str) -> Parsed:
    """BERT-style encoders (bert, roberta, xlm-roberta): word + position + token-type embeddings with a
    LayerNorm, post-LN encoder layers with biases everywhere, a pooler (BertModel)."""
    hidden = f.int_("hidden_size", 768, hi=HIDDEN)
    heads = f.int_("num_attention_heads", 12, hi=HEADS)
    if hidden % heads:
        raise f.fail("num_attention_heads", heads, f"must divide hidden size {hidden} (or give head_dim)")
    n = f.int_("num_hidden_layers", 12, hi=LAYERS)
    inter = f.int_("intermediate_size", 3072, hi=INTER)
    vocab = f.int_("vocab_size", {"roberta": 50265}.get(family, 30522), hi=VOCAB)
    positions = f.int_("max_position_embeddings", 512, hi=POSITIONS)
    types = f.int_("type_vocab_size", 2, lo=0, hi=1024)
    t = Tally()
    t.add("embed", vocab * hidden)
    t.add("small", positions * hidden + types * hidden + 2 * hidden)
    for _ in range(n):
        Attn(hidden, heads, heads, hidden // heads, q_bias=True, kv_bias=True, o_bias=True).count(t)
        Mlp(hidden, gated=False, bias=True).count(t, inter)
        t.add("small", 4 * hidden)
    t.linear("mlp", hidden, hidden, bias=True)  # pooler
    return Parsed(family=family, tally=t, layers=[LayerPlan(kind="none")] * n, kind="encoder", decoder=False,
                  hidden=hidden, heads=heads, kv_heads=heads, head_dim=hidden // heads, intermediate=inter,
                  vocab=vocab, max_context=positions)


def _distilbert(f: Fields, family: str) -> Parsed:
    """DistilBERT: word + position embeddings and a LayerNorm, post-LN layers, no token types, no pooler."""
    hidden = f.int_("dim", 768, hi=HIDDEN)
    heads = f.int_("n_heads", 12, hi=HEADS)
    if hidden % heads:
        raise f.fail("n_heads", heads, f"must divide dim {hidden}")
    n = f.int_("n_layers", 6, hi=LAYERS)
    inter = f.int_("hidden_dim", 3072, hi=INTER)
    vocab = f.int_("vocab_size", 30522, hi=VOCAB)
    positions = f.int_("max_position_embeddings", 512, hi=POSITIONS)
    t = Tally()
    t.add("embed", vocab * hidden)
    t.add("small", positions * hidden + 2 * hidden)
    for _ in range(n):
        Attn(hidden, heads, heads, hidden // heads, q_bias=True, kv_bias=True, o_bias=True).count(t)
        Mlp(hidden, gated=False, bias=True).count(t, inter)
        t.add("small", 4 * hidden)
    return Parsed(family=family, tally=t, layers=[LayerPlan(kind="none")] * n, kind="encoder", decoder=False,
                  hidden=hidden, heads=heads, kv_heads=heads, head_dim=hidden // heads, intermediate=inter,
                  vocab=vocab, max_context=positions)


def _vit(f: Fields, family: str) -> Parsed:
    """ViT (ViTForImageClassification): conv patch embedding, class token, learned positions, pre-LN encoder
    layers, a final LayerNorm and a linear classifier over the labels (id2label). FLOPs per image: 2 x the
    encoder weights x tokens + attention 4 x layers x tokens^2 x hidden + the patch convolution and classifier
    (Dosovitskiy et al. 2021, arXiv:2010.11929; 2 FLOPs per multiply-accumulate)."""
    hidden = f.int_("hidden_size", 768, hi=HIDDEN)
    heads = f.int_("num_attention_heads", 12, hi=HEADS)
    if hidden % heads:
        raise f.fail("num_attention_heads", heads, f"must divide hidden size {hidden}")
    n = f.int_("num_hidden_layers", 12, hi=LAYERS)
    inter = f.int_("intermediate_size", 3072, hi=INTER)
    img = f.int_("image_size", 224, hi=1 << 16)
    patch = f.int_("patch_size", 16, hi=1 << 12)
    ch = f.int_("num_channels", 3, hi=64)
    labels = f.data.get("id2label")
    n_labels = len(labels) if isinstance(labels, dict) and labels else f.int_("num_labels", 2, hi=1 << 24)
    patches = (img // patch) ** 2
    t = Tally()
    conv = ch * patch * patch * hidden
    t.add("small", hidden + (patches + 1) * hidden + conv + hidden)
    layer = Tally()
    for _ in range(n):
        Attn(hidden, heads, heads, hidden // heads, q_bias=f.bool_("qkv_bias", True),
             kv_bias=f.bool_("qkv_bias", True), o_bias=True).count(layer)
        Mlp(hidden, gated=False, bias=True).count(layer, inter)
        layer.add("small", 4 * hidden)
    for key, v in layer.counts.items():
        t.counts[key] += v
    t.add("small", 2 * hidden)
    t.linear("mlp", hidden, n_labels, bias=True)
    tokens = patches + 1
    flops = 2.0 * layer.total * tokens + 4.0 * n * tokens * tokens * hidden + 2.0 * conv * patches \
        + 2.0 * hidden * n_labels
    return Parsed(family=family, tally=t, layers=[LayerPlan(kind="none")] * n, kind="vision", decoder=False,
                  hidden=hidden, heads=heads, kv_heads=heads, head_dim=hidden // heads, intermediate=inter,
                  vocab=0, max_context=None, flops_per_inference=flops, input_shape=(ch, img, img))


# ---------------------------------------------------------------------------------------- Whisper


def _whisper(f: Fields, family: str) -> Parsed:
    """Whisper (WhisperForConditionalGeneration): a conv + transformer audio encoder that runs once per request
    over max_source_positions (1500) frames, and a text decoder whose layers cache their own K/V per token plus
    the cross-attention K/V of the 1500 encoder positions, once per request (Radford et al. 2022,
    arXiv:2212.04356). The output projection is tied to the decoder embedding. FLOPs per 30 s window: the encoder
    (2 x weights x 1500 + attention) and about 100 decoded tokens (speech runs ~150 words a minute, ~75 words
    per 30 s window, ~1.3 tokens a word)."""
    d = f.int_("d_model", 384, hi=HIDDEN)
    mels = f.int_("num_mel_bins", 80, hi=4096)
    el = f.int_("encoder_layers", 4, hi=LAYERS)
    dl = f.int_("decoder_layers", 4, hi=LAYERS)
    eh = f.int_("encoder_attention_heads", 6, hi=HEADS)
    dh = f.int_("decoder_attention_heads", 6, hi=HEADS)
    eff = f.int_("encoder_ffn_dim", 1536, hi=INTER)
    dff = f.int_("decoder_ffn_dim", 1536, hi=INTER)
    vocab = f.int_("vocab_size", 51865, hi=VOCAB)
    src = f.int_("max_source_positions", 1500, hi=POSITIONS)
    tgt = f.int_("max_target_positions", 448, hi=POSITIONS)
    for heads, key in ((eh, "encoder_attention_heads"), (dh, "decoder_attention_heads")):
        if d % heads:
            raise f.fail(key, heads, f"must divide d_model {d}")
    t = Tally()
    enc = Tally()
    enc.add("small", mels * d * 3 + d + d * d * 3 + d + src * d)
    for _ in range(el):
        Attn(d, eh, eh, d // eh, q_bias=True, kv_bias=True, k_bias=False, o_bias=True).count(enc, "audio")
        Mlp(d, gated=False, bias=True).count(enc, eff, "mlp", "audio")
        enc.add("small", 4 * d, "audio")
    enc.add("small", 2 * d, "audio")
    for (_, cat), v in enc.counts.items():
        t.counts[("audio", cat)] += v
    self_attn = Attn(d, dh, dh, d // dh, q_bias=True, kv_bias=True, k_bias=False, o_bias=True)
    t.add("embed", vocab * d)
    t.add("small", tgt * d)
    plans: list[LayerPlan] = []
    for _ in range(dl):
        self_attn.count(t)
        self_attn.count(t)  # encoder_attn, same shape
        Mlp(d, gated=False, bias=True).count(t, dff)
        t.add("small", 6 * d)
        plans.append(self_attn.plan("full", None, None))
    plans += [self_attn.plan("cross", src, None)] * dl
    t.add("small", 2 * d)
    enc_layer = (enc.total - (mels * d * 3 + d + d * d * 3 + d + src * d)) / max(el, 1)
    dec_layer = (t.by_component()["text"] - vocab * d - tgt * d) / max(dl, 1)
    decoded = 100
    flops = (2.0 * (mels * d * 3 * 3000 + d * d * 3 * src) + 2.0 * enc_layer * el * src + 4.0 * el * src * src * d
             + 2.0 * (src * dl * 2 * d * d)  # cross-attention K/V projections, once
             + decoded * (2.0 * dec_layer * dl + 2.0 * vocab * d + 4.0 * dl * (src + decoded / 2) * d))
    return Parsed(family=family, tally=t, layers=plans, kind="audio", decoder=True, hidden=d, heads=dh,
                  kv_heads=dh, head_dim=d // dh, intermediate=dff, vocab=vocab, max_context=tgt, tied=True,
                  flops_per_inference=flops, input_shape=(mels, 2 * src),
                  extra={"decoder_layers": dl, "encoder_positions": src})


# ------------------------------------------------------------------------- classic decoders (kept exact)


def _gpt2(f: Fields, family: str) -> Parsed:
    hidden = f.int_("n_embd", 768, hi=HIDDEN)
    n = f.int_("n_layer", 12, hi=LAYERS)
    heads = f.int_("n_head", 12, hi=HEADS)
    if hidden % heads:
        raise f.fail("n_head", heads, f"must divide n_embd ({hidden})")
    positions = f.int_("n_positions", 1024, hi=POSITIONS)
    inter = f.int_("n_inner", 4 * hidden, hi=INTER)
    vocab = f.int_("vocab_size", 50257, hi=VOCAB)
    tied = f.bool_("tie_word_embeddings", True)
    t = Tally()
    attn = Attn(hidden, heads, heads, hidden // heads, q_bias=True, kv_bias=True, o_bias=True)
    for _ in range(n):
        attn.count(t)
        Mlp(hidden, gated=False, bias=True).count(t, inter)
        t.add("small", 4 * hidden)
    t.add("small", positions * hidden + 2 * hidden)
    t.add("embed", vocab * hidden)
    if not tied:
        t.add("lm_head", vocab * hidden)
    return Parsed(family=family, tally=t, layers=[attn.plan("full", None, None)] * n, hidden=hidden, heads=heads,
                  kv_heads=heads, head_dim=hidden // heads, intermediate=inter, vocab=vocab, max_context=positions,
                  tied=tied)


def _gptj(f: Fields, family: str) -> Parsed:
    hidden = f.int_("n_embd", 4096, hi=HIDDEN)
    heads = f.int_("n_head", 16, hi=HEADS)
    if hidden % heads:
        raise f.fail("n_head", heads, f"must divide n_embd ({hidden})")
    n = f.int_("n_layer", 28, hi=LAYERS)
    inter = f.int_("n_inner", 4 * hidden, hi=INTER)
    vocab = f.int_("vocab_size", 50400, hi=VOCAB)
    tied = f.bool_("tie_word_embeddings", False)
    t = Tally()
    attn = Attn(hidden, heads, heads, hidden // heads)
    for _ in range(n):
        attn.count(t)
        Mlp(hidden, gated=False, bias=True).count(t, inter)
        t.add("small", 2 * hidden)
    t.add("small", 2 * hidden)
    t.add("embed", vocab * hidden)
    if not tied:
        t.add("lm_head", vocab * hidden)
        t.add("small", vocab)
    return Parsed(family=family, tally=t, layers=[attn.plan("full", None, None)] * n, hidden=hidden, heads=heads,
                  kv_heads=heads, head_dim=hidden // heads, intermediate=inter, vocab=vocab,
                  max_context=f.int_("n_positions", 2048, hi=POSITIONS), tied=tied)


def _gpt_neox(f: Fields, family: str) -> Parsed:
    hidden = f.int_("hidden_size", 6144, hi=HIDDEN)
    heads = f.int_("num_attention_heads", 64, hi=HEADS)
    head_dim = _head_dim(f, hidden, heads)
    n = f.int_("num_hidden_layers", 44, hi=LAYERS)
    inter = f.int_("intermediate_size", 24576, hi=INTER)
    vocab = f.int_("vocab_size", 50432, hi=VOCAB)
    bias = f.bool_("attention_bias", True)
    tied = f.bool_("tie_word_embeddings", False)
    t = Tally()
    attn = Attn(hidden, heads, heads, head_dim, q_bias=bias, kv_bias=bias, o_bias=bias)
    for _ in range(n):
        attn.count(t)
        Mlp(hidden, gated=False, bias=True).count(t, inter)
        t.add("small", 4 * hidden)
    t.add("small", 2 * hidden)
    t.add("embed", vocab * hidden)
    if not tied:
        t.add("lm_head", vocab * hidden)
    return Parsed(family=family, tally=t, layers=[attn.plan("full", None, None)] * n, hidden=hidden, heads=heads,
                  kv_heads=heads, head_dim=head_dim, intermediate=inter, vocab=vocab,
                  max_context=f.int_("max_position_embeddings", 2048, hi=POSITIONS), tied=tied)


def _opt(f: Fields, family: str) -> Parsed:
    hidden = f.int_("hidden_size", 768, hi=HIDDEN)
    heads = f.int_("num_attention_heads", 12, hi=HEADS)
    head_dim = _head_dim(f, hidden, heads)
    n = f.int_("num_hidden_layers", 12, hi=LAYERS)
    inter = f.int_("ffn_dim", 3072, hi=INTER)
    vocab = f.int_("vocab_size", 50272, hi=VOCAB)
    positions = f.int_("max_position_embeddings", 2048, hi=POSITIONS)
    bias = f.bool_("enable_bias", True)
    final_norm = f.bool_("do_layer_norm_before", True) and not f.bool_("_remove_final_layer_norm", False)
    tied = f.bool_("tie_word_embeddings", True)
    embed_dim = f.int_("word_embed_proj_dim", hidden, hi=HIDDEN)
    t = Tally()
    attn = Attn(hidden, heads, heads, head_dim, q_bias=bias, kv_bias=bias, o_bias=bias)
    for _ in range(n):
        attn.count(t)
        Mlp(hidden, gated=False, bias=bias).count(t, inter)
        t.add("small", 4 * hidden)
    t.add("embed", vocab * embed_dim)
    t.add("small", (positions + 2) * hidden + (2 * hidden if final_norm else 0))
    if embed_dim != hidden:
        t.add("small", 2 * embed_dim * hidden)
    if not tied:
        t.add("lm_head", vocab * embed_dim)
    return Parsed(family=family, tally=t, layers=[attn.plan("full", None, None)] * n, hidden=hidden, heads=heads,
                  kv_heads=heads, head_dim=head_dim, intermediate=inter, vocab=vocab, max_context=positions,
                  tied=tied)


PARSERS: dict[str, Callable[[Fields, str], Parsed]] = {
    **{k: _llama for k in ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma",
                           "gemma2", "phi3", "olmo2", "granite", "cohere", "cohere2", "gpt_oss", "ministral3")},
    "gemma3_text": _llama,
    "llama4_text": _llama,
    "qwen3_vl_text": _llama,
    "qwen3_vl_moe_text": _llama,
    "gemma3": _gemma3,
    "llama4": _llama4,
    "qwen3_vl": _qwen3_vl,
    "qwen3_vl_moe": _qwen3_vl,
    "mistral3": _mistral3,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "kimi_k2": _deepseek,
    "qwen3_next": _qwen3_next,
    "nemotron_h": _nemotron_h,
    "whisper": _whisper,
    "vit": _vit,
    "bert": _bert,
    "roberta": _bert,
    "xlm-roberta": _bert,
    "distilbert": _distilbert,
    "gpt2": _gpt2,
    "gptj": _gptj,
    "gpt_neox": _gpt_neox,
    "opt": _opt,
}
