"""What the estimator derives once per model: parameter groups, KV size, FLOPs per token.

:func:`shape_of` is cached per :class:`~planner.models.arch.ModelArch` so the hot path (thousands of estimates per
recommendation) is plain float arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from planner.models.arch import LayerGroup, ModelArch

GATED_MLP_FAMILIES = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen", "gemma", "gemma2",
                                "phi3", "deepseek", "olmo", "granite", "custom", "qwen2_moe", "qwen3_moe",
                                "qwen3_next", "qwen3_vl", "qwen3_vl_moe", "gemma3", "gemma3_text", "gpt_oss",
                                "llama4", "llama4_text", "mistral3", "ministral3", "deepseek_v2", "deepseek_v3",
                                "olmo2", "cohere", "cohere2"})
"""Families whose MLP is gated (SwiGLU/GeGLU: gate, up, down = 3 matrices; Shazeer 2020). Others (gpt2, gptj,
gpt_neox, opt, bert, whisper) use a 2-matrix MLP."""


@dataclass(frozen=True, slots=True)
class Shape:
    """Parameter groups and per-token sizes of one model (element counts, not bytes)."""

    transformer: bool
    llm: bool
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    embed_params: int
    """input token embedding table (read one row per token, never streamed whole)"""
    lm_head_params: int
    """output projection as stored (0 when tied to the embedding)"""
    lm_head_math_params: int
    """output projection as computed (vocab x hidden, tied or not)"""
    body_params: int
    """every other weight (attention, MLP incl. all experts, norms)"""
    shared_body_params: int
    """body weights every token touches (all of it for dense models)"""
    expert_params: int
    """all routed experts together (0 for dense)"""
    experts: int
    experts_per_token: int
    kv_elems_per_token: int
    """K and V elements per token over all layers: 2 x layers x kv_heads x head_dim"""
    attn_dim: int
    """heads x head_dim (the width of QK^T and AV)"""
    kv_window: int | None
    active_body_params: int
    """body params used per token: shared + k/E of the experts"""
    gated: bool
    input_elems: int
    """elements of one input (non-LLM), 0 if unknown"""
    flops_per_inference: float | None
    kv_groups: tuple[KvGroup, ...] = ()
    """the decoder's layers folded by (kind, window, shards): what each kind caches and holds"""
    tower_params: int = 0
    """vision / audio tower parameters: stored, run once per image / clip, never read per decoded token"""
    native_dtype: str | None = None
    native_weight_bytes: int | None = None
    native_expert_bytes: int | None = None
    moe_layers: int = 0
    """layers with a routed mixture of experts (expert-parallel all-to-alls happen there)"""


@dataclass(frozen=True, slots=True)
class KvGroup:
    """All decoder layers of one kind, window and TP split, summed: elements cached per token over those layers,
    fixed state elements per sequence, and attention width (for FLOPs)."""

    kind: str
    window: int | None
    shards: int
    layers: int
    kv_elems_per_token: int
    state_elems: int
    attn_dim: int

    def kept(self, context: float) -> float:
        """Tokens each layer of the group keeps (and a decode step reads) at ``context`` tokens."""
        if self.kind in ("full", "mla"):
            return context
        if self.kind in ("sliding", "chunked"):
            return min(context, float(self.window or context))
        if self.kind == "cross":
            return float(self.window or 0)
        return 0.0

    @property
    def grows(self) -> bool:
        """Whether this group's cache keeps growing with the context (no window)."""
        return self.kind in ("full", "mla")


