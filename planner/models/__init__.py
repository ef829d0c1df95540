"""Resolve a :class:`~planner.specs.ModelSpec` into a :class:`ModelArch`.

Three sources: an embedded preset (``presets.yaml``, each with its source), a Hugging Face ``config.json`` read
offline (:mod:`planner.models.hf_config`), or a bare size / custom model (:mod:`planner.models.sized`).
"""

from __future__ import annotations

from planner.models.arch import ModelArch
from planner.specs import ModelSpec

__all__ = ["ModelArch", "resolve"]


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
    return arch.model_copy(update=updates) if updates else arch
