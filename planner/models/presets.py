"""Embedded model presets (``presets.yaml``): exact architectures of well-known models, each with its source.

Transformer presets store the architecture keys of the official Hugging Face ``config.json`` and are built by
the same reader as a user's file (:func:`planner.models.hf_config.arch_from_config`), so their parameter
counts are counted from the shape (and checked against the published figure in the tests). CNN, audio,
microcontroller and demo presets store their :class:`~planner.models.arch.ModelArch` fields directly.

Lookup is case-insensitive and accepts aliases (e.g. the Hugging Face repo id ``meta-llama/Meta-Llama-3-8B``);
an unknown name raises :class:`~planner.errors.ModelConfigError` with the closest matches.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import ValidationError

from planner.errors import ModelConfigError
from planner.models.arch import ModelArch
from planner.models.hf_config import arch_from_config, hf_id_of

__all__ = ["PresetEntry", "all_presets", "load_preset", "preset_entries", "preset_names", "resolve_name"]


@dataclass(frozen=True)
class PresetEntry:
    """One row of ``presets.yaml`` as stored: what the tests check against the built :class:`ModelArch`."""

    name: str
    aliases: tuple[str, ...]
    source: str
    published_params: int | None
    published_active_params: int | None
    hf_config: dict[str, Any] | None
    overrides: dict[str, Any]
    arch: dict[str, Any] | None
    hf_id: str | None = None
    card_params: str | None = None
    """the total as the model card / paper prints it ("235B"); tests check the counted shape rounds to it"""
    card_active_params: str | None = None
    card_active_basis: str | None = None
    """"no-embedding": the card's active count leaves the input embedding table out (gpt-oss)"""


def _bad(message: str) -> ModelConfigError:
    return ModelConfigError(f"presets.yaml: {message}", fix="this is an mlplan packaging bug: reinstall mlplan")


@cache
def preset_entries() -> dict[str, PresetEntry]:
    """All entries of ``presets.yaml``, keyed by preset name (read once, then cached)."""
    text = resources.files("planner.models").joinpath("presets.yaml").read_text(encoding="utf-8")
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # packaged data: libyaml's C parser
    if not isinstance(data, dict) or not isinstance(data.get("presets"), dict):
        raise _bad("expected a mapping with a 'presets' mapping")
    entries: dict[str, PresetEntry] = {}
    for name, row in data["presets"].items():
        if not isinstance(name, str) or not isinstance(row, dict):
            raise _bad(f"entry {name!r} must be a mapping")
        has_cfg, has_arch = isinstance(row.get("hf_config"), dict), isinstance(row.get("arch"), dict)
        if has_cfg == has_arch:
            raise _bad(f"entry {name!r} needs exactly one of hf_config or arch")
        source = row.get("source") if has_cfg else row["arch"].get("source")
        if not isinstance(source, str) or not source.strip():
            raise _bad(f"entry {name!r} has no source")
        aliases = row.get("aliases") or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise _bad(f"entry {name!r}: aliases must be a list of names")
        hf_id = row.get("hf_id")
        if hf_id is None and has_cfg:  # the Hugging Face repo id among the aliases
            hf_id = next((a for a in aliases if hf_id_of(a)), None)
        if hf_id is not None and not hf_id_of(hf_id):
            raise _bad(f"entry {name!r}: hf_id {hf_id!r} is not an org/name repository id")
        card = {k: (str(row[k]) if row.get(k) is not None else None)
                for k in ("card_params", "card_active_params", "card_active_basis")}
        entries[name] = PresetEntry(
            name=name,
            aliases=tuple(aliases),
            source=" ".join(source.split()),
            published_params=row.get("published_params"),
            published_active_params=row.get("published_active_params"),
            hf_config=dict(row["hf_config"]) if has_cfg else None,
            overrides=dict(row.get("overrides") or {}),
            arch=dict(row["arch"]) if has_arch else None,
            hf_id=hf_id,
            **card,
        )
    return entries


@cache
def _index() -> dict[str, str]:
    """Lower-cased name or alias -> preset name."""
    index: dict[str, str] = {}
    for name, entry in preset_entries().items():
        for key in (name, *entry.aliases):
            low = key.lower()
            if index.get(low, name) != name:
                raise _bad(f"alias {key!r} names both {index[low]!r} and {name!r}")
            index[low] = name
    return index


def preset_names() -> tuple[str, ...]:
    """The canonical preset names, sorted."""
    return tuple(sorted(preset_entries()))


def resolve_name(name: str) -> str:
    """The canonical preset name for ``name`` (a preset name or alias, any case), or a ModelConfigError."""
    key = " ".join(name.split()).lower()
    index = _index()
    if key in index:
        return index[key]
    close = difflib.get_close_matches(key, list(index), n=3, cutoff=0.6)
    suggestions = list(dict.fromkeys(index[c] for c in close))
    hint = f" (did you mean {' or '.join(suggestions)})" if suggestions else ""
    shown = name if len(name) <= 60 else name[:57] + "..."
    raise ModelConfigError(
        f"unknown model preset {shown!r}{hint}",
        fix=f"use a preset from `mlplan catalog --models` ({', '.join(preset_names())}), "
            "or give hf_config: path/to/config.json, or params: <count>",
    )


def _build(entry: PresetEntry) -> ModelArch:
    where = f"presets.yaml entry {entry.name!r}"
    try:
        if entry.hf_config is not None:
            arch = arch_from_config(entry.hf_config, name=entry.name, source=entry.source, where=where)
            if entry.overrides:
                arch = ModelArch.model_validate({**arch.model_dump(), **entry.overrides})
            return arch.model_copy(update={"hf_id": entry.hf_id}) if entry.hf_id else arch
        assert entry.arch is not None
        fields = {**entry.arch, "name": entry.name, "source": entry.source}
        if entry.hf_id and "hf_id" not in fields:
            fields["hf_id"] = entry.hf_id
        return ModelArch.model_validate(fields)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise _bad(f"entry {entry.name!r} field {loc!r}: {first['msg']}") from None


@cache
def load_preset(name: str) -> ModelArch:
    """The :class:`ModelArch` of a preset (by name or alias, any case)."""
    return _build(preset_entries()[resolve_name(name)])


def all_presets() -> dict[str, ModelArch]:
    """Every preset, built, keyed by canonical name (for ``mlplan catalog --models``)."""
    return {name: load_preset(name) for name in preset_names()}
