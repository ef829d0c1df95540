"""Triton python-backend model serving an ONNX file with onnxruntime (copied verbatim as ``<model>/1/model.py``).

Self-contained on purpose (no mlplan import needed inside a Triton container). The model file is, in order:
``<model>/1/<model_file>`` (placed there by ``mlplan plan`` for builtin models), else the config parameter
``model_uri``: a local path, ``s3://bucket/key`` (boto3; ``AWS_ENDPOINT_URL`` honoured) or ``builtin://NAME``
(needs mlplan installed). Triton's dynamic batcher hands ``execute`` several requests at once: they are
concatenated along the batch dimension, run in one onnxruntime call, and split back per request.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]  # Triton's python backend


def _resolve(version_dir: str, params: dict[str, str]) -> str:
    local = os.path.join(version_dir, params.get("model_file") or "model.onnx")
    if os.path.isfile(local):
        return local
    uri = params.get("model_uri", "")
    if not uri:
        raise pb_utils.TritonModelException(
            f"no model file at {local} and no model_uri parameter. To fix: put the ONNX file there, or set "
            "model.artifact in the spec and re-run mlplan plan")
    if uri.startswith("builtin://"):
        from serving.model.demo import builtin_path

        return str(builtin_path(uri[len("builtin://"):]))
    if uri.startswith("s3://"):
        import boto3

        bucket, _, key = uri[len("s3://"):].partition("/")
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        dest = os.path.join(tempfile.mkdtemp(prefix="mlplan-model-"), os.path.basename(key) or "model.onnx")
        boto3.client("s3", endpoint_url=endpoint).download_file(bucket, key, dest)
        return dest
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    if not os.path.isfile(path):
        raise pb_utils.TritonModelException(f"model file not found: {uri}. To fix: check model.artifact")
    return path


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        path = _resolve(version_dir, params)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(params.get("intra_op_threads") or 1)
        opts.inter_op_num_threads = 1
        providers: list[Any] = ["CPUExecutionProvider"]
        if args.get("model_instance_kind") == "GPU" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(args["model_instance_device_id"])}))
        self.session = ort.InferenceSession(path, sess_options=opts, providers=providers)
        self.inputs = [(i["name"], pb_utils.triton_string_to_numpy(i["data_type"])) for i in config["input"]]
        self.outputs = [(o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in config["output"]]

    def execute(self, requests: list[Any]) -> list[Any]:
        feeds: dict[str, Any] = {}
        sizes: list[int] = []
        responses: list[Any] = [None] * len(requests)
        try:
            for name, dtype in self.inputs:
                parts = [pb_utils.get_input_tensor_by_name(r, name).as_numpy().astype(dtype, copy=False)
                         for r in requests]
                feeds[name] = np.concatenate(parts, axis=0)
                sizes = [len(p) for p in parts]
            results = self.session.run([n for n, _ in self.outputs], feeds)
        except Exception as exc:  # the boundary to Triton: each request gets the error, the instance lives on
            err = pb_utils.TritonError(f"inference failed: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=err) for _ in requests]
        bounds = np.cumsum(sizes)[:-1]
        split = [np.split(res, bounds) for res in results]
        for i in range(len(requests)):
            tensors = [pb_utils.Tensor(name, split[j][i].astype(dtype, copy=False))
                       for j, (name, dtype) in enumerate(self.outputs)]
            responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
        return responses

    def finalize(self) -> None:
        self.session = None
