"""Serving: Ray Serve / KubeRay / Triton config builders, the runtime they launch, and local launchers.

Import-cheap on purpose: nothing heavy (ray, tritonclient, onnxruntime, boto3) is imported here or at the
import of :mod:`serving.artifacts`; each builder imports what it needs inside the function that needs it.

Modules:
    serving.artifacts   write_serving_artifacts(plan, out_dir): everything under DIR/serving/
    serving.ray_config  Ray Serve config (serve deploy / serve run), strict validation
    serving.kuberay     RayService (ray.io/v1) for Kubernetes placements, CRD-schema validation
    serving.triton      Triton model repository (config.pbtxt via protobuf text format, python backend)
    serving.trtllm      TensorRT-LLM engine-build and launch settings (trtllm.yaml)
    serving.runtime     the Ray Serve deployment and the Triton python-backend model that serve ONNX
    serving.model       the demo model (a deterministic ONNX MLP) and builtin:// model resolution
    serving.launch      start / stop / health of detached local Ray Serve and tritonserver processes
"""
