"""Resolve a :class:`~planner.specs.ModelSpec` into a :class:`ModelArch`.

Three sources: an embedded preset (``presets.yaml``, each with its source), a Hugging Face ``config.json`` read
offline (:mod:`planner.models.hf_config`), or a bare size / custom model (:mod:`planner.models.sized`).
"""

from __future__ import annotations

from planner.models.arch import ModelArch
from planner.specs import ModelSpec

__all__ = ["ModelArch", "image_context_tokens", "resolve"]


def resolve(spec: ModelSpec) -> ModelArch:
    from planner.models import hf_config, presets, sized

    if spec.preset is not None:
        arch = presets.load_preset(spec.preset)
    elif spec.hf_config is not None:
        arch = hf_config.read_hf_config(spec.hf_config)
    else:
        arch = sized.from_spec(spec)
    updates: dict[str, object] = {}
    if spec.name:
        updates["name"] = spec.name
    if spec.inputs is not None:
        updates["inputs"] = spec.inputs
    if spec.outputs is not None:
        updates["outputs"] = spec.outputs
    if spec.max_context is not None:
        updates["max_context"] = spec.max_context
    if spec.hf_id is not None:
        updates["hf_id"] = spec.hf_id
    return arch.model_copy(update=updates) if updates else arch


MAX_IMAGE_TOKENS = 1 << 20


def image_context_tokens(arch: ModelArch, images_per_request: int) -> int:
    """Context tokens the images of one request add (vision-language models): images x ``arch.image_tokens``.

    ``image_tokens`` comes from the vision config (Gemma-3 ``mm_tokens_per_image``; Llama-4 one 448-px tile after
    pixel shuffle; Qwen3-VL the resolution its position table covers; Mistral-3 the tower's full image size with
    its row breaks). 0 for models without a vision tower.
    """
    if images_per_request <= 0 or not arch.image_tokens:
        return 0
    return min(MAX_IMAGE_TOKENS, images_per_request * arch.image_tokens)
