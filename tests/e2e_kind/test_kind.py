"""End to end on a real Kubernetes API server: a kind cluster, an on-prem plan's manifests (rendered by the
real emitter, ``stacks.manifests.render``), ``mlplan deploy --target kubernetes``, readiness, idempotency on a
real server-side apply, status, destroy. The rollout deploys the local-model path for real: the builtin demo MLP
bundled in the Triton repository ConfigMap, staged into the model volume by the init container, served by Triton
and asked for its readiness through the Service.

Needs ``kind`` and a running Docker engine (a CI runner has both); skipped with the reason elsewhere, as on
the machines this project is developed on. The rollout test pulls the pinned Triton image (large); set
``MLPLAN_KIND_ROLLOUT=0`` to run only the apply/idempotency/destroy tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.deploy import targets
from stacks.deploy.state import DeployState
from tests import factories
from tests.deploy.conftest import write_plan_folder


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = [
    pytest.mark.kind,
    pytest.mark.skipif(shutil.which("kind") is None, reason="kind is not installed (https://kind.sigs.k8s.io)"),
    pytest.mark.skipif(not _docker_engine(), reason="no running Docker engine: kind cannot create a cluster"),
]


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"mlplan-e2e-{uuid.uuid4().hex[:6]}"
    cfg = tmp_path_factory.mktemp("kind") / "kubeconfig"
    subprocess.run(["kind", "create", "cluster", "--name", name, "--kubeconfig", str(cfg), "--wait", "180s"],
                   check=True, timeout=600)
    try:
        from kubernetes import client, config

        new_client: Any = config.new_client_from_config
        api = new_client(config_file=str(cfg))
        core = client.CoreV1Api(api)
        for node in core.list_node().items:  # the plan's nodeSelector: a CPU server
            name = str(node.metadata.name) if node.metadata is not None else ""
            core.patch_node(name, {"metadata": {"labels": {"mlplan.dev/accelerator": "cpu-x86"}}})
        api.close()
        yield str(cfg)
    finally:
        subprocess.run(["kind", "delete", "cluster", "--name", name], check=False, timeout=300)


def onprem_cpu_plan() -> Any:
    """The local-model path on a cluster: the demo MLP (``builtin://mlp-demo``) served by Triton on an on-prem CPU
    server of 4 vCPU / 8 GiB (the pod is sized to it, so it fits a CI runner's kind node)."""
    from planner.optimizer.nodes import node_shape

    plan = factories.local_demo("triton")
    part = plan.parts[0].model_copy(update={"instance": "cpu-server", "region": "datacenter", "target": "kubeconfig",
                                            "node": node_shape("on-prem", 4, 8, 0)})
    return plan.model_copy(update={"parts": (part,), "instance": "cpu-server", "region": "datacenter"})


def onprem_cpu_folder(root: Path) -> Path:
    """Its folder: namespace, quota, the Triton repository ConfigMap (config.pbtxt, model.py and the bundled ONNX
    file), the Deployment whose init container stages them into the model volume, the Service."""
    from stacks.manifests import default_contexts, render

    plan = onprem_cpu_plan()
    files = {f"k8s/{key}.yaml": yaml.safe_dump_all(objs, sort_keys=True)
             for key, objs in render(plan, default_contexts(plan)).items()}
    return write_plan_folder(root, plan, files)


def test_apply_is_idempotent_on_a_real_api_server(tmp_path: Path, kubeconfig: str) -> None:
    folder = onprem_cpu_folder(tmp_path / "plan")
    opts = targets.Options(kubeconfig=kubeconfig, wait=False)
    dry = targets.deploy(folder, dry_run=True, opts=opts, say=print)
    assert dry.dry_run is True
    first = targets.deploy(folder, opts=opts, say=print)  # default target of an on-prem plan: kubernetes
    assert first.target == "kubernetes" and first.changed == len(first.details["objects"])
    second = targets.deploy(folder, opts=opts, say=print)
    assert second.changed == 0, second.details["objects"]
    assert targets.destroy(folder, opts=opts, say=print) >= len(first.details["objects"])
    assert targets.destroy(folder, opts=opts, say=print) == 0


@pytest.mark.skipif(os.environ.get("MLPLAN_KIND_ROLLOUT") == "0", reason="MLPLAN_KIND_ROLLOUT=0")
def test_rollout_ready_status_destroy(tmp_path: Path, kubeconfig: str) -> None:
    folder = onprem_cpu_folder(tmp_path / "plan")
    opts = targets.Options(kubeconfig=kubeconfig, timeout_s=1500)
    try:
        result = targets.deploy(folder, opts=opts, say=print)
        assert result.ready is True
        healthy, lines = targets.status(folder, opts=opts)
        assert healthy, lines
        # the model is really there: Triton answers ready for it, through the API server's Service proxy
        from kubernetes import client, config

        plan = onprem_cpu_plan()
        new_client: Any = config.new_client_from_config
        api = new_client(config_file=kubeconfig)
        try:
            body = client.CoreV1Api(api).connect_get_namespaced_service_proxy_with_path(
                f"{plan.parts[0].names.app}:http", plan.parts[0].names.namespace, path="v2/models/mlp-demo/ready")
            assert body == "" or body is None or "error" not in str(body).lower()
        finally:
            api.close()
        state = DeployState(folder / ".mlplan", "x").target("kubernetes")
        assert state is not None and state["status"] == "deployed"
    finally:
        targets.destroy(folder, opts=opts, say=print)
