"""Counting a model's parameters by tower and by kind, and describing its layers one by one.

A family parser (:mod:`planner.models.families`) walks the modules the Hugging Face ``transformers`` implementation
of that family creates and adds each weight here: :class:`Tally` keeps the count per (tower, category) so that the
checkpoint's quantization can price each category at its own precision (:mod:`planner.models.quant`), and the
routed experts apart so that active parameters follow (total - (E - k) / E x routed-expert parameters).
:class:`LayerPlan` is one decoder layer's token mixer and what it caches; consecutive equal layers fold into
:class:`~planner.models.arch.LayerGroup` run-length groups.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from planner.models.arch import AttentionKind, LayerGroup

Category = Literal["embed", "lm_head", "attn", "mixer", "mlp", "shared", "experts", "expert_bias", "router", "small"]
"""- embed / lm_head: token embeddings and the output projection;
- attn: attention projections (q, k, v, o, MLA down/up projections);
- mixer: linear-attention / state-space projections (in_proj, out_proj);
- mlp: dense MLP matrices; shared: always-on shared experts; experts: routed-expert matrices;
- expert_bias: routed-expert biases (gpt-oss); router: MoE router weights and biases;
- small: norms, biases, convolutions, position tables, gates: never quantized."""

QUANTIZABLE: frozenset[str] = frozenset({"attn", "mixer", "mlp", "shared", "experts"})
"""Categories made of 2-D projection matrices: what weight quantization (FP8, AWQ/GPTQ, NVFP4 ...) converts."""


class Tally:
    """Parameter counts per (component, category), plus the routed experts that sit idle for a token."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = defaultdict(int)
        self.idle = 0
        """routed-expert parameters a token is not routed to: sum over MoE layers of (E - k) x one expert"""
        self.moe_layers = 0

    def add(self, category: Category, n: int, component: str = "text") -> None:
        if n:
            self.counts[(component, category)] += n

    def linear(self, category: Category, n_in: int, n_out: int, *, bias: bool = False,
               component: str = "text") -> None:
        """An ``nn.Linear(n_in, n_out)``: the matrix in ``category``, its bias (if any) among the small ones."""
        self.add(category, n_in * n_out, component)
        if bias:
            self.add("small", n_out, component)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def active(self) -> int:
        return self.total - self.idle

    def by_component(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for (comp, _), n in self.counts.items():
            out[comp] += n
        return dict(out)

    def by_category(self, component: str | None = None) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for (comp, cat), n in self.counts.items():
            if component is None or comp == component:
                out[cat] += n
        return dict(out)

    @property
    def routed_expert_params(self) -> int:
        cats = self.by_category()
        return cats.get("experts", 0) + cats.get("expert_bias", 0)


@dataclass(frozen=True)
class LayerPlan:
    """One decoder layer's token mixer: its kind, what it caches per token and holds per sequence."""

    kind: AttentionKind
    window: int | None = None
    kv_elems_per_token: int = 0
    state_elems: int = 0
    shards: int = 1
    attn_dim: int = 0


def attention_layer(kind: AttentionKind, kv_heads: int, k_dim: int, v_dim: int, heads: int, *,
                    window: int | None = None, max_context: int | None = None) -> LayerPlan:
    """A softmax-attention layer caching K (``kv_heads`` x ``k_dim``) and V (``kv_heads`` x ``v_dim``) per token.

    A sliding window at least as long as the model's context is full attention (Phi-3.5's 262,144 over 131,072
    positions, Qwen2.5's 131,072): it never drops a token.
    """
    if kind in ("sliding", "chunked") and (window is None or (max_context is not None and window >= max_context)):
        kind, window = "full", None
    return LayerPlan(kind=kind, window=window if kind in ("sliding", "chunked", "cross") else None,
                     kv_elems_per_token=kv_heads * (k_dim + v_dim), shards=max(1, kv_heads),
                     attn_dim=heads * (k_dim + v_dim) // 2)


def fold(layers: list[LayerPlan]) -> tuple[LayerGroup, ...]:
    """Run-length groups of consecutive equal layers."""
    groups: list[LayerGroup] = []
    for lp in layers:
        if groups:
            last = groups[-1]
            if (last.kind, last.window, last.kv_elems_per_token, last.state_elems, last.shards, last.attn_dim) == (
                    lp.kind, lp.window, lp.kv_elems_per_token, lp.state_elems, lp.shards, lp.attn_dim):
                groups[-1] = last.model_copy(update={"count": last.count + 1})
                continue
        groups.append(LayerGroup(kind=lp.kind, count=1, window=lp.window, kv_elems_per_token=lp.kv_elems_per_token,
                                 state_elems=lp.state_elems, shards=lp.shards, attn_dim=lp.attn_dim))
    return tuple(groups)
