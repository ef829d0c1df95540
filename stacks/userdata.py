"""cloud-init user data for the single-instance option: the same server container as the Kubernetes manifests.

The command line, image and arguments come from :func:`stacks.manifests.server_container`, and the weights from
the same source the pods fetch (:func:`stacks.manifests.server.model_source`), so a plan served on one EC2
instance runs exactly what it would run in a pod. Pure (no Pulumi import).
"""

from __future__ import annotations

import shlex

from planner.plan import Plan
from serving import fetch
from stacks import manifests
from stacks.layout import PartInfo
from stacks.manifests import server

RAY_IMAGE = "rayproject/ray:2.60.0-py311-gpu"


def docker_user_data(plan: Plan, info: PartInfo, model_uri: str | None = None) -> str:
    """A bash cloud-init script: fetch the model (from Hugging Face or S3), then run the server under Docker with
    all GPUs.

    The Deep Learning Base AMI ships the NVIDIA driver, Docker and the NVIDIA container toolkit; the AWS CLI
    uses the instance profile (read-only on the model bucket). The container runs as a non-root user with a
    read-only root filesystem, restarts on failure, and listens on the VPC-internal serving port only.
    """
    port = manifests.SERVE_PORT
    uid = manifests.RUN_AS_USER
    fetch_lines: list[str]
    if info.part.runtime == "ray":
        image = RAY_IMAGE
        cmd = ["serve", "run", "--address", "local", "/models/serving/ray/serve_config.yaml"]
        src = model_uri or fetch.bucket_uri(plan, info.part) or ""
        fetch_lines = [f"aws s3 sync --only-show-errors {shlex.quote(src)} /opt/models"]
    else:
        c = manifests.server_container(plan, info)
        image = c["image"]
        cmd = [*c["command"], *c["args"]]
        source = server.model_source(plan, info, manifests.Context(model_uri=model_uri))
        host_dir = "/opt" + source.path  # /models/... in the container is /opt/models/... on the host
        if info.part.runtime == "triton":  # the model repository you uploaded (serving/triton/model_repository)
            repo = f"{model_uri or fetch.bucket_uri(plan, info.part) or ''}/triton"
            host_dir = "/opt/models/triton"
            fetch_lines = [f"aws s3 sync --only-show-errors {shlex.quote(repo)} {host_dir}"]
        elif source.kind == "hf":
            script = ("import os; from huggingface_hub import snapshot_download; "
                      f"snapshot_download(repo_id={source.uri!r}, local_dir={source.path!r}, "
                      f"allow_patterns={list(fetch.HF_PATTERNS)!r})")
            fetch_lines = [" ".join(shlex.quote(a) for a in [
                "docker", "run", "--rm", "-e", "HF_HOME=/tmp/hf", "-v", "/opt/models:/models",
                "--entrypoint", "python3", image, "-c", script])]
        elif source.kind == "s3":
            fetch_lines = [f"aws s3 sync --only-show-errors {shlex.quote(source.uri)} {shlex.quote(host_dir)}"]
        else:
            fetch_lines = [f"echo {shlex.quote('mlplan: ' + source.why)} >&2", "exit 1"]
        fetch_lines = [f"mkdir -p {shlex.quote(host_dir)}", *fetch_lines]
    docker = ["docker", "run", "-d", "--name", "mlplan-server", "--restart", "unless-stopped", "--gpus", "all",
              "--user", f"{uid}:{uid}", "--read-only",
              "--tmpfs", "/tmp:rw,size=8g", "--shm-size", "16g", "--security-opt", "no-new-privileges",
              "--cap-drop", "ALL", "-e", "HOME=/tmp", "-p", f"{port}:{port}",
              "-v", "/opt/models:/models:ro", "--entrypoint", cmd[0], image, *cmd[1:]]
    lines = [
        "#!/bin/bash",
        "# mlplan: single-GPU model server (generated; edit the plan, not this script)",
        "set -euo pipefail",
        "mkdir -p /opt/models",
        *fetch_lines,
        f"chown -R {uid}:{uid} /opt/models",
        " ".join(shlex.quote(a) for a in docker),
        "",
    ]
    return "\n".join(lines)
