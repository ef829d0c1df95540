"""The resolved architecture of a model: what the estimator reads.

A :class:`ModelArch` comes from a preset, a Hugging Face ``config.json`` or a bare size; see
:func:`planner.models.resolve`. Transformer fields are ``None`` for non-transformer models (CNNs), which carry
``flops_per_inference`` and ``input_shape`` instead.

Layer by layer: ``layer_groups`` describes the decoder's layers as run-length groups of one attention kind
(full, sliding window, chunked local, multi-head latent, linear attention, state-space, cross-attention, none), each
with what it caches per token and what fixed state it holds per sequence. Empty means "every layer as the legacy
fields say" (``layers`` x ``attention`` / ``sliding_window`` with ``kv_heads`` x ``head_dim``), so presets and
specs written before it still work.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from planner.specs import ModelKind, TensorSpec

AttentionKind = Literal["full", "sliding", "chunked", "mla", "linear", "ssm", "cross", "none"]
"""- full: K and V of every token (grows with the context);
- sliding: K and V of the last ``window`` tokens (Mistral, Gemma-2/3 local layers, gpt-oss);
- chunked: K and V of the current ``window``-token chunk (Llama-4 local layers);
- mla: multi-head latent attention, one compressed latent per token (DeepSeek-V2/V3, Kimi-K2), replicated on
  every tensor-parallel rank;
- linear: linear attention (Gated DeltaNet): a fixed recurrent state per sequence;
- ssm: a state-space mixer (Mamba-2): a fixed convolution + SSM state per sequence;
- cross: encoder-decoder cross-attention: K and V of ``window`` encoder positions, once per request (Whisper);
- none: no token mixer that caches anything (an MLP-only block)."""


class LayerGroup(BaseModel):
    """``count`` consecutive decoder layers of one kind, and what each one keeps per sequence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: AttentionKind
    count: int = Field(ge=1, le=1_000_000)
    window: int | None = Field(default=None, ge=1, description="sliding window, chunk size, or encoder positions")
    kv_elems_per_token: int = Field(default=0, ge=0, description="cached elements per token per layer "
                                                                 "(K + V, or the MLA latent)")
    state_elems: int = Field(default=0, ge=0, description="fixed elements per sequence per layer (recurrent state)")
    shards: int = Field(default=1, ge=1, description="ways the cache splits under tensor parallelism "
                                                     "(KV heads; 1 = replicated on every rank, as MLA)")
    attn_dim: int = Field(default=0, ge=0, description="query heads x head dim: the width of QK^T and AV")

    def kept_tokens(self, context: float) -> float:
        """Tokens this layer keeps (and decode reads) for a sequence of ``context`` tokens."""
        if self.kind in ("full", "mla"):
            return context
        if self.kind in ("sliding", "chunked"):
            return min(context, float(self.window or context))
        if self.kind == "cross":
            return float(self.window or 0)
        return 0.0


class ModelArch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str
    kind: ModelKind
    family: str = Field(description="llama, mistral, mixtral, qwen2, gemma, phi3, gpt2, gptj, gpt_neox, opt, bert, "
                                    "cnn, whisper, custom ...")
    params: int = Field(gt=0, description="total parameters (all experts for MoE, every tower for multimodal)")
    active_params: int = Field(gt=0, description="parameters touched per token (MoE: shared + top-k experts)")
    # transformer shape (None for CNNs)
    layers: int | None = None
    hidden_size: int | None = None
    attention_heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    max_context: int | None = None
    experts: int = 1
    experts_per_token: int = 1
    tied_embeddings: bool = False
    attention: Literal["full", "sliding", "none"] = "full"
    sliding_window: int | None = None
    decoder: bool = True
    # non-LLM models
    flops_per_inference: float | None = Field(default=None, description="FLOPs for one input (2 x MACs)")
    input_shape: tuple[int, ...] | None = None
    inputs: tuple[TensorSpec, ...] | None = None
    outputs: tuple[TensorSpec, ...] | None = None
    source: str = Field(description="where these numbers come from")
    # layer by layer, towers, MoE and the checkpoint's own precision (all optional: defaults keep old behaviour)
    hf_id: str | None = Field(default=None, description="Hugging Face repository id (org/name) to fetch weights")
    layer_groups: tuple[LayerGroup, ...] = Field(default=(), description="decoder layers, run-length by kind")
    components: tuple[tuple[str, int], ...] = Field(
        default=(), description="parameters per tower: (text, n), (vision, n), (audio, n); empty = all text")
    expert_params: int | None = Field(default=None, ge=0, description="all routed-expert parameters (exact)")
    moe_layers: int | None = Field(default=None, ge=0, description="layers with routed experts")
    dtype: str | None = Field(default=None, description="the checkpoint's own weight precision (fp4, fp8, bf16 ...)")
    weight_bytes: int | None = Field(default=None, gt=0,
                                     description="stored bytes of the checkpoint at its own precision")
    expert_weight_bytes: int | None = Field(default=None, ge=0,
                                            description="stored bytes of the routed experts at that precision")
    quantization: str | None = Field(default=None, description="the checkpoint's quantization, in words")
    image_tokens: int | None = Field(default=None, ge=0, description="context tokens one image adds")

    @property
    def is_llm(self) -> bool:
        return self.kind == "llm"

    @property
    def components_dict(self) -> dict[str, int]:
        """Parameters per tower (``{"text": params}`` when the model has one)."""
        return dict(self.components) if self.components else {"text": self.params}

    @property
    def tower_params(self) -> int:
        """Parameters outside the text decoder (vision / audio encoders and their projectors)."""
        return sum(n for name, n in self.components if name != "text")
