"""Ray Serve config (``serve deploy`` / ``serve run`` / KubeRay ``serveConfigV2``) built from a plan.

Runtimes:
- ``ray``: one application of our own deployment :class:`serving.runtime.ray_app.OnnxModel` serving ONNX
  with onnxruntime; the plan's batching (``max_batch_size``, ``max_queue_delay_us``) goes to the app args and
  from there to ``@serve.batch``; replica bounds, ``max_ongoing_requests`` and GPUs per replica go to the
  deployment options.
- ``vllm``: a Ray Serve LLM application (``ray.serve.llm:build_openai_app``) whose ``LLMConfig`` carries the
  plan's engine settings (``Part.engine``: TP/PP, max model length, batch limits, GPU memory share, KV-cache
  dtype, quantization, expert parallelism) as vLLM engine kwargs.

Validation (:func:`validate_serve_config`) is Ray's own ``ServeDeploySchema`` plus a strict pass that rejects
keys the schema silently ignores (it allows extra keys for forward compatibility), walking the schema's own
pydantic models so it follows the installed Ray version. Source of the format: Ray Serve docs, "Serve Config
Files" (https://docs.ray.io/en/latest/serve/production-guide/config.html) and "Serving LLMs".
"""

from __future__ import annotations

import ast
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any

from planner.errors import ArtifactError, InputError
from planner.plan import Part, Plan
from serving import hardware

RAY_APP_IMPORT_PATH = "serving.runtime.ray_app:build_app"
VLLM_IMPORT_PATH = "ray.serve.llm:build_openai_app"
DEPLOYMENT_NAME = "OnnxModel"
DEFAULT_HTTP_PORT = 8000
SERVE_RUNTIMES = ("ray", "vllm")

class ServeConfigError(ArtifactError, ValueError):
    """A Serve config is invalid; ``key_path`` says where (e.g. ``applications[0].deployments[0].nme``)."""

    def __init__(self, message: str, *, key_path: str = "", fix: str | None = None) -> None:
        self.key_path = key_path
        super().__init__(message, fix=fix)


def app_name(plan: Plan, part: Part | None = None) -> str:
    """Serve application name, also the RayService name: the part's app name from the plan (unique per spec),
    with the part's key on a multi-part plan."""
    p = part if part is not None else plan.parts[0]
    base = p.names.app if len(plan.parts) == 1 else f"{p.names.app}-{p.names.key}"
    return base[:50].strip("-")


def _part(plan: Plan, part: Part | None) -> Part:
    return part if part is not None else plan.parts[0]


def _replicas(plan: Plan, part: Part) -> dict[str, Any]:
    """``num_replicas`` when the planner fixed the count, else ``autoscaling_config`` with the plan's bounds."""
    s = plan.serving
    lo, hi = s.min_replicas, s.max_replicas
    if len(plan.parts) > 1:  # per-part replica count of a hybrid plan: that part's own replicas
        lo = hi = part.replicas
    if lo == hi:
        return {"num_replicas": lo}
    return {
        "autoscaling_config": {
            "min_replicas": lo,
            "max_replicas": hi,
            "initial_replicas": min(max(part.replicas, lo), hi),
            "target_ongoing_requests": s.target_ongoing_requests,
        }
    }


def _tensor_specs(specs: Any) -> list[dict[str, Any]] | None:
    if not specs:
        return None
    return [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in specs]


def _ray_app(plan: Plan, part: Part) -> dict[str, Any]:
    s = plan.serving
    if not plan.model.artifact:
        raise InputError(f"model {plan.model.name!r} has no artifact to serve with the 'ray' runtime",
                         fix="set model.artifact in the spec (a path, s3://bucket/key or builtin://mlp-demo)")
    gpu = hardware.uses_gpu(part)
    args: dict[str, Any] = {
        "model_uri": plan.model.artifact,
        "max_batch_size": s.max_batch_size,
        "batch_wait_timeout_s": s.max_queue_delay_us / 1e6,
        "device": "cuda" if gpu else "cpu",
    }
    if (ins := _tensor_specs(plan.model.inputs)) is not None:
        args["inputs"] = ins
    if (outs := _tensor_specs(plan.model.outputs)) is not None:
        args["outputs"] = outs
    actor: dict[str, Any] = {"num_cpus": 1, "num_gpus": part.accelerator_count if gpu else 0}
    ray_type = part.device.ray_type
    if gpu and ray_type:
        actor["accelerator_type"] = ray_type
    deployment: dict[str, Any] = {
        "name": DEPLOYMENT_NAME,
        "max_ongoing_requests": s.max_ongoing_requests,
        **_replicas(plan, part),
        "ray_actor_options": actor,
    }
    return {
        "name": app_name(plan, part if len(plan.parts) > 1 else None),
        "route_prefix": s.route_prefix,
        "import_path": RAY_APP_IMPORT_PATH,
        "args": args,
        "deployments": [deployment],
    }


