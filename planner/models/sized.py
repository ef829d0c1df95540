"""Models named by their size only (``model: {params: 13e9}``) or custom non-LLM models.

- ``params`` alone (kind ``llm`` or unset): a Llama-style decoder of that size. Its shape comes from
  :func:`standard_shape`: the hidden size is interpolated (log-log, piecewise linear) between the published
  Llama shapes in :data:`LLAMA_ANCHORS`, then the layer count is solved so that the exact count of the shape
  (:func:`planner.models.hf_config.count_params`) is as close as possible to the requested size. ``layers`` /
  ``hidden_size`` in the spec pin either dimension.
- ``params`` with ``flops_per_inference`` and ``input_shape``: a vision / audio / encoder / other model that the
  estimator sizes from its FLOPs (kind from the spec, default ``other``).
"""

from __future__ import annotations

import math

from planner.errors import ModelConfigError
from planner.models.arch import ModelArch
from planner.models.hf_config import TransformerShape, count_params
from planner.specs import ModelSpec, TensorSpec

__all__ = ["LLAMA_ANCHORS", "MAX_SIZED_PARAMS", "MIN_LLM_PARAMS", "from_spec", "standard_shape"]

LLAMA_ANCHORS: tuple[tuple[float, int, int], ...] = (
    (1_235_814_400, 16, 2048),  # Llama-3.2-1B
    (3_212_749_824, 28, 3072),  # Llama-3.2-3B
    (8_030_261_248, 32, 4096),  # Llama-3-8B
    (13_015_864_320, 40, 5120),  # Llama-2-13B
    (70_553_706_496, 80, 8192),  # Llama-3-70B
    (405_853_388_800, 126, 16384),  # Llama-3.1-405B
)
"""(params, layers, hidden) of published Llama models, from their config.json (see presets.yaml)."""

MIN_LLM_PARAMS = 10_000_000
MAX_SIZED_PARAMS = 10_000_000_000_000
_FFN_RATIO = 3.5  # Llama 3 8B / 70B: intermediate = 3.5 x hidden
_KV_HEADS = 8  # Llama 3 (all sizes) and Llama 2 70B use 8 KV heads


def _interp_hidden(params: float) -> float:
    """Hidden size at ``params`` by log-log interpolation between anchors (linear extrapolation beyond them)."""
    pts = [(math.log(p), math.log(h)) for p, _, h in LLAMA_ANCHORS]
    x = math.log(params)
    if x <= pts[0][0]:
        (x0, y0), (x1, y1) = pts[0], pts[1]
    elif x >= pts[-1][0]:
        (x0, y0), (x1, y1) = pts[-2], pts[-1]
    else:
        i = next(i for i in range(1, len(pts)) if x <= pts[i][0])
        (x0, y0), (x1, y1) = pts[i - 1], pts[i]
    return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0))


