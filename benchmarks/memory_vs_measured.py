"""Estimator vs measurement: peak memory (inference with KV cache, AdamW training) and CPU decode speed.

Builds GPT-2-style decoders with torch on the CPU (random init, nothing downloaded), runs each measurement in a
fresh subprocess, and prints predicted vs measured with the error. Memory is the peak resident set
(``VmHWM`` in /proc/self/status) minus the resident set after ``import torch``: what the model, its KV cache,
activations, gradients and optimizer states add. Speed is compared with a CPU HardwareProfile built from this
machine's measured GEMM FLOP/s and copy bandwidth.

torch is not a dependency of mlplan. Put it in a separate virtualenv (on these machines
``pip install torch==2.13.0`` takes a CPU build; plain ``torch`` pulls a multi-GB CUDA build)::

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
    .venv/bin/python benchmarks/memory_vs_measured.py --torch-python /tmp/torchvenv/bin/python

Goal: memory within 15%, latency within 30%.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.estimator import HardwareProfile, estimate_inference, estimate_training, inference_memory
from planner.models.arch import ModelArch

CHILD = r'''
import json, sys, time

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)

import torch
import torch.nn as nn
import torch.nn.functional as F

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
torch.manual_seed(0)

def measure_hw(cfg):
    """This machine's peak now: a 2048^3 GEMM per dtype and a 256 MB copy (STREAM copy counts 2 x bytes)."""
    n = 2048
    for dt in (torch.float32, torch.bfloat16):
        a = torch.randn(n, n, dtype=dt); b = torch.randn(n, n, dtype=dt)
        a @ b
        best = 1e9
        for _ in range(4):
            t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
        cfg["flops_" + str(dt).split(".")[1]] = 2 * n**3 / best
    x = torch.ones(64 * 2**20); y = torch.empty_like(x)
    y.copy_(x)
    best = 1e9
    for _ in range(5):
        t = time.perf_counter(); y.copy_(x); best = min(best, time.perf_counter() - t)
    cfg["bandwidth"] = 2 * x.numel() * 4 / best
    del x, y


DT = {"fp32": torch.float32, "bf16": torch.bfloat16}[cfg["dtype"]]
L, H, NH, V, CTX = cfg["layers"], cfg["hidden"], cfg["heads"], cfg["vocab"], cfg["max_pos"]
HD = H // NH
kw = {"dtype": DT}


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(H, **kw); self.qkv = nn.Linear(H, 3 * H, **kw); self.proj = nn.Linear(H, H, **kw)
        self.ln2 = nn.LayerNorm(H, **kw); self.fc = nn.Linear(H, 4 * H, **kw); self.out = nn.Linear(4 * H, H, **kw)

    def forward(self, x, cache=None, pos=0):
        B, T, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(H, dim=-1)
        q, k, v = (t.view(B, T, NH, HD).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            ck, cv = cache
            ck[:, :, pos:pos + T] = k; cv[:, :, pos:pos + T] = v
            k, v = ck[:, :, :pos + T], cv[:, :, :pos + T]
        a = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, H))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(V, H, **kw); self.wpe = nn.Embedding(CTX, H, **kw)
        self.blocks = nn.ModuleList(Block() for _ in range(L)); self.ln_f = nn.LayerNorm(H, **kw)

    def forward(self, ids, caches=None, pos=0, last_only=True):
        x = self.wte(ids) + self.wpe(torch.arange(pos, pos + ids.shape[1]))
        for i, b in enumerate(self.blocks):
            x = b(x, None if caches is None else caches[i], pos)
        x = self.ln_f(x)
        if last_only:
            x = x[:, -1:]
        return F.linear(x, self.wte.weight).float()  # tied LM head, fp32 logits


