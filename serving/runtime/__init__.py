"""The serving runtime: what the generated configs point at.

- :mod:`serving.runtime.loader`     resolve a model URI (path, ``file://``, ``s3://``, ``builtin://``) to a file
- :mod:`serving.runtime.onnx_model` an onnxruntime session that runs a batch and checks its input
- :mod:`serving.runtime.ray_app`    the Ray Serve deployment (``serving.runtime.ray_app:build_app``)
- :mod:`serving.runtime.loopback`   keeps a local Ray session's in-process gRPC servers on 127.0.0.1
- ``triton_model.py``               the Triton python-backend model, copied verbatim as ``<model>/1/model.py``
"""
