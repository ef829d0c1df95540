"""Model presets, the offline config.json reader, the parameter counter and bare-size models.

The published parameter counts below come from the model cards / papers named in presets.yaml; the config.json
files under tests/data/hf_configs are the official ones of those repositories.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import ModelConfigError
from planner.models import ModelArch, presets, resolve, sized
from planner.models import hf_config as hf
from planner.specs import ModelSpec, TensorSpec

CONFIGS = Path(__file__).parent / "data" / "hf_configs"

# folder -> (preset, params, active params, model_type/family, kind, layers, hidden, heads, kv heads, head_dim,
#            vocab, max context, attention)
PUBLISHED: dict[str, tuple[Any, ...]] = {
    "Llama-2-7b-hf": ("llama-2-7b", 6_738_415_616, None, "llama", "llm", 32, 4096, 32, 32, 128, 32000, 4096, "full"),
    "Meta-Llama-3-8B": ("llama-3-8b", 8_030_261_248, None, "llama", "llm", 32, 4096, 32, 8, 128, 128256, 8192, "full"),
    "Mistral-7B-v0.1": ("mistral-7b", 7_241_732_096, None, "mistral", "llm", 32, 4096, 32, 8, 128, 32000, 32768,
                        "sliding"),
    "Mixtral-8x7B-v0.1": ("mixtral-8x7b", 46_702_792_704, 12_879_925_248, "mixtral", "llm", 32, 4096, 32, 8, 128,
                          32000, 32768, "full"),
    "Qwen2-7B": ("qwen2-7b", 7_615_616_512, None, "qwen2", "llm", 28, 3584, 28, 4, 128, 152064, 131072, "full"),
    "Qwen1.5-MoE-A2.7B": ("qwen1.5-moe-a2.7b", 14_315_784_192, 2_689_173_504, "qwen2_moe", "llm", 24, 2048, 16, 16,
                          128, 151936, 32768, "full"),
    "gemma-7b": ("gemma-7b", 8_537_680_896, None, "gemma", "llm", 28, 3072, 16, 16, 256, 256000, 8192, "full"),
    "gemma-2-9b": ("gemma-2-9b", 9_241_705_984, None, "gemma2", "llm", 42, 3584, 16, 8, 256, 256000, 8192, "full"),
    "Phi-3-mini-4k-instruct": ("phi-3-mini", 3_821_079_552, None, "phi3", "llm", 32, 3072, 32, 32, 96, 32064, 4096,
                               "sliding"),  # sliding_window 2047 on every layer (transformers' Phi-3)
    "gpt2": ("gpt2", 124_439_808, None, "gpt2", "llm", 12, 768, 12, 12, 64, 50257, 1024, "full"),
    "gpt-j-6b": ("gpt-j-6b", 6_050_882_784, None, "gptj", "llm", 28, 4096, 16, 16, 256, 50400, 2048, "full"),
    "gpt-neox-20b": ("gpt-neox-20b", 20_554_567_680, None, "gpt_neox", "llm", 44, 6144, 64, 64, 96, 50432, 2048,
                     "full"),
    "opt-6.7b": ("opt-6.7b", 6_658_473_984, None, "opt", "llm", 32, 4096, 32, 32, 128, 50272, 2048, "full"),
    "bert-base-uncased": ("bert-base", 109_482_240, None, "bert", "encoder", 12, 768, 12, 12, 64, 30522, 512, "full"),
}

REQUIRED_PRESETS = (
    "llama-3-8b", "llama-3-70b", "llama-2-7b", "llama-2-13b", "llama-2-70b", "mistral-7b", "mixtral-8x7b",
    "qwen2-7b", "gpt-j-6b", "bert-base", "resnet-50", "mobilenet-v2", "yolov8n", "whisper-small",
    "llama-3.1-8b", "llama-3.1-405b", "gemma-2-9b", "phi-3-mini", "gpt2", "opt-6.7b", "kws-ds-cnn", "mlp-demo",
)


def write_config(tmp_path: Path, data: Any, name: str = "config.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


def load_fixture(folder: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CONFIGS / folder / "config.json").read_text())
    return data


def config_error(path: str) -> str:
    with pytest.raises(ModelConfigError) as info:
        hf.read_hf_config(path)
    msg = str(info.value)
    assert "\n" not in msg and info.value.exit_code == 2
    return msg


# ---------------------------------------------------------------------------------------- published counts


@pytest.mark.parametrize("folder", sorted(PUBLISHED))
def test_hf_config_gives_published_shape_and_count(folder: str) -> None:
    _, params, active, family, kind, layers, hidden, heads, kv, head_dim, vocab, ctx, attention = PUBLISHED[folder]
    arch = hf.read_hf_config(str(CONFIGS / folder / "config.json"))
    assert arch.params == params
    assert arch.active_params == (active or params)
    assert (arch.family, arch.kind, arch.layers, arch.hidden_size) == (family, kind, layers, hidden)
    assert (arch.attention_heads, arch.kv_heads, arch.head_dim) == (heads, kv, head_dim)
    assert (arch.vocab_size, arch.max_context, arch.attention) == (vocab, ctx, attention)
    assert arch.decoder is (kind == "llm")


@pytest.mark.parametrize("folder", sorted(PUBLISHED))
def test_hf_config_round_trips_to_its_preset(folder: str) -> None:
    """Reading the official config.json gives the same architecture as the embedded preset."""
    preset = presets.load_preset(PUBLISHED[folder][0])
    arch = hf.read_hf_config(str(CONFIGS / folder))  # a model folder works too
    ignore = {"name", "source", "max_context", "flops_per_inference", "input_shape", "inputs", "outputs",
              # the checkpoint (its torch_dtype, repository id) is not part of the architecture a preset stores
              "hf_id", "dtype", "weight_bytes", "expert_weight_bytes", "quantization"}
    assert arch.model_dump(exclude=ignore) == preset.model_dump(exclude=ignore)
    assert arch.params == presets.preset_entries()[preset.name].published_params


def test_count_params_by_hand_for_llama_2_7b() -> None:
    """Llama-2-7B from first principles: 32 x (4 x 4096^2 + 3 x 4096 x 11008 + 2 x 4096) + 2 x 32000 x 4096 + 4096."""
    shape = hf.TransformerShape(layers=32, hidden=4096, heads=32, kv_heads=32, head_dim=128, intermediate=11008,
                                vocab=32000)
    per_layer = 4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096
    assert hf.count_params(shape).total == 32 * per_layer + 2 * 32000 * 4096 + 4096 == 6_738_415_616


def test_gqa_shrinks_only_k_and_v() -> None:
    mha = hf.TransformerShape(layers=1, hidden=4096, heads=32, kv_heads=32, head_dim=128, intermediate=1, vocab=1)
    gqa = hf.TransformerShape(layers=1, hidden=4096, heads=32, kv_heads=8, head_dim=128, intermediate=1, vocab=1)
    assert hf.count_params(mha).total - hf.count_params(gqa).total == 2 * 4096 * (32 - 8) * 128


def test_gated_mlp_has_three_matrices_plain_two() -> None:
    base: dict[str, Any] = dict(layers=1, hidden=64, heads=1, kv_heads=1, head_dim=64, intermediate=256, vocab=1,
                                lm_head="none", final_norm=False, norms_per_layer=0)
    gated = hf.count_params(hf.TransformerShape(**base, mlp="gated")).total
    plain = hf.count_params(hf.TransformerShape(**base, mlp="plain")).total
    assert gated - plain == 64 * 256


def test_bert_base_cased_count() -> None:
    data = load_fixture("bert-base-uncased") | {"vocab_size": 28996}
    assert hf.arch_from_config(data, name="bert-base-cased", source="test").params == 108_310_272


def test_opt_350m_projection_and_post_norm() -> None:
    """OPT-350m: word_embed_proj_dim 512 (project_in/out) and no final LayerNorm: 331,196,416 params."""
    data = load_fixture("opt-6.7b") | {
        "hidden_size": 1024, "ffn_dim": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
        "word_embed_proj_dim": 512, "do_layer_norm_before": False,
    }
    assert hf.arch_from_config(data, name="opt-350m", source="test").params == 331_196_416


@pytest.mark.parametrize(
    ("hidden", "layers", "heads", "inter", "published"),
    [(768, 12, 12, 3072, 162_322_944), (2048, 16, 8, 8192, 1_011_781_632)],
)
def test_pythia_counts(hidden: int, layers: int, heads: int, inter: int, published: int) -> None:
    """Pythia-160m / Pythia-1b (gpt_neox, vocab 50,304): total params from Biderman et al. 2023, Table 1."""
    data = load_fixture("gpt-neox-20b") | {
        "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
        "intermediate_size": inter, "vocab_size": 50304,
    }
    assert hf.arch_from_config(data, name="pythia", source="test").params == published


def test_qwen2_moe_respects_sparse_step_and_dense_layers() -> None:
    data = load_fixture("Qwen1.5-MoE-A2.7B")
    full = hf.arch_from_config(data, name="a", source="t")
    half = hf.arch_from_config(data | {"decoder_sparse_step": 2}, name="b", source="t")
    fewer = hf.arch_from_config(data | {"mlp_only_layers": [0, 1]}, name="c", source="t")
    expert_mlp = 3 * 2048 * 1408
    moe_minus_dense = 60 * expert_mlp + 2048 * 60 + 3 * 2048 * 5632 + 2048 - 3 * 2048 * 5632
    assert full.params - half.params == 12 * moe_minus_dense
    assert full.params - fewer.params == 2 * moe_minus_dense
    assert full.active_params < full.params / 5


def test_tied_embeddings_drop_the_lm_head() -> None:
    data = load_fixture("Meta-Llama-3-8B")
    tied = hf.arch_from_config(data | {"tie_word_embeddings": True}, name="t", source="t")
    assert tied.tied_embeddings
    assert hf.read_hf_config(str(CONFIGS / "Meta-Llama-3-8B")).params - tied.params == 128256 * 4096


def test_llama_attention_bias_adds_q_k_v_o_biases() -> None:
    data = load_fixture("Meta-Llama-3-8B")
    biased = hf.arch_from_config(data | {"attention_bias": True}, name="b", source="t")
    assert biased.params - 8_030_261_248 == 32 * (4096 + 2 * 1024 + 4096)


def test_importing_the_model_modules_stays_light() -> None:
    code = ("import sys, planner.models.presets, planner.models.hf_config, planner.models.sized; "
            "planner.models.presets.all_presets(); "
            "print(sorted(m for m in ('ray', 'pulumi', 'boto3', 'kubernetes', 'tritonclient', 'onnxruntime', "
            "'matplotlib', 'numpy', 'torch', 'requests', 'urllib3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------- presets


def test_required_presets_exist() -> None:
    missing = set(REQUIRED_PRESETS) - set(presets.preset_names())
    assert not missing


@pytest.mark.parametrize("name", presets.preset_names())
def test_every_preset_loads_with_source_and_published_count(name: str) -> None:
    arch = presets.load_preset(name)
    entry = presets.preset_entries()[name]
    assert isinstance(arch, ModelArch) and arch.name == name
    assert len(arch.source) > 20 and arch.source == entry.source
    assert 0 < arch.active_params <= arch.params
    if entry.published_params is not None:
        assert arch.params == entry.published_params
    if entry.published_active_params is not None:
        assert arch.active_params == entry.published_active_params
    elif arch.experts == 1:
        assert arch.active_params == arch.params
    if arch.kind == "llm":
        assert arch.layers and arch.hidden_size and arch.attention_heads and arch.kv_heads and arch.vocab_size
        assert arch.attention_heads % arch.kv_heads == 0
        assert arch.max_context and arch.max_context >= 1024
    else:
        assert arch.flops_per_inference and arch.flops_per_inference > 0
        assert arch.input_shape and arch.inputs and arch.outputs


def test_mixtral_total_and_active() -> None:
    arch = presets.load_preset("mixtral-8x7b")
    assert round(arch.params / 1e9, 1) == 46.7 and round(arch.active_params / 1e9, 1) == 12.9
    assert (arch.experts, arch.experts_per_token) == (8, 2)


@pytest.mark.parametrize(
    ("name", "params", "flops", "shape"),
    [
        ("resnet-50", 25_557_032, 8.18e9, (3, 224, 224)),
        ("mobilenet-v2", 3_504_872, 6.0e8, (3, 224, 224)),
        ("yolov8n", 3_157_200, 8.7e9, (3, 640, 640)),
        ("kws-ds-cnn", 23_756, 5.31e6, (49, 10, 1)),
        ("mlp-demo", 85_002, 168_960, (64,)),
    ],
)
def test_non_llm_presets(name: str, params: int, flops: float, shape: tuple[int, ...]) -> None:
    arch = presets.load_preset(name)
    assert (arch.params, arch.flops_per_inference, arch.input_shape) == (params, flops, shape)
    assert arch.kind != "llm" and arch.attention == "none"


def test_mlp_demo_matches_the_shipped_model() -> None:
    arch = presets.load_preset("mlp-demo")
    assert arch.params == (64 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)
    assert arch.flops_per_inference == 2 * (64 * 256 + 256 * 256 + 256 * 10)
    assert arch.kind == "other"
    assert arch.inputs == (TensorSpec(name="input", dtype="fp32", shape=(64,)),)
    assert arch.outputs == (TensorSpec(name="logits", dtype="fp32", shape=(10,)),)


def test_whisper_small_is_an_encoder_decoder_audio_model() -> None:
    arch = presets.load_preset("whisper-small")
    assert arch.kind == "audio" and arch.decoder and arch.family == "whisper"
    assert 240e6 < arch.params < 245e6


def test_kws_ds_cnn_from_its_layers() -> None:
    """conv 10x4x1x64 + 4 x (depthwise 3x3x64 + BN + pointwise 64x64 + BN) + BN + FC 64->12, all with biases."""
    params = (10 * 4 * 64 + 64) + 2 * 64 + 4 * ((9 * 64 + 64) + 2 * 64 + (64 * 64 + 64) + 2 * 64) + (64 * 12 + 12)
    macs = 25 * 5 * 64 * 40 + 4 * (25 * 5 * 64 * 9 + 25 * 5 * 64 * 64) + 64 * 12
    arch = presets.load_preset("kws-ds-cnn")
    assert arch.params == params
    assert arch.flops_per_inference == pytest.approx(2 * macs, rel=0.01)


@pytest.mark.parametrize("alias", ["meta-llama/Meta-Llama-3-8B", "LLAMA-3-8B", "  llama3-8b ", "Llama-3-8b"])
def test_aliases_and_case(alias: str) -> None:
    assert presets.load_preset(alias).name == "llama-3-8b"


def test_aliases_are_unique_across_presets() -> None:
    seen: dict[str, str] = {}
    for name, entry in presets.preset_entries().items():
        for key in (name, *entry.aliases):
            assert seen.setdefault(key.lower(), name) == name


def test_unknown_preset_suggests_close_matches() -> None:
    with pytest.raises(ModelConfigError) as info:
        presets.load_preset("llama-3-7b")
    msg = str(info.value)
    assert "unknown model preset 'llama-3-7b'" in msg and "did you mean" in msg and "llama-3-8b" in msg
    assert "To fix:" in msg and "\n" not in msg


def test_unknown_preset_without_close_match_lists_presets() -> None:
    with pytest.raises(ModelConfigError) as info:
        presets.load_preset("zzzzzz")
    assert "did you mean" not in str(info.value) and "resnet-50" in str(info.value)


# -------------------------------------------------------------------------------------- reader: error cases


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in config_error(str(tmp_path / "nope.json"))


def test_folder_without_config(tmp_path: Path) -> None:
    assert "not found" in config_error(str(tmp_path))


def test_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    assert "not a regular file" in config_error(str(fifo))


def test_oversized_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, '{"model_type": "llama", "pad": "' + "x" * hf.MAX_CONFIG_BYTES + '"}')
    assert "byte limit" in config_error(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"model_type": "\xff\xfe"}')
    assert "not UTF-8" in config_error(str(path))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"model_type": "llama",', "not valid JSON at line 1"),
        ("", "not valid JSON"),
        ('{"model_type": "llama", "hidden_size": NaN}', "field 'hidden_size' = nan: must be a whole number"),
        ('{"model_type": "llama", "model_type": "gpt2"}', "duplicate key 'model_type'"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_bad_json(tmp_path: Path, text: str, needle: str) -> None:
    assert needle in config_error(write_config(tmp_path, text))


@pytest.mark.parametrize("data", [[1, 2], "llama", 42, None])
def test_json_that_is_not_an_object(tmp_path: Path, data: Any) -> None:
    assert "must be a JSON object" in config_error(write_config(tmp_path, json.dumps(data)))


def test_unknown_model_type_names_it_and_the_supported_list(tmp_path: Path) -> None:
    msg = config_error(write_config(tmp_path, {"model_type": "mamba", "hidden_size": 768}))
    assert "'mamba' is not supported" in msg
    assert all(t in msg for t in hf.SUPPORTED_MODEL_TYPES)


def test_missing_model_type(tmp_path: Path) -> None:
    assert "'model_type' is missing" in config_error(write_config(tmp_path, {"hidden_size": 4096}))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"num_hidden_layers": "32"}, "field 'num_hidden_layers' = '32': must be an integer, got str"),
        ({"num_hidden_layers": True}, "field 'num_hidden_layers' = True: must be an integer"),
        ({"hidden_size": -4096}, "field 'hidden_size' = -4096: must be at least 1"),
        ({"vocab_size": 0}, "field 'vocab_size' = 0: must be at least 1"),
        ({"hidden_size": 10**30}, "field 'hidden_size'"),
        ({"num_hidden_layers": 1e300}, "field 'num_hidden_layers'"),
        ({"intermediate_size": 14336.5}, "must be a whole number"),
        ({"num_key_value_heads": 5}, "field 'num_key_value_heads' = 5: must divide num_attention_heads"),
        ({"num_attention_heads": 7, "num_key_value_heads": 7}, "must divide hidden size"),
        ({"tie_word_embeddings": "no"}, "field 'tie_word_embeddings' = 'no': must be true or false"),
        ({"num_hidden_layers": 4096, "hidden_size": 262144, "num_attention_heads": 2048,
          "num_key_value_heads": 2048, "intermediate_size": 4_000_000}, "over the 1e+14 limit"),
    ],
)
def test_bad_fields_name_the_field(tmp_path: Path, change: dict[str, Any], needle: str) -> None:
    data = load_fixture("Meta-Llama-3-8B")
    for key, value in change.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    msg = config_error(write_config(tmp_path, data))
    assert needle in msg and "To fix:" in msg


def test_a_left_out_field_takes_the_transformers_default() -> None:
    """LlamaConfig's hidden_size defaults to 4096, as Meta-Llama-3-8B has it: leaving it out changes nothing."""
    data = load_fixture("Meta-Llama-3-8B")
    del data["hidden_size"]
    assert hf.arch_from_config(data, name="x", source="t").params == 8_030_261_248


