"""FLOPs per token (Kaplan et al. 2020; PaLM, Chowdhery et al. 2022, App. B) and the share of routed experts a
forward touches (Fedus et al. 2021)."""

from __future__ import annotations

import math

from planner.estimator import calibration as cal
from planner.estimator.shape import Shape


def expert_fraction(s: Shape, tokens: float) -> float:
    """Fraction of routed experts a forward over ``tokens`` tokens reads.

    Uniform top-k routing: P(expert unused) = (1 - k/E)^t, so the expected fraction touched is 1 - (1 - k/E)^t,
    bounded by min(E, t k) / E (Fedus et al. 2021; DeepSpeed-MoE, Rajbhandari et al. 2022, on MoE inference
    being bound by the experts a batch activates).
    """
    if not s.expert_params:
        return 1.0
    e, k = s.experts, s.experts_per_token
    if cal.UNIFORM_EXPERT_ROUTING:
        return 1.0 - math.pow(1.0 - k / e, max(tokens, 1.0))
    return min(e, tokens * k) / e


def linear_flops_per_token(s: Shape, *, with_lm_head: bool = True) -> float:
    """2 FLOPs per multiply-accumulate per active weight (Kaplan et al. 2020, Table 1: C_forward ~ 2N), the LM
    head included where logits are computed."""
    return 2.0 * (s.active_body_params + (s.lm_head_math_params if with_lm_head else 0))


def attention_flops_per_token(s: Shape, context: float) -> float:
    """QK^T and AV for one query attending to ``context`` keys: 2 x 2 x layers x context x d_attn (Kaplan et al.
    2020, Table 1; PaLM, Chowdhery et al. 2022, App. B), each layer over the keys it keeps (a sliding window or a
    chunk at most). Linear-attention / state-space layers update and read their state instead: ~4 FLOPs per state
    element per token (decay, rank-1 update, readout; Mamba-2's recurrent form, Dao & Gu 2024)."""
    if not s.kv_groups:
        c = context if s.kv_window is None else min(context, s.kv_window)
        return 4.0 * s.layers * c * s.attn_dim
    return sum(4.0 * g.attn_dim * g.kept(context) + 4.0 * g.state_elems for g in s.kv_groups)


def nonllm_flops(s: Shape, seq: int) -> float:
    """FLOPs for one input of a non-LLM model: the given ``flops_per_inference`` (2 x MACs), else for an encoder
    2 x params x seq + full (bidirectional) attention 4 x layers x seq^2 x d_attn (Kaplan et al. 2020), else
    2 x params (one pass over every weight)."""
    if s.flops_per_inference:
        return s.flops_per_inference
    if s.transformer:
        return 2.0 * s.body_params * seq + 4.0 * s.layers * seq * seq * s.attn_dim
    return 2.0 * (s.body_params + s.embed_params + s.lm_head_params)
