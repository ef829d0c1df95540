"""KV cache and state per sequence, one attention kind at a time, with the formula written out by hand.

Each test builds a small config of one family, reads it with the config reader and checks the estimator's
``kv_bytes_per_sequence`` / ``state_bytes_per_sequence`` / per-GPU split against the arithmetic below (bf16: 2 bytes
per element), plus the checkpoint precision, the local-folder reader and expert parallelism.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from planner.errors import InputError, ModelConfigError
from planner.estimator import estimate_inference, profile
from planner.estimator.inference import (
    all_to_all_s,
    kv_bytes_per_sequence,
    kv_bytes_per_token,
    kv_sequence_bytes_per_gpu,
    state_bytes_per_sequence,
)
from planner.estimator.shape import shape_of
from planner.models import ModelArch, image_context_tokens, presets, resolve
from planner.models import hf_config as hf
from planner.optimizer.options import allowed_dtypes
from planner.specs import Constraints, InferenceWorkload, ModelSpec
from tests.test_models_oracle import SHARED

EXTRA = Path(__file__).parent / "data" / "hf-configs-extra"
BF16 = 2


def arch_of(data: dict[str, Any]) -> ModelArch:
    return hf.arch_from_config(data, name="t", source="test")


def kv_seq(arch: ModelArch, tokens: int) -> int:
    return kv_bytes_per_sequence(shape_of(arch), "bf16", tokens)


# ------------------------------------------------------------------------------------------- attention kinds


def test_full_attention() -> None:
    """Llama: every layer caches K and V of every token: layers x 2 x kv_heads x head_dim x bytes x tokens."""
    a = arch_of({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                 "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256})
    assert kv_seq(a, 10_000) == 32 * 2 * 8 * 128 * BF16 * 10_000
    assert kv_bytes_per_token(shape_of(a), "bf16") == 32 * 2 * 8 * 128 * BF16
    assert state_bytes_per_sequence(shape_of(a), "bf16") == 0


def test_sliding_window_every_layer() -> None:
    """Mistral-7B: all 32 layers keep at most the 4096-token window; past it the cache stops growing."""
    a = arch_of({"model_type": "mistral", "sliding_window": 4096, "max_position_embeddings": 32768})
    per_token = 32 * 2 * 8 * 128 * BF16
    assert kv_seq(a, 1000) == per_token * 1000
    assert kv_seq(a, 20_000) == per_token * 4096
    assert kv_bytes_per_token(shape_of(a), "bf16") == 0


def test_sliding_and_full_interleaved() -> None:
    """Gemma-3-27B: sliding_window_pattern 6 -> 52 of 62 layers slide over 1024 tokens, 10 are global; 16 KV heads
    of 128: 2 x 16 x 128 = 4096 elements per layer per token."""
    a = hf.read_hf_config(str(SHARED / "gemma-3-27b-it"))
    per_layer = 2 * 16 * 128 * BF16
    tokens = 32_768
    assert kv_seq(a, tokens) == 10 * per_layer * tokens + 52 * per_layer * 1024
    assert kv_bytes_per_token(shape_of(a), "bf16") == 10 * per_layer


def test_chunked_local_attention() -> None:
    """Llama-4 Scout: 3 of every 4 layers attend within 8192-token chunks (RoPE layers), every 4th (NoPE) is global:
    36 chunked + 12 full layers, each 2 x 8 x 128 elements per token."""
    a = hf.read_hf_config(str(SHARED / "llama-4-scout-17b-16e"))
    per_layer = 2 * 8 * 128 * BF16
    assert kv_seq(a, 32_768) == 12 * per_layer * 32_768 + 36 * per_layer * 8192
    assert kv_seq(a, 4000) == 48 * per_layer * 4000


def test_multi_head_latent_attention_is_replicated_under_tp() -> None:
    """DeepSeek-V3: one latent of kv_lora_rank + qk_rope_head_dim = 512 + 64 per layer per token, 61 layers, and
    every tensor-parallel rank keeps the whole latent (it is not split by heads)."""
    a = hf.read_hf_config(str(SHARED / "deepseek-v3"))
    s = shape_of(a)
    assert kv_seq(a, 8192) == 61 * (512 + 64) * BF16 * 8192
    per_gpu_tp8 = kv_sequence_bytes_per_gpu(s, "bf16", 8192, tp=8, pp=1)
    per_gpu_tp1 = kv_sequence_bytes_per_gpu(s, "bf16", 8192, tp=1, pp=1)
    assert per_gpu_tp8 == per_gpu_tp1 == 61 * 576 * BF16 * 8192
    llama = shape_of(presets.load_preset("llama-3-70b"))
    assert kv_sequence_bytes_per_gpu(llama, "bf16", 8192, tp=8, pp=1) == pytest.approx(
        kv_sequence_bytes_per_gpu(llama, "bf16", 8192, tp=1, pp=1) / 8)


def test_mamba2_state_is_fixed() -> None:
    """Nemotron-H-56B: 54 Mamba-2 layers each hold heads x head_dim x state = 256 x 64 x 256 elements plus the
    convolution's last 3 inputs over 16384 + 2 x 8 x 256 channels; 10 attention layers cache 2 x 8 x 128."""
    a = hf.read_hf_config(str(SHARED / "nemotron-h-56b"))
    s = shape_of(a)
    state = 54 * (256 * 64 * 256 + (16384 + 2 * 8 * 256) * 3) * BF16
    assert state_bytes_per_sequence(s, "bf16") == state
    assert kv_seq(a, 8192) == 10 * 2 * 8 * 128 * BF16 * 8192
    assert kv_seq(a, 100) == 10 * 2 * 8 * 128 * BF16 * 100