def test_infinity_is_accepted(tmp_path: Path) -> None:
    """Published configs carry Infinity (Nemotron-H's time_step_limit): the reader accepts it."""
    data = load_fixture("Meta-Llama-3-8B")
    text = json.dumps(data)[:-1] + ', "time_step_limit": [0.0, Infinity]}'
    assert hf.read_hf_config(write_config(tmp_path, text)).params == 8_030_261_248


def test_moe_top_k_over_experts(tmp_path: Path) -> None:
    data = load_fixture("Mixtral-8x7B-v0.1") | {"num_experts_per_tok": 9}
    assert "num_experts_per_tok' = 9: must be at most num_local_experts (8)" in config_error(
        write_config(tmp_path, data))


def test_mlp_only_layers_must_be_integers(tmp_path: Path) -> None:
    data = load_fixture("Qwen1.5-MoE-A2.7B") | {"mlp_only_layers": ["0"]}
    assert "'mlp_only_layers'" in config_error(write_config(tmp_path, data))


def test_reader_makes_no_network_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert hf.read_hf_config(str(CONFIGS / "gpt2" / "config.json")).params == 124_439_808


def test_name_and_source_carry_no_local_path(tmp_path: Path) -> None:
    data = load_fixture("Meta-Llama-3-8B") | {"_name_or_path": "/home/someone/models/Llama-3-8B-Custom"}
    folder = tmp_path / "my-model"
    folder.mkdir()
    arch = hf.read_hf_config(write_config(folder, data))
    assert arch.name == "llama-3-8b-custom"
    assert str(tmp_path) not in arch.source and "/home/someone" not in arch.source
    assert arch.source.startswith("Hugging Face my-model/config.json (model_type llama)")
    plain = hf.read_hf_config(str(CONFIGS / "Meta-Llama-3-8B" / "config.json"))
    assert plain.name == "meta-llama-3-8b"
    assert hf.read_hf_config(str(CONFIGS / "Meta-Llama-3-8B")) == plain