base = status("VmRSS")
model = GPT()
cfg["params"] = sum(p.numel() for p in model.parameters())
B = cfg["batch"]
if cfg["mode"] == "infer":
    P, S = cfg["prompt"], cfg["steps"]
    model.eval()
    with torch.inference_mode():
        caches = [(torch.empty(B, NH, P + S, HD, dtype=DT), torch.empty(B, NH, P + S, HD, dtype=DT)) for _ in range(L)]
        ids = torch.randint(0, V, (B, P))
        t = time.perf_counter()
        logits = model(ids, caches, 0)
        cfg["prefill_s"] = time.perf_counter() - t
        nxt = logits.argmax(-1)
        steps = []
        for i in range(S):
            t = time.perf_counter()
            logits = model(nxt, caches, P + i)
            nxt = logits.argmax(-1)
            steps.append(time.perf_counter() - t)
        cfg["decode_step_s"] = sorted(steps)[len(steps) // 2]
else:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, V, (B, cfg["seq"] + 1))
    times = []
    for _ in range(cfg["steps"]):
        t = time.perf_counter()
        logits = model(ids[:, :-1], last_only=False)
        loss = F.cross_entropy(logits.view(-1, V), ids[:, 1:].reshape(-1))
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        del logits, loss
        times.append(time.perf_counter() - t)
    cfg["step_s"] = min(times)
cfg["peak_bytes"] = status("VmHWM") - base
del model
if cfg["mode"] == "infer":
    del caches
    measure_hw(cfg)  # under the same machine load as the timing just taken
