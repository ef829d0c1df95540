"""Coverage of the Hugging Face config reader: one row per config, counted against transformers.

For every config under ``shared/hf-configs`` and ``tests/data/hf-configs-extra``: whether mlplan accepts it, its
params against ``transformers`` (meta-device instantiation in the oracle venv ``.venv-oracle``, when it is there),
active params, and the KV cache per sequence (bf16, each layer as it really is) at 8k and 32k tokens plus any fixed
recurrent state.

    .venv/bin/python benchmarks/models_coverage.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner.errors import MlplanError  # noqa: E402
from planner.estimator.inference import kv_bytes_per_sequence, state_bytes_per_sequence  # noqa: E402
from planner.estimator.shape import shape_of  # noqa: E402
from planner.models import hf_config as hf  # noqa: E402


def _folders() -> list[Path]:
    out: list[Path] = []
    for base in (ROOT / "shared" / "hf-configs", ROOT.parent / "shared" / "hf-configs",
                 ROOT.parent.parent / "shared" / "hf-configs"):
        if base.is_dir():
            out += sorted(p.parent for p in base.glob("*/config.json"))
            break
    out += sorted(p.parent for p in (ROOT / "tests" / "data" / "hf-configs-extra").glob("*/config.json"))
    return out


def _oracle(folders: list[Path]) -> dict[str, Any]:
    py = ROOT / ".venv-oracle" / "bin" / "python"
    if not py.exists():
        return {}
    todo = {str(f): json.loads((f / "config.json").read_text()) for f in folders}
    out = subprocess.run([str(py), str(ROOT / "tests" / "oracle_transformers.py")], input=json.dumps(todo),
                         capture_output=True, text=True, check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def main() -> None:
    folders = _folders()
    oracle = _oracle(folders)
    head = (f"{'config':28s} {'family':14s} {'ok':3s} {'params':>17s} {'transformers':>17s} {'diff':>7s} "
            f"{'active':>16s} {'KV/seq 8k':>10s} {'KV/seq 32k':>10s} {'state':>9s}")
    print(head)
    print("-" * len(head))
    for f in folders:
        try:
            a = hf.read_hf_config(str(f))
        except MlplanError as e:
            print(f"{f.name:28s} {'':14s} no  {str(e)[:80]}")
            continue
        s = shape_of(a)
        r = oracle.get(str(f), {})
        ref = r.get("params")
        diff = f"{(a.params - ref) / ref:+.2%}" if ref else "n/a"
        kv8 = kv_bytes_per_sequence(s, "bf16", min(8192, a.max_context or 8192)) / 1e9
        kv32 = kv_bytes_per_sequence(s, "bf16", min(32768, a.max_context or 32768)) / 1e9
        state = state_bytes_per_sequence(s, "bf16") / 1e9
        print(f"{f.name:28s} {a.family:14s} yes {a.params:>17,} {ref if ref else 'n/a':>17,} {diff:>7s} "
              f"{a.active_params:>16,} {kv8:>8.3f}GB {kv32:>8.3f}GB {state:>7.3f}GB")
    if not oracle:
        print("(transformers column: build the oracle venv with `make .venv-oracle/.installed`)")
    print("KV/seq: bf16, one sequence of that many tokens (capped at the model's context), every layer as it keeps "
          "its cache (sliding / chunked windows, MLA latent, cross-attention); state: fixed Mamba-2 / DeltaNet state.")


if __name__ == "__main__":
    main()