def test_gated_deltanet_state_is_fixed() -> None:
    """Qwen3-Next (defaults = Qwen3-Next-80B-A3B): 36 Gated DeltaNet layers each hold value_heads x key_dim x
    value_dim = 32 x 128 x 128 plus 3 conv inputs over 2 x 16 x 128 + 32 x 128 channels; every 4th layer is full
    attention with 2 KV heads of 256."""
    a = arch_of({"model_type": "qwen3_next"})
    state = 36 * (32 * 128 * 128 + (2 * 16 * 128 + 32 * 128) * 3) * BF16
    assert state_bytes_per_sequence(shape_of(a), "bf16") == state
    assert kv_seq(a, 4096) == 12 * 2 * 2 * 256 * BF16 * 4096


def test_whisper_cross_attention_once_per_request() -> None:
    """Whisper (defaults = tiny, d_model 384, 4 decoder layers): each decoder layer caches its own K and V per
    token (2 x 384) plus the cross-attention K and V of the 1500 encoder positions, once per request."""
    a = arch_of({"model_type": "whisper"})
    assert kv_seq(a, 100) == 4 * 2 * 384 * BF16 * 100 + 4 * 2 * 384 * BF16 * 1500
    assert a.components_dict["audio"] > 0 and a.kind == "audio"


# ------------------------------------------------------------------------------------------ decode reads


def test_decode_reads_only_what_each_layer_keeps() -> None:
    """gpt-oss-120b at 32k context: the 18 sliding layers read 128 tokens, the 18 full layers all 32k."""
    a = presets.load_preset("gpt-oss-120b")
    from planner.catalog import Catalog

    hw = profile(Catalog.load(None).accelerator("h100-sxm"))
    e = estimate_inference(a, hw, "fp4", input_tokens=32_000, output_tokens=1)
    assert e.decode is not None
    per_layer = 2 * 8 * 64 * BF16  # one GPU: all 8 KV heads
    assert e.decode.kv_read_bytes(32_768) == pytest.approx(18 * per_layer * 32_768 + 18 * per_layer * 128)


# ------------------------------------------------------------------------------------------ precision


def test_gpt_oss_120b_ships_in_mxfp4_about_65_gb() -> None:
    """Experts' matrices at 4.25 bits (MXFP4: 0.5 B + one byte per 32), everything else bf16."""
    a = presets.load_preset("gpt-oss-120b")
    experts_matrices = 36 * 128 * (2880 * 5760 + 2880 * 2880)
    rest = a.params - experts_matrices
    assert a.dtype == "fp4"
    assert a.weight_bytes == round(experts_matrices * (0.5 + 1 / 32) + rest * 2)
    assert 64e9 < (a.weight_bytes or 0) < 66e9


