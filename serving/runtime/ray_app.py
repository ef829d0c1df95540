"""The Ray Serve deployment our ``ray`` runtime configs point at: ``serving.runtime.ray_app:build_app``.

HTTP (JSON), under the application's route prefix:
    POST /          {"inputs": [[...], ...]}  ->  {"outputs": [[...], ...]}     (one row per example)
    GET  /health    {"status": "ok", "model": ..., batching settings}
    GET  /stats     {"requests": n, "batches": n, "rows": n, "max_batch_seen": n} of this replica

Each HTTP request is one item of ``@serve.batch``; the plan's ``max_batch_size`` and ``max_queue_delay_us``
(as ``batch_wait_timeout_s``) are applied at start with ``set_max_batch_size`` / ``set_batch_wait_timeout_s``,
so one class serves every plan. Requests of a batch are concatenated row-wise, run once, and split back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from planner.errors import InputError
from serving.runtime.loader import resolve_model
from serving.runtime.loopback import bind_loopback_only
from serving.runtime.onnx_model import OnnxModel as OnnxRunner

ARGS = ("model_uri", "max_batch_size", "batch_wait_timeout_s", "device", "inputs", "outputs",
        "intra_op_threads")


@serve.deployment(name="OnnxModel")
class OnnxModel:
    def __init__(self, model_uri: str, max_batch_size: int = 8, batch_wait_timeout_s: float = 0.002,
                 device: str = "cpu", inputs: list[dict[str, Any]] | None = None,
                 outputs: list[dict[str, Any]] | None = None, intra_op_threads: int = 1) -> None:
        # a local session started by serving.launch: the replica's gRPC server (started once this constructor
        # returns) binds 127.0.0.1. Here, not at import: Serve may ship this class by value, without importing us.
        bind_loopback_only()
        self.model_uri = model_uri
        self.model = OnnxRunner(resolve_model(model_uri), device=device, intra_op_threads=intra_op_threads)
        if inputs and inputs[0]["name"] != self.model.input_name:
            raise InputError(f"the plan names input {inputs[0]['name']!r}, the ONNX model {self.model.input_name!r}",
                             fix="make model.inputs in the spec match the ONNX graph")
        self.max_batch_size = int(max_batch_size)
        self.batch_wait_timeout_s = float(batch_wait_timeout_s)
        batcher: Any = self._infer_batch  # serve.batch adds the setters at run time
        batcher.set_max_batch_size(self.max_batch_size)
        batcher.set_batch_wait_timeout_s(self.batch_wait_timeout_s)
        self.stats = {"requests": 0, "batches": 0, "rows": 0, "max_batch_seen": 0}

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)
    async def _infer_batch(self, arrays: list[np.ndarray[Any, Any]]) -> list[np.ndarray[Any, Any]]:
        sizes = [len(a) for a in arrays]
        out = self.model.predict(np.concatenate(arrays, axis=0))
        self.stats["batches"] += 1
        self.stats["rows"] += int(sum(sizes))
        self.stats["max_batch_seen"] = max(self.stats["max_batch_seen"], len(arrays))
        return list(np.split(out, np.cumsum(sizes)[:-1]))

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "model": self.model_uri, "input": self.model.input_name,
                "max_batch_size": self.max_batch_size, "batch_wait_timeout_s": self.batch_wait_timeout_s}

    async def __call__(self, request: Request) -> JSONResponse:
        path = request.url.path.rstrip("/")
        if request.method == "GET":
            if path.endswith("/stats"):
                return JSONResponse(self.stats)
            return JSONResponse(self.health())
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "body is not JSON", "fix": 'send {"inputs": [[...], ...]}'}, 400)
        if not isinstance(body, dict) or "inputs" not in body:
            return JSONResponse({"error": "missing 'inputs'", "fix": 'send {"inputs": [[...], ...]}'}, 400)
        try:
            arr = self.model.check(body["inputs"])
        except InputError as exc:
            return JSONResponse({"error": exc.message, "fix": exc.fix}, 400)
        self.stats["requests"] += 1
        out = await self._infer_batch(arr)
        return JSONResponse({"outputs": out.tolist()})


def build_app(args: dict[str, Any]) -> Any:
    """Serve application builder (``import_path``): ``args`` are the config's ``applications[].args``."""
    unknown = sorted(set(args) - set(ARGS))
    if unknown:
        raise InputError(f"unknown OnnxModel argument {unknown[0]!r}", fix=f"use {', '.join(ARGS)}")
    if "model_uri" not in args:
        raise InputError("OnnxModel needs 'model_uri'", fix="set args.model_uri in the Serve config")
    deployment: Any = OnnxModel  # serve.deployment made it a Deployment (typed as the class it wraps)
    return deployment.bind(**args)
