"""The demo model: a small MLP (64 -> 256 -> 256 -> 10, ReLU) exported to ONNX, built deterministically.

Weights come from ``numpy.random.default_rng(SEED)`` (He-normal scaled), the graph from ``onnx.helper``; no
timestamps or producer versions are written, so the bytes are identical on every run and every machine with the
same ``onnx``/``numpy`` versions. 85,002 parameters. ``python -m serving.model.demo OUT.onnx`` writes it.

``builtin://mlp-demo`` resolves to a cached build of it (see :func:`builtin_path`).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sys
import tempfile
from pathlib import Path

NAME = "mlp-demo"
SEED = 20241124
LAYERS = (64, 256, 256, 10)
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
OPSET = 17
IR_VERSION = 8
PARAMS = sum(a * b + b for a, b in itertools.pairwise(LAYERS))  # 85,002

BUILTINS = (NAME,)


def build_bytes() -> bytes:
    """Serialised ONNX model of the demo MLP (identical bytes on every call)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(SEED)
    inits = []
    nodes = []
    prev = INPUT_NAME
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(LAYERS)):
        w = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (rng.standard_normal(fan_out) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        last = i == len(LAYERS) - 2
        out = OUTPUT_NAME if last else f"h{i}"
        gemm_out = out if last else f"z{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [gemm_out], name=f"fc{i}"))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [out], name=f"relu{i}"))
        prev = out
    graph = helper.make_graph(
        nodes,
        NAME,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", LAYERS[0]])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", LAYERS[-1]])],
        initializer=inits,
    )
    model = helper.make_model(graph, producer_name="mlplan", producer_version="1",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString(deterministic=True)
    return data


def write(path: Path) -> Path:
    """Write the demo model to ``path`` atomically (a reader never sees a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = build_bytes()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def cache_dir() -> Path:
    """``$MLPLAN_CACHE_DIR`` or ``$XDG_CACHE_HOME/mlplan`` or ``~/.cache/mlplan``."""
    env = os.environ.get("MLPLAN_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlplan"


def builtin_path(name: str = NAME) -> Path:
    """Path of a cached build of builtin model ``name`` (built on first use, reused afterwards)."""
    from planner.errors import InputError

    if name not in BUILTINS:
        raise InputError(f"unknown builtin model 'builtin://{name}'",
                         fix=f"use one of: {', '.join('builtin://' + b for b in BUILTINS)}")
    path = cache_dir() / "models" / f"{name}.onnx"
    if path.is_file():
        return path
    return write(path)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m serving.model.demo OUT.onnx", file=sys.stderr)
        return 2
    out = write(Path(args[0]))
    print(f"wrote {out} ({out.stat().st_size} bytes, {PARAMS} params, sha256 {sha256(out)[:16]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
