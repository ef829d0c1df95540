"""The independent oracle: Hugging Face ``transformers`` builds each config on the meta device and reports what it made.

Run by the tests in the oracle venv (``.venv-oracle``, see ``requirements-oracle.txt``), never imported by mlplan.
Reads a JSON object ``{label: config}`` on stdin and prints ``{label: result}`` where result is either
``{"error": "..."}`` or:

- ``params``: unique parameters of the model class the config names (``architectures[0]``; the base model for
  BERT-style encoders), as ``sum(p.numel() for p in model.parameters())``;
- ``routed``: ``[[experts, top_k, params]]`` for each routed-experts module (a module named ``experts``), so the
  active count total - sum (E - k)/E x params follows;
- ``layers``: the decoder's token mixers in order, each ``[kind, window, kv_elems_per_token, state_elems]`` read
  from the modules transformers built (k/v projection widths, the MLA latent projection, Mamba-2 / Gated DeltaNet
  state sizes) and the config's resolved ``layer_types`` / sliding window / chunk size.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any


def _config(data: dict[str, Any]) -> Any:
    import transformers
    from transformers import CONFIG_MAPPING

    data = {k: v for k, v in data.items() if k not in ("quantization_config", "auto_map")}
    mt = data.get("model_type")
    if mt in CONFIG_MAPPING:
        return CONFIG_MAPPING[mt].from_dict(data)
    for arch in data.get("architectures") or []:
        cls = getattr(transformers, arch, None)
        if cls is not None:  # Kimi-K2 ships model_type kimi_k2 with the DeepseekV3 architecture
            return cls.config_class.from_dict({**data, "model_type": cls.config_class.model_type})
    raise ValueError(f"no transformers config for model_type {mt!r}")


ENCODERS = {"bert", "roberta", "xlm-roberta", "distilbert"}


def _model(data: dict[str, Any], cfg: Any) -> Any:
    import torch
    import transformers

    cls = None
    if data.get("model_type") not in ENCODERS:
        for arch in data.get("architectures") or []:
            cls = getattr(transformers, arch, None)
            if cls is not None:
                break
    with torch.device("meta"):
        if cls is not None:
            return cls(cfg)
        if data.get("model_type") in ENCODERS:
            return transformers.AutoModel.from_config(cfg)
        for auto in (transformers.AutoModelForCausalLM, transformers.AutoModelForImageTextToText,
                     transformers.AutoModelForSpeechSeq2Seq, transformers.AutoModel):
            try:
                return auto.from_config(cfg)
            except ValueError:
                continue
    raise ValueError("no model class")


def _text_config(cfg: Any) -> Any:
    for name in ("text_config", "llm_config"):
        sub = getattr(cfg, name, None)
        if sub is not None and hasattr(sub, "num_hidden_layers"):
            return sub
    return cfg


def _top_k(cfg: Any) -> int:
    for c in (_text_config(cfg), cfg):
        for key in ("num_experts_per_tok", "experts_per_token", "moe_topk"):
            v = getattr(c, key, None)
            if isinstance(v, int) and v > 0:
                return v
    return 1


def _layers(model: Any, cfg: Any) -> list[list[Any]]:
    import re

    tc = _text_config(cfg)
    types = list(getattr(tc, "layer_types", None) or getattr(tc, "layers_block_type", None) or [])
    chunk = getattr(tc, "attention_chunk_size", None)
    out: list[tuple[int, int, list[Any]]] = []
    for name, mod in model.named_modules():
        if re.search(r"vision|visual|encoder\.layers|\.encoder\.|^encoder", name):
            continue
        m = re.search(r"(?:layers|h)\.(\d+)\.(self_attn|mixer|linear_attn|encoder_attn|attention|attn)$", name)
        if not m:
            continue
        idx, part = int(m.group(1)), m.group(2)
        order = 1 if part == "encoder_attn" else 0
        if hasattr(mod, "kv_a_proj_with_mqa"):  # multi-head latent attention: the compressed latent is the cache
            out.append((idx, order, ["mla", None, mod.kv_a_proj_with_mqa.out_features, 0]))
        elif hasattr(mod, "ssm_state_size") and hasattr(mod, "conv_dim"):  # Mamba-2
            state = mod.num_heads * mod.head_dim * mod.ssm_state_size + mod.conv_dim * (mod.conv_kernel_size - 1)
            out.append((idx, order, ["ssm", None, 0, state]))
        elif hasattr(mod, "head_k_dim") and hasattr(mod, "conv_dim"):  # Gated DeltaNet
            state = mod.num_v_heads * mod.head_k_dim * mod.head_v_dim + mod.conv_dim * (mod.conv_kernel_size - 1)
            out.append((idx, order, ["linear", None, 0, state]))
        elif hasattr(mod, "k_proj") and hasattr(mod, "v_proj"):
            kv = mod.k_proj.out_features + mod.v_proj.out_features
            if part == "encoder_attn":
                out.append((idx, order, ["cross", getattr(cfg, "max_source_positions", None), kv, 0]))
                continue
            lt = types[idx] if idx < len(types) else "full_attention"
            window = getattr(mod, "sliding_window", None)
            if not types and not window:  # mistral / mixtral / phi3: config.sliding_window masks every layer
                window = getattr(tc, "sliding_window", None)
            if lt == "chunked_attention" and chunk:
                out.append((idx, order, ["chunked", chunk, kv, 0]))
            elif window:
                out.append((idx, order, ["sliding", window, kv, 0]))
            elif lt == "sliding_attention" and getattr(tc, "sliding_window", None):
                out.append((idx, order, ["sliding", tc.sliding_window, kv, 0]))
            else:
                out.append((idx, order, ["full", None, kv, 0]))
        elif hasattr(mod, "c_attn"):  # GPT-2's fused Conv1D: q, k, v of embed_dim each
            out.append((idx, order, ["full", None, 2 * mod.c_attn.nf // 3, 0]))
        elif hasattr(mod, "query_key_value"):  # GPT-NeoX's fused projection
            out.append((idx, order, ["full", None, 2 * mod.query_key_value.out_features // 3, 0]))
        elif hasattr(mod, "qkv_proj") and hasattr(mod, "num_key_value_heads"):  # Phi-3's fused projection
            kv = 2 * mod.num_key_value_heads * mod.head_dim
            window = getattr(mod, "sliding_window", None) or getattr(tc, "sliding_window", None)
            out.append((idx, order, ["sliding", window, kv, 0] if window else ["full", None, kv, 0]))
    out.sort(key=lambda x: (x[1], x[0]))
    return [entry for _, _, entry in out]


def measure(data: dict[str, Any]) -> dict[str, Any]:
    cfg = _config(data)
    model = _model(data, cfg)
    params = sum(p.numel() for p in model.parameters())
    routed = []
    k = _top_k(cfg)
    for name, mod in model.named_modules():
        if name.endswith(".experts") and "shared" not in name:
            own = list(mod.parameters(recurse=True))
            if own:
                experts = own[0].shape[0]
                routed.append([experts, k, sum(p.numel() for p in own)])
    causal = any(s in type(model).__name__ for s in ("CausalLM", "ConditionalGeneration", "LMHead"))
    layers = _layers(model, cfg) if causal else []
    return {"params": params, "routed": routed, "layers": layers, "class": type(model).__name__}


def main() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import transformers

    transformers.logging.set_verbosity_error()
    todo = json.loads(sys.stdin.read())
    results: dict[str, Any] = {}
    for label, data in todo.items():
        try:
            results[label] = measure(data)
        except Exception as e:  # reported per config: the tests decide
            results[label] = {"error": f"{type(e).__name__}: {e}"[:500]}
    print(json.dumps(results, allow_nan=True, default=lambda o: None if isinstance(o, float) and math.isnan(o)
                     else str(o)))


if __name__ == "__main__":
    main()