# ------------------------------------------------------------------------------------------ sized models


@pytest.mark.parametrize(
    ("params", "layers", "hidden", "kv"),
    [(8.03e9, 32, 4096, 8), (70e9, 79, 8192, 8), (405e9, 118, 16384, 8), (1.2e9, 17, 2048, 8)],
)
def test_sized_llm_follows_the_llama_family(params: float, layers: int, hidden: int, kv: int) -> None:
    arch = sized.from_spec(ModelSpec(params=params))
    assert (arch.kind, arch.family, arch.params, arch.active_params) == ("llm", "llama", round(params),
                                                                         round(params))
    assert (arch.layers, arch.hidden_size, arch.kv_heads) == (layers, hidden, kv)
    assert arch.source.startswith("sized: a Llama-3-style decoder")


def test_sized_8b_reproduces_llama_3_8b_exactly() -> None:
    shape = sized.standard_shape(8_030_261_248)
    assert hf.count_params(shape).total == 8_030_261_248


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=1e7, max_value=1e13))
def test_sized_shape_is_consistent_and_close_to_the_size(params: float) -> None:
    shape = sized.standard_shape(params)
    counted = hf.count_params(shape).total
    assert 0.85 < counted / params < 1.15
    assert shape.heads * shape.head_dim == shape.hidden and shape.heads % shape.kv_heads == 0
    arch = sized.from_spec(ModelSpec(params=params))
    assert arch.params == round(params) and arch.layers == shape.layers