def _shape(layers: int, hidden: int, vocab: int, tied: bool) -> TransformerShape:
    head_dim = 128 if hidden >= 2048 and hidden % 128 == 0 else 64
    heads = max(1, hidden // head_dim)
    kv = _KV_HEADS if heads % _KV_HEADS == 0 else heads
    inter = max(256, round(_FFN_RATIO * hidden / 256) * 256)
    return TransformerShape(
        layers=layers, hidden=hidden, heads=heads, kv_heads=kv, head_dim=head_dim, intermediate=inter, vocab=vocab,
        lm_head="tied" if tied else "separate",
    )


def _round_hidden(h: float) -> int:
    """Round a width so that heads (of head_dim 128, or 64 below 2048) come in multiples of 8 KV groups."""
    step = 1024 if h >= 2048 else 512 if h >= 512 else 64
    return max(64, round(h / step) * step)


def standard_shape(params: float, *, layers: int | None = None, hidden: int | None = None) -> TransformerShape:
    """A Llama-3-style decoder shape for a model of ``params`` parameters.

    Source: the published Llama 2 / 3 / 3.1 / 3.2 configs (:data:`LLAMA_ANCHORS`). Rules: hidden interpolated
    log-log between anchors and rounded to a multiple of 1024 (512 from 512, else 64), head_dim 128 (64 below
    2048), so the heads split into 8 KV heads (grouped-query attention) where the head count allows; gated
    MLP of 3.5 x hidden (rounded to 256); RMSNorm; vocabulary 128,256 from 1B up (32,000 below); embeddings
    tied below 4B as in Llama 3.2. The layer count (unless given) minimises the difference between the counted
    shape and ``params``.
    """
    vocab = 128_256 if params >= 1e9 else 32_000
    tied = params < 4e9
    if hidden is None and layers is not None:
        # pick the width whose counted shape with the given depth is closest to the size
        depth = layers
        candidates = dict.fromkeys(_round_hidden(64 * k) for k in range(1, 1025))
        hidden = min(candidates, key=lambda h: abs(count_params(_shape(depth, h, vocab, tied)).total - params))
    if hidden is None:
        hidden = _round_hidden(_interp_hidden(params))
    if layers is None:
        one = count_params(_shape(1, hidden, vocab, tied)).total
        two = count_params(_shape(2, hidden, vocab, tied)).total
        per_layer, fixed = two - one, one - (two - one)
        layers = max(1, round((params - fixed) / per_layer))
    return _shape(layers, hidden, vocab, tied)


def _size_label(params: float) -> str:
    for unit, scale in (("t", 1e12), ("b", 1e9), ("m", 1e6), ("k", 1e3)):
        if params >= scale:
            value = params / scale
            text = f"{value:.1f}".rstrip("0").rstrip(".") if value < 100 else f"{value:.0f}"
            return f"{text}{unit}"
    return f"{params:.0f}"


def _llm(spec: ModelSpec, params: float) -> ModelArch:
    if params < MIN_LLM_PARAMS:
        raise ModelConfigError(
            f"model params = {params:g} is too small for a language model (minimum {MIN_LLM_PARAMS:,})",
            fix="for a small non-LLM model also give flops_per_inference and input_shape (and kind)",
        )
    shape = standard_shape(params, layers=spec.layers, hidden=spec.hidden_size)
    counted = count_params(shape).total
    if spec.layers is not None and spec.hidden_size is not None and not (1 / 3 <= counted / params <= 3):
        raise ModelConfigError(
            f"model layers = {spec.layers} and hidden_size = {spec.hidden_size} make a Llama-style decoder of "
            f"{counted:.3g} params, far from params = {params:.3g}",
            fix="check the three numbers, or give only params and let mlplan derive the shape",
        )
    n = round(params)
    how = "given" if spec.layers is not None or spec.hidden_size is not None else "interpolated"
    moe = _moe(spec, n, shape)
    return ModelArch(
        name=spec.name or f"llm-{_size_label(params)}",
        kind="llm",
        family="llama",
        params=n,
        active_params=moe.get("active_params", n),
        layers=shape.layers,
        hidden_size=shape.hidden,
        attention_heads=shape.heads,
        kv_heads=shape.kv_heads,
        head_dim=shape.head_dim,
        intermediate_size=shape.intermediate,
        vocab_size=shape.vocab,
        max_context=8192,
        tied_embeddings=shape.lm_head == "tied",
        source=(
            f"sized: a Llama-3-style decoder of {n:,} params; shape {how} from the Llama 3.2-1B/3.2-3B/3-8B/"
            f"2-13B/3-70B/3.1-405B configs (counted shape: {counted:,} params)"
            + (f"; mixture of experts: {moe['active_params']:,} active, {moe['experts']} experts, top-"
               f"{moe['experts_per_token']}" if moe else "")
        ),
        **{k: v for k, v in moe.items() if k != "active_params"},
    )


def _moe(spec: ModelSpec, n: int, shape: TransformerShape) -> dict[str, int]:
    """A bare-size mixture of experts (``active_params``, ``experts``, ``experts_per_token``): the decode reads and
    FLOPs follow the active parameters. With E experts of e params and k active: total = shared + E e and
    active = shared + k e, so the routed experts hold E (total - active) / (E - k) (exact for Mixtral)."""
    if spec.active_params is None and spec.experts is None:
        return {}
    active = round(spec.active_params) if spec.active_params is not None else n
    e = spec.experts or 1
    k = spec.experts_per_token or 1
    if active < n and e <= k:
        raise ModelConfigError(
            f"model active_params = {active:,} < params = {n:,} needs experts and experts_per_token (top-k < E)",
            fix="add experts: <routed experts> and experts_per_token: <top-k>, e.g. 128 and 8 for Qwen3-30B-A3B",
        )
    out: dict[str, int] = {"active_params": active, "experts": e, "experts_per_token": k}
    if active < n:
        out["expert_params"] = min(n, round((n - active) * e / (e - k)))
        out["moe_layers"] = shape.layers
    return out


def _custom(spec: ModelSpec, params: float, flops: float) -> ModelArch:
    kind = spec.kind or "other"
    if kind == "llm":
        raise ModelConfigError(
            "model kind = 'llm' with flops_per_inference: LLMs are sized per token from their shape",
            fix="drop flops_per_inference for an LLM, or set kind to vision, audio, encoder or other",
        )
    if spec.input_shape is None:
        raise ModelConfigError(
            f"model flops_per_inference = {flops:g} needs input_shape (the shape of one input, no batch dim)",
            fix="add input_shape, e.g. [3, 224, 224] for an image model",
        )
    n = max(1, round(params))
    inputs = spec.inputs or (TensorSpec(name="input", dtype="fp32", shape=spec.input_shape),)
    return ModelArch(
        name=spec.name or f"custom-{_size_label(params)}",
        kind=kind,
        family="custom",
        params=n,
        active_params=n,
        layers=spec.layers,
        hidden_size=spec.hidden_size,
        attention="none",
        decoder=False,
        flops_per_inference=flops,
        input_shape=spec.input_shape,
        inputs=inputs,
        outputs=spec.outputs,
        max_context=spec.max_context,
        source=f"custom model from the spec: {n:,} params, {flops:.4g} FLOPs per input of shape "
               f"{list(spec.input_shape)}",
    )


def from_spec(spec: ModelSpec) -> ModelArch:
    """A :class:`ModelArch` for a spec that names a model by size (``params``), with or without FLOPs."""
    if spec.params is None:
        raise ModelConfigError("model spec has no params", fix="give preset, hf_config or params")
    params = float(spec.params)
    if params > MAX_SIZED_PARAMS:
        raise ModelConfigError(
            f"model params = {params:.3g} is over the {MAX_SIZED_PARAMS:.0e} limit",
            fix="give the parameter count (e.g. 7e9 for 7B), not bytes or FLOPs",
        )
    if spec.flops_per_inference is not None:
        return _custom(spec, params, float(spec.flops_per_inference))
    if spec.kind is not None and spec.kind != "llm":
        raise ModelConfigError(
            f"model kind = {spec.kind!r} with params alone: a non-LLM model is sized from its FLOPs",
            fix="add flops_per_inference (2 x MACs for one input) and input_shape",
        )
    return _llm(spec, params)
