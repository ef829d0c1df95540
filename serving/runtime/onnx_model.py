"""An onnxruntime session for one ONNX model, used by the Ray Serve deployment (and the benchmark)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from planner.errors import InputError

# plan / TensorSpec dtype -> numpy dtype name
NUMPY_DTYPES = {"fp32": "float32", "fp16": "float16", "int64": "int64", "int32": "int32", "int8": "int8",
                "uint8": "uint8", "bool": "bool"}


class OnnxModel:
    """Runs a batch through an ONNX model; the first input and first output are the served tensors."""

    def __init__(self, path: Path | str, *, device: str = "cpu", intra_op_threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        inp = self.session.get_inputs()[0]
        self.input_name: str = inp.name
        self.input_shape: list[Any] = list(inp.shape)
        self.output_name: str = self.session.get_outputs()[0].name
        self.dtype = _ORT_TYPES.get(inp.type, "float32")

    def check(self, batch: Any) -> Any:
        """``batch`` as a numpy array of the model's dtype and shape (batch dim first), or InputError."""
        import numpy as np

        try:
            arr = np.asarray(batch, dtype=self.dtype)
        except (TypeError, ValueError) as exc:
            raise InputError(f"inputs are not a numeric array: {exc}", fix='send {"inputs": [[...], ...]}') from None
        want = self.input_shape[1:]
        if arr.ndim != len(self.input_shape) or any(
            isinstance(w, int) and w != g for w, g in zip(want, arr.shape[1:], strict=False)
        ):
            dims = ", ".join(map(str, want))
            raise InputError(f"inputs have shape {list(arr.shape)}, the model takes [batch, {dims}]",
                             fix="send one row per example with the model's feature count")
        return arr

    def predict(self, batch: Any) -> Any:
        arr = self.check(batch)
        return self.session.run([self.output_name], {self.input_name: arr})[0]


_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
              "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}
