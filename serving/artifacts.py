"""``write_serving_artifacts(plan, out_dir)``: everything under ``out_dir/serving/`` that applies to the plan.

    serving/ray/serve_config.yaml        runtime ray or vllm (``serve_config.<role>.yaml`` per further part)
    serving/kuberay/rayservice.yaml      ray/vllm parts that run on Kubernetes (one document per part)
    serving/triton/model_repository/...  runtime triton (config.pbtxt, 1/model.py, 1/model.onnx)
    serving/triton/trtllm.yaml           runtime tensorrt-llm
    serving/README.md                    how to run each of them

Deterministic: YAML with sorted keys and no anchors, no timestamps, no absolute paths of this machine.
Import-cheap: builders import ray / tritonclient only inside the functions that need them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from planner.plan import Plan

NAMESPACE = "mlplan"


def yaml_dump(data: Any) -> str:
    """YAML text with sorted keys, block style and no ``&anchors`` (reviewable, byte-stable)."""
    import yaml

    class _NoAlias(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump(data, Dumper=_NoAlias, sort_keys=True, default_flow_style=False, width=110,
                     allow_unicode=True)


def yaml_dump_all(docs: list[Any]) -> str:
    return "---\n".join(yaml_dump(d) for d in docs)


def _write(out_dir: Path, rel: str, text: str, written: list[Path]) -> None:
    path = out_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    written.append(Path(rel))


def write_serving_artifacts(plan: Plan, out_dir: Path, *, namespace: str = NAMESPACE) -> list[Path]:
    """Write the plan's serving artifacts under ``out_dir/serving/``; returns the paths (relative, sorted).

    A stale ``out_dir/serving`` from an earlier run is replaced, so the folder holds exactly this plan's files.
    """
    from serving import kuberay, ray_config, triton, trtllm

    out_dir = Path(out_dir)
    root = out_dir / "serving"
    if root.exists():
        shutil.rmtree(root)
    written: list[Path] = []
    sections: list[str] = []
    if plan.workload == "inference":
        runtime = plan.serving.runtime
        if runtime in ("ray", "vllm"):
            first = plan.parts[0] if len(plan.parts) > 1 else None
            _write(out_dir, "serving/ray/serve_config.yaml",
                   yaml_dump(ray_config.build_serve_config(plan, first)), written)
            sections.append("ray")
        for part in plan.parts[1:]:
            if part.runtime in ("ray", "vllm"):
                _write(out_dir, f"serving/ray/serve_config.{ray_config.app_name(plan, part)}.yaml",
                       yaml_dump(ray_config.build_serve_config(plan, part)), written)
                if "ray" not in sections:
                    sections.append("ray")
        services = kuberay.build_rayservices(plan, namespace)
        if services:
            _write(out_dir, "serving/kuberay/rayservice.yaml", yaml_dump_all(services), written)
            sections.append("kuberay")
        if runtime == "triton":
            repo = root / "triton" / "model_repository"
            for p in triton.write_model_repository(plan, repo):
                written.append(p.relative_to(out_dir))
            sections.append("triton")
        elif runtime == "tensorrt-llm":
            _write(out_dir, "serving/triton/trtllm.yaml", yaml_dump(trtllm.build_trtllm_settings(plan)), written)
            sections.append("trtllm")
    _write(out_dir, "serving/README.md", readme(plan, sections, namespace), written)
    return sorted(written)


def readme(plan: Plan, sections: list[str], namespace: str = NAMESPACE) -> str:
    """``serving/README.md``: how to run each artifact of this plan."""
    from serving.triton import model_name

    s = plan.serving
    lines = [f"# Serving: {plan.model.name} ({plan.id})", "",
             f"Runtime `{s.runtime}`; batching: max batch {s.max_batch_size}, preferred "
             f"{list(s.preferred_batch_sizes)}, queue delay {s.max_queue_delay_us} us; replicas "
             f"{s.min_replicas}-{s.max_replicas}, max {s.max_ongoing_requests} ongoing requests per replica.", ""]
    if not sections:
        why = "a training plan" if plan.workload == "training" else f"runtime `{s.runtime}`"
        lines += [f"Nothing to serve here ({why}).", ""]
    if "ray" in sections:
        lines += ["## Ray Serve", "", "Local or on a Ray cluster (from the plan folder, with mlplan installed):", "",
                  "```sh", "mlplan deploy . --target local   # loopback only, Ray token auth on, no cloud credentials",
                  "serve run serving/ray/serve_config.yaml            # or by hand, in the foreground",
                  "ray start --head && serve deploy serving/ray/serve_config.yaml   # onto a running cluster",
                  "```", "",
                  f"Query: `curl -X POST http://127.0.0.1:8000{s.route_prefix.rstrip('/')}/ "
                  "-d '{\"inputs\": [[...]]}'`; health: `GET .../health`.", ""]
    if "kuberay" in sections:
        lines += ["## KubeRay", "", "Needs the KubeRay operator (ray.io/v1 CRDs) and the NVIDIA device plugin:", "",
                  "```sh", f"kubectl create namespace {namespace} --dry-run=client -o yaml | kubectl apply -f -",
                  "kubectl apply -f serving/kuberay/rayservice.yaml",
                  f"kubectl -n {namespace} get rayservice -w", "```", "",
                  "The `ray` runtime image is built from this repository's Dockerfile (set MLPLAN_SERVING_IMAGE"
                  " before `mlplan plan` to use your registry).", ""]
    if "triton" in sections:
        lines += ["## Triton", "", "```sh",
                  "tritonserver --model-repository=serving/triton/model_repository",
                  f"curl localhost:8000/v2/models/{model_name(plan)}/config", "```", "",
                  "The python backend (`1/model.py`) runs the ONNX model with onnxruntime; it needs numpy and "
                  "onnxruntime in the stub's Python environment.", ""]
    if "trtllm" in sections:
        lines += ["## TensorRT-LLM", "", "`serving/triton/trtllm.yaml` lists, in order: the checkpoint conversion, "
                  "`trtllm-build` (tp/pp baked into the engine), the `fill_template.py` values for the "
                  "inflight_batcher_llm repository, and the launch command (`--world_size` = tp x pp).", ""]
    return "\n".join(lines)
