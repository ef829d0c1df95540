"""Spec loading: valid examples load; every kind of bad input is one SpecError line naming field and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.errors import SpecError
from planner.specs import Spec, load_spec, spec_from_data

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if not p.name.endswith(".catalog.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_load(path: Path) -> None:
    spec = load_spec(path)
    assert isinstance(spec, Spec)
    assert spec.name == path.stem


def test_overlay_and_config_paths_resolve_relative_to_the_spec(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    f = tmp_path / "sub" / "s.yaml"
    f.write_text("model: {hf_config: cfg.json}\ncatalog_overlay: inv.yaml\n")
    spec = load_spec(f)
    assert spec.model.hf_config == str(tmp_path / "sub" / "cfg.json")
    assert spec.catalog_overlay == str(tmp_path / "sub" / "inv.yaml")


def test_spec_is_immutable() -> None:
    spec = spec_from_data({"model": {"preset": "llama-3-8b"}})
    with pytest.raises(Exception, match="frozen"):
        spec.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("model: {preset: llama-3-8b}\nmodle: {}\n", "modle"),
        ("model: {preset: llama-3-8b, params: 7e9}\n", "exactly one of"),
        ("model: {}\n", "exactly one of"),
        ("model: {params: -5}\n", "model.params"),
        ("model: {params: .nan}\n", "model.params"),
        ("model: {preset: x}\nworkload: {kind: inference, requests_per_s: 0}\n", "requests_per_s"),
        ("model: {preset: x}\nworkload: {kind: training}\n", "tokens"),
        ("model: {preset: x}\nworkload: {kind: sleeping}\n", "workload"),
        ("model: {preset: x}\nconstraints: {privacy: secret}\n", "constraints.privacy"),
        ("model: {preset: x}\nconstraints: {placements: []}\n", "placements"),
        ("model: {preset: x}\nconstraints: {ttft_s: fast}\n", "constraints.ttft_s"),
        ("model: {preset: x}\nconstraints: {precisions: [fp64]}\n", "precisions"),
        ("model: {preset: x}\nname: 'Bad Name!'\n", "name"),
        ("- just\n- a list\n", "must be a mapping"),
        ("", "is empty"),
        ("model: [unclosed\n", "not valid YAML at line"),
        ("model: {preset: a}\nmodel: {preset: b}\n", "duplicate key"),
        ("a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
         "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
         "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n", "alias"),
        ("model: " + "[" * 5000 + "]" * 5000 + "\n", "YAML"),
    ],
)
def test_bad_specs_give_one_clear_line(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "spec.yaml"
    f.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(f)
    line = str(info.value)
    assert needle in line
    assert "\n" not in line
    assert "Traceback" not in line


def test_binary_missing_and_directory(tmp_path: Path) -> None:
    b = tmp_path / "b.yaml"
    b.write_bytes(b"\x00\x01\x02\xff\xfe")
    with pytest.raises(SpecError, match=r"not UTF-8|binary"):
        load_spec(b)
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="directory"):
        load_spec(tmp_path)


def test_error_names_field_value_and_fix(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("model: {preset: llama-3-8b}\nconstraints: {budget_usd_per_month: -3}\n")
    with pytest.raises(SpecError) as info:
        load_spec(f)
    msg = str(info.value)
    assert "constraints.budget_usd_per_month" in msg and "-3" in msg and "To fix:" in msg