def _vllm_app(plan: Plan, part: Part, model_path: str | None = None) -> dict[str, Any]:
    """Ray Serve LLM: the plan's engine settings (:func:`serving.engine_args.engine_kwargs`) as ``engine_kwargs``;
    the weights from ``model_path`` (the pod's fetched copy on Kubernetes), else the artifact or the Hugging Face
    id (Ray LLM downloads it)."""
    from serving.engine_args import engine_kwargs

    s, m = plan.serving, plan.model
    source = model_path or m.artifact or m.hf_id or m.name
    engine = {k: v for k, v in engine_kwargs(plan, part, source).items() if k not in ("model", "served_model_name")}
    llm: dict[str, Any] = {
        "model_loading_config": {"model_id": m.name, "model_source": source},
        "engine_kwargs": engine,
        "deployment_config": {"max_ongoing_requests": s.max_ongoing_requests, **_replicas(plan, part)},
    }
    ray_type = part.device.ray_type
    if ray_type and hardware.uses_gpu(part):
        llm["accelerator_type"] = ray_type
    return {
        "name": app_name(plan, part if len(plan.parts) > 1 else None),
        "route_prefix": s.route_prefix,
        "import_path": VLLM_IMPORT_PATH,
        "args": {"llm_configs": [llm]},
    }


def serve_runtime(plan: Plan, part: Part | None = None) -> str:
    """The runtime a part is served with: the part's own for a multi-part plan, else ``plan.serving.runtime``."""
    if part is not None and len(plan.parts) > 1:
        return part.runtime
    return plan.serving.runtime


def build_serve_config(plan: Plan, part: Part | None = None, *, http_host: str = "0.0.0.0",
                       http_port: int = DEFAULT_HTTP_PORT, model_path: str | None = None) -> dict[str, Any]:
    """The Serve config of ``plan`` (or of one ``part`` of a hybrid plan), applying the plan verbatim
    (``model_path``: where the pods find the fetched LLM weights, on Kubernetes)."""
    p = _part(plan, part)
    runtime = serve_runtime(plan, part)
    if runtime == "ray":
        app = _ray_app(plan, p)
    elif runtime == "vllm":
        app = _vllm_app(plan, p, model_path)
    else:
        raise InputError(f"runtime {runtime!r} is not served by Ray Serve",
                         fix="use serving.triton / serving.trtllm for triton and tensorrt-llm plans")
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": http_host, "port": http_port},
        "applications": [app],
    }


# ------------------------------------------------------------------------------------------------ validation
def _model_classes(annotation: Any) -> list[type]:
    from pydantic import BaseModel

    out: list[type] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) or origin in (list, tuple, typing.List):  # noqa: UP006
        for a in typing.get_args(annotation):
            out += _model_classes(a)
    return out


def _check_keys(model: Any, data: Any, path: str) -> None:
    """Walk ``data`` alongside the validated pydantic ``model``; raise on a key no field (or alias) accepts."""
    from pydantic import BaseModel

    if not isinstance(data, dict):
        return
    fields = type(model).model_fields
    by_key: dict[str, str] = {}
    for fname, f in fields.items():
        by_key[fname] = fname
        if f.alias:
            by_key[f.alias] = fname
        if isinstance(f.validation_alias, str):
            by_key[f.validation_alias] = fname
    for key, val in data.items():
        here = f"{path}.{key}" if path else str(key)
        if key not in by_key:
            raise ServeConfigError(
                f"unknown key {here!r} in the Serve config ({type(model).__name__} accepts: "
                f"{', '.join(sorted(fields))})", key_path=here, fix="remove or correct the key")
        fname = by_key[key]
        sub = getattr(model, fname, None)
        classes = _model_classes(fields[fname].annotation)
        if isinstance(sub, BaseModel):
            _check_keys(sub, val, here)
        elif isinstance(sub, (list, tuple)) and isinstance(val, list):
            for i, (s_item, d_item) in enumerate(zip(sub, val, strict=False)):
                if isinstance(s_item, BaseModel):
                    _check_keys(s_item, d_item, f"{here}[{i}]")
                elif isinstance(d_item, dict) and classes:
                    _check_dict(classes[0], d_item, f"{here}[{i}]")
        elif isinstance(val, dict) and classes:
            # a Union[Dict, SomeConfig] field kept as a plain dict: check it against SomeConfig too
            _check_dict(classes[0], val, here)


