"""The resolved architecture of a model: what the estimator reads.

A :class:`ModelArch` comes from a preset, a Hugging Face ``config.json`` or a bare size; see
:func:`planner.models.resolve`. Transformer fields are ``None`` for non-transformer models (CNNs), which carry
``flops_per_inference`` and ``input_shape`` instead.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from planner.specs import ModelKind, TensorSpec


class ModelArch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str
    kind: ModelKind
    family: str = Field(description="llama, mistral, mixtral, qwen2, gemma, phi3, gpt2, gptj, gpt_neox, opt, bert, "
                                    "cnn, whisper, custom ...")
    params: int = Field(gt=0, description="total parameters (all experts for MoE)")
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

    @property
    def is_llm(self) -> bool:
        return self.kind == "llm"