def test_fp8_block_quantization_adds_one_scale_per_block() -> None:
    a = hf.read_hf_config(str(EXTRA / "qwen3-235b-a22b-fp8"))
    bf16 = hf.read_hf_config(str(EXTRA / "qwen3-235b-a22b"))
    assert a.params == bf16.params and a.dtype == "fp8"
    assert bf16.weight_bytes == 2 * bf16.params
    # projections: 1 byte + a 4-byte scale per 128 x 128 block; embeddings, LM head, norms, routers stay bf16
    embed, routers = 2 * 151936 * 4096, 94 * 128 * 4096
    norms = 94 * (2 * 4096 + 2 * 128) + 4096
    proj = a.params - embed - routers - norms
    assert a.weight_bytes == round(proj * (1 + 4 / 16384) + (embed + routers + norms) * 2)


@pytest.mark.parametrize(
    ("qc", "dtype", "bytes_per_weight"),
    [
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, "int4", 0.5 + (2 + 0.5) / 128),
        ({"quant_method": "gptq", "bits": 8, "group_size": 128}, "int8", 1 + (2 + 1) / 128),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "int4", 0.5 + 4 / 64),
        ({"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {
            "num_bits": 4, "type": "float", "group_size": 16}}}}, "fp4", 0.5 + 1 / 16),
        ({"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {
            "num_bits": 8, "type": "float", "strategy": "channel"}}}}, "fp8", 1.0),
    ],
)
def test_quantization_configs_price_the_projection_matrices(qc: dict[str, Any], dtype: str,
                                                            bytes_per_weight: float) -> None:
    """Llama-3-8B: 32 layers of 4 x 4096^2 / ... projections quantized, embeddings / LM head / norms bf16."""
    base = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256, "torch_dtype": "bfloat16"}
    a = arch_of({**base, "quantization_config": qc})
    proj = 32 * (4096 * 4096 * 2 + 4096 * 1024 * 2 + 3 * 4096 * 14336)
    assert a.dtype == dtype
    assert a.weight_bytes == round(proj * bytes_per_weight + (a.params - proj) * 2)


# ------------------------------------------------------------------------------------------ model folders


def _safetensors(path: Path, tensors: dict[str, tuple[str, list[int], int]]) -> int:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dt, shape, nbytes) in tensors.items():
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return offset


def test_folder_weight_bytes_come_from_safetensors_headers(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text((SHARED / "qwen3-0.6b" / "config.json").read_text())
    n1 = _safetensors(tmp_path / "model-00001-of-00002.safetensors", {"a": ("BF16", [4, 8], 64), "b": ("U8", [3], 3)})
    n2 = _safetensors(tmp_path / "model-00002-of-00002.safetensors", {"c": ("F32", [10], 40)})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({
        "metadata": {"total_size": 999}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                                        "b": "model-00001-of-00002.safetensors",
                                                        "c": "model-00002-of-00002.safetensors"}}))
    a = hf.read_hf_config(str(tmp_path))
    assert a.weight_bytes == n1 + n2 == 107
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    assert hf.read_hf_config(str(tmp_path)).weight_bytes == 999  # shards absent: the index's total_size