def test_sized_layers_grow_with_size() -> None:
    sizes = [1e8, 1e9, 7e9, 13e9, 70e9, 400e9, 2e12]
    shapes = [sized.standard_shape(p) for p in sizes]
    assert all(a.hidden <= b.hidden for a, b in itertools.pairwise(shapes))
    assert shapes[-1].layers > shapes[0].layers


def test_sized_with_pinned_layers_or_hidden() -> None:
    deep = sized.from_spec(ModelSpec(params=7e9, layers=32))
    assert deep.layers == 32 and deep.hidden_size == 4096  # widths come in steps of 8 heads x 128
    wide = sized.from_spec(ModelSpec(params=7e9, hidden_size=4096))
    assert wide.hidden_size == 4096 and wide.layers == 27
    both = sized.from_spec(ModelSpec(params=7e9, layers=32, hidden_size=4096))
    assert (both.layers, both.hidden_size) == (32, 4096)


def test_sized_inconsistent_shape_is_refused() -> None:
    with pytest.raises(ModelConfigError, match="layers = 2 and hidden_size = 128"):
        sized.from_spec(ModelSpec(params=70e9, layers=2, hidden_size=128))


def test_sized_names() -> None:
    assert sized.from_spec(ModelSpec(params=13e9)).name == "llm-13b"
    assert sized.from_spec(ModelSpec(params=1.5e9)).name == "llm-1.5b"
    assert sized.from_spec(ModelSpec(params=350e6)).name == "llm-350m"
    assert sized.from_spec(ModelSpec(params=13e9, name="my-llm")).name == "my-llm"