def _check_dict(cls: Any, data: dict[str, Any], path: str) -> None:
    from pydantic import ValidationError

    try:
        inst = cls.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc, path) from None
    _check_keys(inst, data, path)


def _from_validation(exc: Any, prefix: str = "") -> ServeConfigError:
    err = exc.errors()[0]
    loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err.get("loc", ()))
    loc = loc.replace(".[", "[")
    where = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
    return ServeConfigError(f"invalid Serve config at {where!r}: {err.get('msg')}", key_path=where,
                            fix="correct the value (see Ray Serve's ServeDeploySchema)")


@cache
def _llm_fields() -> dict[str, frozenset[str]]:
    """Field names of Ray Serve LLM's ``LLMServingArgs``, ``LLMConfig`` and ``ModelLoadingConfig``.

    Read from the installed Ray's source with ``ast`` so the check follows the Ray version without importing
    ``ray.serve.llm`` (which needs pyarrow and vllm at import).
    """
    import importlib.util

    out: dict[str, set[str]] = {}
    for mod in ("ray.llm._internal.serve.core.configs.llm_config",
                "ray.llm._internal.serve.core.ingress.builder"):
        spec = importlib.util.find_spec(mod)
        if spec is None or spec.origin is None:
            continue
        tree = ast.parse(Path(spec.origin).read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name in ("LLMConfig", "ModelLoadingConfig",
                                                                  "LLMServingArgs"):
                out[node.name] = {
                    st.target.id for st in node.body
                    if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)
                    and not st.target.id.startswith("_")
                }
    return {k: frozenset(v) for k, v in out.items()}


def _check_llm_args(args: dict[str, Any], path: str) -> None:
    from ray.serve.schema import DeploymentSchema

    fields = _llm_fields()
    if not fields:
        return

    def strict(data: Any, cls: str, where: str) -> None:
        if not isinstance(data, dict):
            raise ServeConfigError(f"{where!r} must be a mapping", key_path=where)
        for key in data:
            if key not in fields.get(cls, frozenset(data)):
                raise ServeConfigError(f"unknown key '{where}.{key}' in {cls} (accepts: "
                                       f"{', '.join(sorted(fields[cls]))})", key_path=f"{where}.{key}",
                                       fix="remove or correct the key")

    strict(args, "LLMServingArgs", path)
    for i, llm in enumerate(args.get("llm_configs") or []):
        where = f"{path}.llm_configs[{i}]"
        strict(llm, "LLMConfig", where)
        if "model_loading_config" not in llm:
            raise ServeConfigError(f"{where!r} has no model_loading_config", key_path=where)
        strict(llm["model_loading_config"], "ModelLoadingConfig", f"{where}.model_loading_config")
        eng = llm.get("engine_kwargs", {})
        for k in ("tensor_parallel_size", "pipeline_parallel_size"):
            if k in eng and (not isinstance(eng[k], int) or eng[k] < 1):
                raise ServeConfigError(f"'{where}.engine_kwargs.{k}' must be a positive integer, got {eng[k]!r}",
                                       key_path=f"{where}.engine_kwargs.{k}")
        if "deployment_config" in llm:
            # LLMConfig.deployment_config holds Serve deployment options: check them with DeploymentSchema
            _check_dict(DeploymentSchema, {"name": "llm", **llm["deployment_config"]}, f"{where}.deployment_config")


def validate_serve_config(cfg: dict[str, Any]) -> Any:
    """Validate with ``ServeDeploySchema`` and reject silently ignored keys; returns the schema instance.

    Raises :class:`ServeConfigError` (an ``ArtifactError`` and a ``ValueError``) naming the key path.
    """
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    if not isinstance(cfg, dict):
        raise ServeConfigError(f"a Serve config must be a mapping, got {type(cfg).__name__}")
    try:
        schema = ServeDeploySchema.model_validate(cfg)
    except ValidationError as exc:
        raise _from_validation(exc) from None
    _check_keys(schema, cfg, "")
    for i, app in enumerate(cfg.get("applications") or []):
        if app.get("import_path") == VLLM_IMPORT_PATH:
            _check_llm_args(app.get("args") or {}, f"applications[{i}].args")
    return schema
