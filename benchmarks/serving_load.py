"""Serving load benchmark: the planner's batching settings vs each server's defaults, on 127.0.0.1.

Starts one Ray Serve (two applications: the plan's ``@serve.batch`` settings at ``/`` and max batch 1 / no wait
at ``/default``) and one tritonserver (two models: the plan's ``dynamic_batching`` and a ``max_batch_size: 1``
model without a dynamic batcher), all generated from ``tests.factories.local_demo`` through the real builders.
Closed-loop clients at increasing concurrency send single-row requests (1 x 64 floats) and the table reports
p50 / p99 latency and throughput per level. Bounded: ``--requests`` per level (default 300).

    python benchmarks/serving_load.py [--requests 300] [--concurrency 1,4,16,32] [--servers ray,triton]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from planner.plan import Plan  # noqa: E402
from serving import launch  # noqa: E402
from serving.artifacts import yaml_dump  # noqa: E402
from serving.ray_config import build_serve_config  # noqa: E402
from serving.triton import model_name, write_model_repository  # noqa: E402
from tests.factories import local_demo  # noqa: E402


def default_plan(plan: Plan, name: str) -> Plan:
    """The same plan with server defaults: no batching (max batch 1, no queue delay)."""
    serving = plan.serving.model_copy(update={"max_batch_size": 1, "preferred_batch_sizes": (1,),
                                              "max_queue_delay_us": 0, "route_prefix": "/default"})
    return plan.model_copy(update={"serving": serving, "model": plan.model.model_copy(update={"name": name})})


def run_level(worker: Callable[[], Callable[[np.ndarray], None]], concurrency: int, requests: int
              ) -> dict[str, float]:
    """Closed loop: ``concurrency`` threads share ``requests`` requests; per-request latency in seconds."""
    x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    lat: list[float] = []
    lock = threading.Lock()
    left = [requests]
    errors: list[BaseException] = []

    def loop() -> None:
        call = worker()
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            t0 = time.perf_counter()
            try:
                call(x)
            except BaseException as exc:  # report, do not hang the benchmark
                errors.append(exc)
                return
            dt = time.perf_counter() - t0
            with lock:
                lat.append(dt)

    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} request(s) failed: {errors[0]!r}")
    lat.sort()
    return {"p50_ms": 1e3 * statistics.median(lat), "p99_ms": 1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "rps": len(lat) / wall}


def ray_worker(port: int, path: str) -> Callable[[], Callable[[np.ndarray], None]]:
    def make() -> Callable[[np.ndarray], None]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def call(x: np.ndarray) -> None:
            conn.request("POST", path, body=json.dumps({"inputs": x.tolist()}),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(body[:200])
        return call
    return make


def triton_worker(url: str, model: str) -> Callable[[], Callable[[np.ndarray], None]]:
    def make() -> Callable[[np.ndarray], None]:
        import tritonclient.http as th

        client = th.InferenceServerClient(url)

        def call(x: np.ndarray) -> None:
            inp = th.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            client.infer(model, [inp])
        return call
    return make


def bench_ray(plan: Plan, work: Path, levels: list[int], requests: int) -> list[dict[str, Any]]:
    base = default_plan(plan, f"{plan.model.name}-default")
    cfg = build_serve_config(plan)
    cfg["applications"] += build_serve_config(base)["applications"]
    work.mkdir(parents=True, exist_ok=True)
    path = work / "serve_config.yaml"
    path.write_text(yaml_dump(cfg))
    rec = launch.start_ray_serve(path, workdir=work / "ray")
    rows = []
    try:
        for label, route in (("planner", "/"), ("default", "/default")):
            make = ray_worker(rec["http_port"], route)
            run_level(make, 4, 20)  # warm-up
            for c in levels:
                rows.append({"server": "ray-serve", "settings": label, "concurrency": c,
                             **run_level(make, c, requests)})
    finally:
        launch.stop(rec)
    return rows


def bench_triton(plan: Plan, work: Path, levels: list[int], requests: int) -> list[dict[str, Any]]:
    tplan = plan.model_copy(update={"serving": plan.serving.model_copy(update={"runtime": "triton"})})
    base = default_plan(tplan, f"{plan.model.name}-default")
    repo = work / "model_repository"
    write_model_repository(tplan, repo)
    write_model_repository(base, repo)
    cfg = (repo / model_name(base) / "config.pbtxt")
    # server default: no dynamic batcher at all (the builder writes none for max_batch_size 1)
    assert "dynamic_batching" not in cfg.read_text()
    rec = launch.start_triton(repo, workdir=work / "triton")
    rows = []
    try:
        url = f"127.0.0.1:{rec['http_port']}"
        for label, model in (("planner", model_name(tplan)), ("default", model_name(base))):
            make = triton_worker(url, model)
            run_level(make, 4, 20)
            for c in levels:
                rows.append({"server": "triton", "settings": label, "concurrency": c,
                             **run_level(make, c, requests)})
    finally:
        launch.stop(rec)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'server':<10} {'settings':<9} {'conc':>4} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['server']:<10} {r['settings']:<9} {r['concurrency']:>4} {r['p50_ms']:>8.2f} "
                     f"{r['p99_ms']:>8.2f} {r['rps']:>8.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=300, help="requests per concurrency level")
    ap.add_argument("--concurrency", default="1,4,16,32")
    ap.add_argument("--servers", default="ray,triton")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    plan = local_demo()
    s = plan.serving
    print(f"plan: max_batch_size={s.max_batch_size} preferred={list(s.preferred_batch_sizes)} "
          f"max_queue_delay_us={s.max_queue_delay_us}; default: max batch 1, no queue delay")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mlplan-bench-") as tmp:
        work = Path(tmp)
        if "ray" in args.servers:
            rows += bench_ray(plan, work / "r", levels, args.requests)
        if "triton" in args.servers:
            rows += bench_triton(plan, work / "t", levels, args.requests)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