@pytest.mark.parametrize(
    ("blob", "needle"),
    [
        (b"\x01", "shorter than its 8-byte header length"),
        (struct.pack("<Q", 10**12) + b"{}", "header length"),
        (struct.pack("<Q", 5) + b"nojso", "not valid JSON"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
        (struct.pack("<Q", 47) + b'{"a": {"dtype": "F32", "data_offsets": [0, 9]}}', "data_offsets outside"),
    ],
)
def test_a_broken_safetensors_file_gives_one_line(tmp_path: Path, blob: bytes, needle: str) -> None:
    (tmp_path / "config.json").write_text((SHARED / "qwen3-0.6b" / "config.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(blob)
    with pytest.raises(ModelConfigError) as info:
        hf.read_hf_config(str(tmp_path))
    assert needle in str(info.value) and "\n" not in str(info.value) and "model.safetensors" in str(info.value)


# ------------------------------------------------------------------------------------------ MoE, EP, presets


def test_bare_size_moe_gets_its_active_compute() -> None:
    dense = resolve(ModelSpec(params=30.5e9))
    moe = resolve(ModelSpec(params=30.5e9, active_params=3.3e9, experts=128, experts_per_token=8))
    assert (moe.active_params, moe.experts, moe.experts_per_token) == (3_300_000_000, 128, 8)
    assert shape_of(moe).active_body_params < shape_of(dense).active_body_params / 5
    with pytest.raises(ValueError, match="only go with params"):
        ModelSpec(preset="llama-3-8b", active_params=1e9)


def test_all_to_all_by_hand() -> None:
    """Pairwise exchange (Thakur et al. 2005): (n - 1)/n x M / (bandwidth x efficiency) + (n - 1) x latency."""
    from planner.estimator import calibration as cal

    t = all_to_all_s(8e6, 8, 100e9)
    assert t == pytest.approx(7 / 8 * 8e6 / (100e9 * cal.ALLREDUCE_BANDWIDTH_EFFICIENCY) + 7 * cal.P2P_LATENCY_S)
    assert all_to_all_s(8e6, 1, 100e9) == 0.0


def test_expert_parallelism_option() -> None:
    from planner.catalog import Catalog

    hw = profile(Catalog.load(None).accelerator("h100-sxm"))
    a = presets.load_preset("qwen3-30b-a3b")
    tp8 = estimate_inference(a, hw, "bf16", tp=8, input_tokens=2048, output_tokens=256, batch=64)
    ep8 = estimate_inference(a, hw, "bf16", tp=8, ep=8, input_tokens=2048, output_tokens=256, batch=64)
    assert ep8.memory.total_bytes_per_gpu == tp8.memory.total_bytes_per_gpu
    assert ep8.tpot_s != tp8.tpot_s
    for bad, needle in ((3, "divisor of tp"), (16, "divisor of tp")):
        with pytest.raises(InputError, match=needle):
            estimate_inference(a, hw, "bf16", tp=8, ep=bad, input_tokens=1, output_tokens=1)
    with pytest.raises(InputError, match="mixture-of-experts"):
        estimate_inference(presets.load_preset("llama-3-8b"), hw, "bf16", tp=2, ep=2, input_tokens=1,
                           output_tokens=1)


def test_shipped_precision_is_lossless_and_never_upcast() -> None:
    from planner.catalog import Catalog

    h100 = Catalog.load(None).accelerator("h100-sxm")
    strict = Constraints(max_accuracy_loss="none")
    assert allowed_dtypes(strict, h100, presets.load_preset("gpt-oss-120b")) == ["fp4"]
    assert allowed_dtypes(strict, h100, presets.load_preset("deepseek-v3")) == ["fp8"]
    assert "bf16" in allowed_dtypes(strict, h100, presets.load_preset("qwen3-8b"))
    assert allowed_dtypes(Constraints(), h100) == allowed_dtypes(Constraints(), h100, None)


def test_image_tokens_join_the_context() -> None:
    gemma = presets.load_preset("gemma-3-27b")
    assert gemma.image_tokens == 256
    assert image_context_tokens(gemma, 3) == 768
    assert image_context_tokens(presets.load_preset("llama-3-8b"), 3) == 0
    assert InferenceWorkload(images_per_request=2).images_per_request == 2
    with pytest.raises(ValueError):
        InferenceWorkload(images_per_request=-1)


def _card(text: str) -> float:
    return float(text.rstrip("B")) * 1e9


@pytest.mark.parametrize("name", [n for n in presets.preset_names() if presets.preset_entries()[n].card_params])
def test_presets_round_to_their_published_figures(name: str) -> None:
    """The counted shape rounds to the model card's figure (to the digits the card prints)."""
    entry = presets.preset_entries()[name]
    arch = presets.load_preset(name)
    assert entry.card_params is not None and arch.hf_id and "/" in arch.hf_id
    digits = entry.card_params.rstrip("B")
    step = 10 ** -(len(digits.split(".")[1]) if "." in digits else 0) * 1e9
    assert abs(arch.params - _card(entry.card_params)) <= max(step, 0.01 * _card(entry.card_params))
    if entry.card_active_params:
        active = arch.active_params
        if entry.card_active_basis == "no-embedding":
            active -= (arch.vocab_size or 0) * (arch.hidden_size or 0)
        a_digits = entry.card_active_params.rstrip("B")
        a_step = 10 ** -(len(a_digits.split(".")[1]) if "." in a_digits else 0) * 1e9
        assert abs(active - _card(entry.card_active_params)) <= max(a_step, 0.01 * _card(entry.card_active_params))