def test_custom_vision_model() -> None:
    spec = ModelSpec(params=11.7e6, flops_per_inference=3.6e9, input_shape=(3, 224, 224), kind="vision")
    arch = sized.from_spec(spec)
    assert (arch.kind, arch.family, arch.params, arch.flops_per_inference) == ("vision", "custom", 11_700_000, 3.6e9)
    assert arch.input_shape == (3, 224, 224) and arch.attention == "none" and not arch.is_llm
    assert arch.inputs == (TensorSpec(name="input", dtype="fp32", shape=(3, 224, 224)),)


def test_custom_model_defaults_to_other() -> None:
    arch = sized.from_spec(ModelSpec(params=1e5, flops_per_inference=2e5, input_shape=(16,)))
    assert arch.kind == "other"


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (ModelSpec(params=5e6, kind="vision"), "a non-LLM model is sized from its FLOPs"),
        (ModelSpec(params=5e6, flops_per_inference=1e9), "needs input_shape"),
        (ModelSpec(params=7e9, flops_per_inference=1e9, input_shape=(10,), kind="llm"), "kind = 'llm'"),
        (ModelSpec(params=5e5), "too small for a language model"),
        (ModelSpec(params=5e13), "over the 1e+13 limit"),
    ],
)
def test_sized_errors(spec: ModelSpec, needle: str) -> None:
    with pytest.raises(ModelConfigError) as info:
        sized.from_spec(spec)
    assert needle in str(info.value) and "To fix:" in str(info.value)


# ----------------------------------------------------------------------------------------------- resolve()


def test_resolve_all_three_sources() -> None:
    assert resolve(ModelSpec(preset="mixtral-8x7b")).experts == 8
    assert resolve(ModelSpec(hf_config=str(CONFIGS / "gpt2" / "config.json"))).params == 124_439_808
    assert resolve(ModelSpec(params=13e9)).kind == "llm"
    named = resolve(ModelSpec(preset="resnet-50", name="edge-cam", max_context=None))
    assert named.name == "edge-cam" and named.params == 25_557_032


def test_resolve_is_deterministic() -> None:
    a = resolve(ModelSpec(hf_config=str(CONFIGS / "Mixtral-8x7B-v0.1")))
    b = resolve(ModelSpec(hf_config=str(CONFIGS / "Mixtral-8x7B-v0.1")))
    assert a == b and a.model_dump_json() == b.model_dump_json()
    assert math.isclose(a.active_params / a.params, 12.9 / 46.7, rel_tol=0.01)
