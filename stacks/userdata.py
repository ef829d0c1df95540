"""cloud-init user data for the single-instance option: the same server container as the Kubernetes manifests.

The command line, image and arguments come from :func:`stacks.manifests.server_container`, so a plan served on
one EC2 instance runs exactly what it would run in a pod. Pure (no Pulumi import).
"""

from __future__ import annotations

import shlex

from planner.plan import Plan
from stacks import manifests
from stacks.layout import PartInfo

RAY_IMAGE = "rayproject/ray:2.40.0-py311-gpu"


def docker_user_data(plan: Plan, info: PartInfo, model_uri: str) -> str:
    """A bash cloud-init script: copy the model from S3, then run the server under Docker with all GPUs.

    The Deep Learning Base AMI ships the NVIDIA driver, Docker and the NVIDIA container toolkit; the AWS CLI
    uses the instance profile (read-only on the model bucket). The container runs as a non-root user with a
    read-only root filesystem, restarts on failure, and listens on the VPC-internal serving port only.
    """
    port = manifests.SERVE_PORT
    if info.part.runtime == "ray":
        image = RAY_IMAGE
        cmd = ["serve", "run", "--address", "local", "/models/serving/ray/serve_config.yaml"]
        src, dest = f"{model_uri.rstrip('/')}", "/opt/models"
    else:
        c = manifests.server_container(plan, info)
        image = c["image"]
        cmd = [*c["command"], *c["args"]]
        triton = info.part.runtime in ("triton", "tensorrt-llm")
        src = f"{model_uri.rstrip('/')}/triton" if triton else model_uri
        dest = "/opt/models/triton" if triton else f"/opt/models/{plan.model.name}"
    docker = ["docker", "run", "-d", "--name", "mlplan-server", "--restart", "unless-stopped", "--gpus", "all",
              "--user", f"{manifests.RUN_AS_USER}:{manifests.RUN_AS_USER}", "--read-only",
              "--tmpfs", "/tmp:rw,size=8g", "--shm-size", "16g", "--security-opt", "no-new-privileges",
              "--cap-drop", "ALL", "-e", "HOME=/tmp", "-p", f"{port}:{port}",
              "-v", "/opt/models:/models:ro", image, *cmd]
    lines = [
        "#!/bin/bash",
        "# mlplan: single-GPU model server (generated; edit the plan, not this script)",
        "set -euo pipefail",
        f"mkdir -p {shlex.quote(dest)}",
        f"aws s3 sync --only-show-errors {shlex.quote(src)} {shlex.quote(dest)}",
        f"chown -R {manifests.RUN_AS_USER}:{manifests.RUN_AS_USER} /opt/models",
        " ".join(shlex.quote(a) for a in docker),
        "",
    ]
    return "\n".join(lines)
