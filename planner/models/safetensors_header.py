"""Exact weight bytes of a local model folder, read from its safetensors headers only.

A ``.safetensors`` file starts with an 8-byte little-endian header length N, then N bytes of JSON mapping each
tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (plus an optional ``__metadata__``); the tensor
data follows (https://github.com/huggingface/safetensors, "Format"). The bytes of the weights are the sum of
``end - begin``: nothing past the header is read. A sharded checkpoint's ``model.safetensors.index.json`` names the
shards and records ``metadata.total_size``, used when the shards themselves are not in the folder.

Everything is read-only and size-capped; a broken file gives one line naming it (ModelConfigError).
"""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path
from typing import Any

from planner.errors import ModelConfigError

MAX_HEADER_BYTES = 100_000_000
"""The safetensors reference implementation refuses headers over 100 MB."""
MAX_INDEX_BYTES = 50_000_000
MAX_SHARDS = 10_000
MAX_TOTAL_BYTES = 1 << 50
_FIX = "re-download the file, or point hf_config at the config.json alone"


def _open_regular(path: Path) -> tuple[Any, int]:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    fh = os.fdopen(fd, "rb")
    st = os.fstat(fh.fileno())
    if not stat.S_ISREG(st.st_mode):
        fh.close()
        raise ModelConfigError(f"model folder file {path.name} is not a regular file", fix=_FIX)
    return fh, st.st_size


def header_bytes(path: Path) -> int:
    """Bytes of tensor data one ``.safetensors`` file holds, from its header alone."""
    try:
        fh, size = _open_regular(path)
    except OSError as e:
        raise ModelConfigError(f"cannot read {path.name}: {e.strerror}", fix=_FIX) from None
    with fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelConfigError(f"{path.name} is not a safetensors file: shorter than its 8-byte header length",
                                   fix=_FIX)
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES or n + 8 > size:
            raise ModelConfigError(f"{path.name} is not a safetensors file: header length {n:,} is over the "
                                   f"{min(MAX_HEADER_BYTES, max(size - 8, 0)):,} bytes it can have", fix=_FIX)
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelConfigError(f"{path.name} has a safetensors header that is not valid JSON", fix=_FIX) from None
    if not isinstance(header, dict):
        raise ModelConfigError(f"{path.name} has a safetensors header that is not a JSON object", fix=_FIX)
    data_len = size - 8 - n
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_len):
            shown = name if len(name) <= 60 else name[:57] + "..."
            raise ModelConfigError(f"{path.name}: tensor {shown!r} has data_offsets outside the file's "
                                   f"{data_len:,} data bytes", fix=_FIX)
        total += offsets[1] - offsets[0]
    return total


def _index_total(path: Path) -> tuple[int | None, list[str]]:
    try:
        fh, size = _open_regular(path)
    except OSError as e:
        raise ModelConfigError(f"cannot read {path.name}: {e.strerror}", fix=_FIX) from None
    with fh:
        if size > MAX_INDEX_BYTES:
            raise ModelConfigError(f"{path.name} is over the {MAX_INDEX_BYTES:,} byte limit", fix=_FIX)
        raw = fh.read(MAX_INDEX_BYTES + 1)
    try:
        index = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelConfigError(f"{path.name} is not valid JSON", fix=_FIX) from None
    if not isinstance(index, dict):
        raise ModelConfigError(f"{path.name} is not a JSON object", fix=_FIX)
    meta = index.get("metadata")
    total = meta.get("total_size") if isinstance(meta, dict) else None
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or not
                              0 < total < MAX_TOTAL_BYTES):
        raise ModelConfigError(f"{path.name}: metadata.total_size = {total!r} is not a byte count", fix=_FIX)
    wmap = index.get("weight_map")
    shards = sorted({v for v in wmap.values() if isinstance(v, str)}) if isinstance(wmap, dict) else []
    if len(shards) > MAX_SHARDS or any("/" in s or "\\" in s or s.startswith(".") for s in shards):
        raise ModelConfigError(f"{path.name}: weight_map names shards outside the folder", fix=_FIX)
    return total, shards


def folder_weight_bytes(folder: Path) -> tuple[int, str] | None:
    """(exact weight bytes, how they were found) for a model folder, or None when it holds no safetensors.

    Shard headers are summed when every shard is present; otherwise the index's ``total_size`` is used.
    """
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        total, shards = _index_total(index)
        if shards and all((folder / s).is_file() for s in shards):
            return sum(header_bytes(folder / s) for s in shards), f"{len(shards)} safetensors headers"
        if total is not None:
            return total, "model.safetensors.index.json total_size"
        raise ModelConfigError(f"{index.name} has no metadata.total_size and its shards are not in the folder",
                               fix=_FIX)
    files = sorted(p for p in folder.glob("*.safetensors") if not p.name.startswith("."))
    if not files:
        return None
    if len(files) > MAX_SHARDS:
        raise ModelConfigError(f"model folder holds over {MAX_SHARDS:,} safetensors files", fix=_FIX)
    return sum(header_bytes(p) for p in files), f"{len(files)} safetensors header" + ("s" if len(files) > 1 else "")