print(json.dumps(cfg))
'''


@dataclass(frozen=True)
class Row:
    what: str
    predicted: float
    measured: float
    unit: str

    @property
    def error(self) -> float:
        return self.predicted / self.measured - 1.0


def run_child(py: str, cfg: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([py, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True, timeout=900,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"measurement failed for {cfg}:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def arch_of(cfg: dict[str, Any], params: int) -> ModelArch:
    return ModelArch(name=f"gpt2-like-{params // 10**6}m", kind="llm", family="gpt2", params=params,
                     active_params=params, layers=cfg["layers"], hidden_size=cfg["hidden"],
                     attention_heads=cfg["heads"], kv_heads=cfg["heads"], head_dim=cfg["hidden"] // cfg["heads"],
                     intermediate_size=4 * cfg["hidden"], vocab_size=cfg["vocab"], tied_embeddings=True,
                     max_context=cfg["max_pos"], source="benchmarks/memory_vs_measured.py (random init)")


SIZES = {
    "gpt2-small": {"layers": 12, "hidden": 768, "heads": 12, "vocab": 50257, "max_pos": 2048},
    "gpt2-medium": {"layers": 24, "hidden": 1024, "heads": 16, "vocab": 50257, "max_pos": 2048},
    "gpt2-large": {"layers": 36, "hidden": 1280, "heads": 20, "vocab": 50257, "max_pos": 2048},
    "tiny": {"layers": 6, "hidden": 512, "heads": 8, "vocab": 32000, "max_pos": 2048},
}
# (size, dtype, batch, prompt, decode steps): prefill kept to ~10^11-10^12 FLOPs so a loaded 2-core machine
# finishes the whole table in a few minutes
INFER = [("gpt2-small", "fp32", 1, 1024, 32), ("gpt2-small", "fp32", 8, 128, 32), ("gpt2-medium", "fp32", 1, 512, 16),
         ("gpt2-medium", "bf16", 4, 256, 16), ("gpt2-large", "fp32", 1, 256, 16), ("tiny", "fp32", 16, 512, 32)]
TRAIN = [("tiny", 4, 256), ("gpt2-small", 2, 256), ("gpt2-small", 2, 512), ("gpt2-medium", 1, 256)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="estimator vs measured memory and CPU speed")
    ap.add_argument("--torch-python", default=sys.executable, help="a python that can import torch")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: OpenMP barriers stall badly on a loaded 2-core machine)")
    ap.add_argument("--quick", action="store_true", help="one inference and one training case")
    args = ap.parse_args(argv)
    probe = subprocess.run([args.torch_python, "-c", "import torch"], capture_output=True, check=False)
    if probe.returncode != 0:
        print(__doc__)
        print(f"error: {args.torch_python} cannot import torch; see above for how to get it", file=sys.stderr)
        return 2
    rows: list[Row] = []
    infer = INFER[:1] if args.quick else INFER
    train = TRAIN[:1] if args.quick else TRAIN
    for name, dtype, batch, prompt, steps in infer:
        cfg = {**SIZES[name], "mode": "infer", "dtype": dtype, "batch": batch, "prompt": prompt, "steps": steps,
               "threads": args.threads}
        m = run_child(args.torch_python, cfg)
        cpu = HardwareProfile(id="this-cpu", memory_bytes=24 * 2**30, bandwidth_bytes_per_s=m["bandwidth"],
                              flops_per_s={"fp32": m["flops_float32"], "bf16": m["flops_bfloat16"]},
                              power_w=65.0, kind="cpu")
        print(f"  {name} {dtype}: CPU now {m['flops_float32'] / 1e9:.0f} GFLOP/s fp32, "
              f"{m['flops_bfloat16'] / 1e9:.0f} bf16, {m['bandwidth'] / 1e9:.1f} GB/s copy", flush=True)
        arch = arch_of(cfg, m["params"])
        mem = inference_memory(arch, dtype, batch=batch, context_tokens=prompt + steps, overhead_bytes=0)
        tag = f"{name} {dtype} infer b={batch} ctx={prompt}+{steps}"
        rows.append(Row(f"{tag} peak memory", mem.total_bytes_per_gpu / 2**20, m["peak_bytes"] / 2**20, "MiB"))
        est = estimate_inference(arch, cpu, dtype, input_tokens=prompt, output_tokens=steps, batch=batch)
        assert est.decode is not None
        rows.append(Row(f"{tag} decode step", est.decode.tpot(batch) * 1e3, m["decode_step_s"] * 1e3, "ms"))
        if batch == 1:
            rows.append(Row(f"{tag} prefill (TTFT)", est.ttft_s * 1e3, m["prefill_s"] * 1e3, "ms"))
    for name, batch, seq in train:
        cfg = {**SIZES[name], "mode": "train", "dtype": "fp32", "batch": batch, "seq": seq, "steps": 2,
               "threads": args.threads}
        m = run_child(args.torch_python, cfg)
        arch = arch_of(cfg, m["params"])
        cpu = HardwareProfile(id="this-cpu", memory_bytes=24 * 2**30, bandwidth_bytes_per_s=1e10,
                              flops_per_s={"fp32": 1e11}, power_w=65.0, kind="cpu")
        tr = estimate_training(arch, cpu, gpus=1, dtype="fp32", optimizer="adamw", zero_stage=0,
                               micro_batch_size=batch, sequence_length=seq, activation_checkpointing=False,
                               tokens=batch * seq, mfu=1.0)
        predicted = tr.model_states_bytes_per_gpu + tr.activation_bytes_per_gpu
        tag = f"{name} fp32 AdamW b={batch} s={seq}"
        rows.append(Row(f"{tag} peak memory", predicted / 2**20, m["peak_bytes"] / 2**20, "MiB"))
    w = max(len(r.what) for r in rows)
    print(f"{'case'.ljust(w)}  {'predicted':>10}  {'measured':>10}  unit  error")
    for r in rows:
        print(f"{r.what.ljust(w)}  {r.predicted:>10.1f}  {r.measured:>10.1f}  {r.unit:4}  {r.error:+6.1%}")
    for unit, goal in (("MiB", 0.15), ("ms", 0.30)):
        errs = [abs(r.error) for r in rows if r.unit == unit]
        if errs:
            print(f"{'memory' if unit == 'MiB' else 'latency'}: max |error| {max(errs):.1%} (goal {goal:.0%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