def kv_groups_of(arch: ModelArch) -> tuple[KvGroup, ...]:
    """Fold ``arch.layer_groups`` (or, for models described before them, the legacy fields) into KV groups."""
    groups: tuple[LayerGroup, ...] = arch.layer_groups
    if not groups:
        llm = arch.kind == "llm" and bool(arch.layers and arch.hidden_size) and arch.decoder
        if not llm or arch.attention == "none":
            return ()
        heads = arch.attention_heads or max(1, (arch.hidden_size or 0) // 128)
        kv = arch.kv_heads or heads
        hd = arch.head_dim or ((arch.hidden_size or 0) // heads)
        sliding = arch.attention == "sliding" and arch.sliding_window is not None
        groups = (LayerGroup(kind="sliding" if sliding else "full", count=arch.layers or 0,
                             window=arch.sliding_window if sliding else None, kv_elems_per_token=2 * kv * hd,
                             shards=kv, attn_dim=heads * hd),)
    acc: dict[tuple[str, int | None, int], list[int]] = {}
    for g in groups:
        key = (g.kind, g.window, g.shards)
        a = acc.setdefault(key, [0, 0, 0, 0])
        a[0] += g.count
        a[1] += g.count * g.kv_elems_per_token
        a[2] += g.count * g.state_elems
        a[3] += g.count * g.attn_dim
    return tuple(KvGroup(kind=k, window=w, shards=sh, layers=a[0], kv_elems_per_token=a[1], state_elems=a[2],
                         attn_dim=a[3]) for (k, w, sh), a in acc.items())

def _moe_split(arch: ModelArch) -> tuple[int, int]:
    """Split params into (shared, all experts) from ``params`` and ``active_params``.

    With E experts of size e each and k active: params = shared + E e, active = shared + k e, hence
    E e = (params - active) E / (E - k). Exact for Mixtral: (46.70 - 12.88) x 8/6 = 45.1B experts.
    """
    e, k = arch.experts, arch.experts_per_token
    if arch.expert_params is not None:
        return arch.params - arch.expert_params, arch.expert_params
    if e <= 1 or k >= e or arch.active_params >= arch.params:
        return arch.params, 0
    experts = round((arch.params - arch.active_params) * e / (e - k))
    experts = min(experts, arch.params)
    return arch.params - experts, experts


@lru_cache(maxsize=512)
def shape_of(arch: ModelArch) -> Shape:
    """Derive a :class:`Shape` from a resolved model (cached)."""
    transformer = bool(arch.layers and arch.hidden_size)
    layers = arch.layers or 0
    hidden = arch.hidden_size or 0
    heads = arch.attention_heads or (max(1, hidden // 128) if hidden else 0)
    kv_heads = arch.kv_heads or heads
    head_dim = arch.head_dim or (hidden // heads if heads else 0)
    intermediate = arch.intermediate_size or 4 * hidden
    vocab = arch.vocab_size or 0
    embed = vocab * hidden if transformer else 0
    llm = arch.kind == "llm" and transformer and arch.decoder
    lm_math = vocab * hidden if llm else 0
    lm_stored = 0 if (arch.tied_embeddings or not llm) else lm_math
    tower = arch.tower_params if llm else 0
    if embed + lm_stored + tower >= arch.params:  # a config whose vocab does not fit its params: do not split
        embed, lm_stored, tower = 0, 0, 0
    body = arch.params - embed - lm_stored - tower
    _, experts_total = _moe_split(arch)
    expert_params = min(experts_total, body)
    shared_body = body - expert_params
    e, k = max(1, arch.experts), max(1, arch.experts_per_token)
    active_body = shared_body + (expert_params * k // e if expert_params else 0)
    window = arch.sliding_window if arch.attention == "sliding" else None
    groups = kv_groups_of(arch) if (llm or arch.layer_groups) else ()
    kv = sum(g.kv_elems_per_token for g in groups if g.kind != "cross")
    input_elems = math.prod(arch.input_shape) if arch.input_shape else 0
    moe_layers = (arch.moe_layers if arch.moe_layers is not None else layers) if expert_params else 0
    return Shape(
        transformer=transformer, llm=llm, layers=layers, hidden=hidden, heads=heads, kv_heads=kv_heads,
        head_dim=head_dim, intermediate=intermediate, vocab=vocab, embed_params=embed, lm_head_params=lm_stored,
        lm_head_math_params=lm_math, body_params=body, shared_body_params=shared_body,
        expert_params=expert_params, experts=e, experts_per_token=k, kv_elems_per_token=kv,
        attn_dim=heads * head_dim, kv_window=window, active_body_params=active_body,
        gated=arch.family in GATED_MLP_FAMILIES, input_elems=input_elems,
        flops_per_inference=arch.flops_per_inference, kv_groups=groups, tower_params=tower,
        native_dtype=arch.dtype, native_weight_bytes=arch.weight_bytes, native_expert_bytes=arch.expert_weight_bytes,
        moe_layers=moe_layers,
    )


def nonllm_seq(arch: ModelArch, w: object) -> int:
    """Sequence length of one input of a non-LLM model: the workload's ``input_tokens`` for a model with attention
    (a text encoder reads that many tokens), 1 for one without (an MLP or a CNN reads one input vector or image:
    its activations do not grow with a token count, which would otherwise default to 512)."""
    if getattr(arch, "attention", "full") == "none":
        return 1
    return max(1, int(getattr(w, "input_tokens", 1)))
