"""Kubernetes target against a local fake API server: request paths, fieldManager, content type, dryRun,
namespace creation, rollout wait, idempotency, status and destroy, and the one-line unreachable error."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.errors import ArtifactError, ClusterUnreachable, DeployError
from stacks.deploy.kube import DEPLOYMENT_LABEL, OWNER_LABEL, KubernetesTarget, read_manifests, readiness
from stacks.deploy.state import DeployState
from stacks.folder import load_folder
from tests import factories
from tests.deploy.conftest import reseal, write_plan_folder
from tests.deploy.fake_kube import FakeKubeServer

NS = "mlplan-mistral"
DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "mistral-7b", "namespace": NS, "labels": {"app": "mistral-7b"}},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "mistral-7b"}},
             "template": {"metadata": {"labels": {"app": "mistral-7b"}},
                          "spec": {"containers": [{"name": "server", "image": "rayproject/ray:2.60.0"}]}}},
}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "mistral-7b", "namespace": NS},
           "spec": {"selector": {"app": "mistral-7b"}, "ports": [{"port": 8000, "targetPort": 8000}]}}
RAYSERVICE = {"apiVersion": "ray.io/v1", "kind": "RayService", "metadata": {"name": "mistral-7b", "namespace": NS},
              "spec": {"serveConfigV2": "applications: []\n", "rayClusterConfig": {"headGroupSpec": {}}}}


def _folder(tmp_path: Path) -> Path:
    return write_plan_folder(tmp_path / "plan", factories.onprem_llm(), {
        "k8s/10-service.yaml": yaml.safe_dump(SERVICE),
        "k8s/20-deployment.yaml": yaml.safe_dump(DEPLOYMENT),
        "serving/kuberay/rayservice.yaml": yaml.safe_dump(RAYSERVICE),
    })


def _target(folder_path: Path, server: FakeKubeServer, tmp_path: Path, out: list[str], *, timeout_s: float = 20,
            poll_s: float = 0.01, **kw: Any) -> KubernetesTarget:
    folder = load_folder(folder_path)
    state = DeployState(folder.state_dir, folder.plan.id, announce=out.append)
    tmp_path.mkdir(parents=True, exist_ok=True)
    kubeconfig = server.kubeconfig(tmp_path / "kubeconfig")
    return KubernetesTarget(folder, state, kubeconfig=kubeconfig, say=out.append, timeout_s=timeout_s,
                            poll_s=poll_s, **kw)


def test_apply_uses_server_side_apply_with_field_manager_and_creates_namespace(
        tmp_path: Path, kube_server: FakeKubeServer) -> None:
    out: list[str] = []
    target = _target(_folder(tmp_path), kube_server, tmp_path, out)
    summary = target.apply()
    target.close()
    fake = kube_server.fake
    patches = fake.applies()
    assert [p.path for p in patches] == [
        f"/api/v1/namespaces/{NS}",
        f"/api/v1/namespaces/{NS}/services/mistral-7b",
        f"/apis/apps/v1/namespaces/{NS}/deployments/mistral-7b",
        f"/apis/ray.io/v1/namespaces/{NS}/rayservices/mistral-7b",
    ]
    for p in patches:
        assert p.content_type == "application/apply-patch+yaml"
        assert p.query["fieldManager"] == ["mlplan"]
        assert p.query["force"] == ["true"]
        assert "dryRun" not in p.query
        assert p.authorization == "Bearer test-token"
    # discovery found the CRD's path through /apis
    assert any(r.path == "/apis/ray.io/v1" for r in fake.requests)
    assert fake.get("namespaces", None, NS) is not None
    assert fake.get("deployments", NS, "mistral-7b")["spec"]["replicas"] == 3
    assert summary.ready is True
    assert [(o["kind"], o["action"]) for o in summary.details["objects"]] == [
        ("Namespace", "created"), ("Service", "created"), ("Deployment", "created"), ("RayService", "created")]
    assert summary.changed == 4
    assert any("rollout ready" in line for line in out)
    state = DeployState(target.folder.state_dir, "x").target("kubernetes")
    assert state is not None and state["status"] == "deployed"
    assert [(s["name"], s["status"]) for s in state["steps"]] == [
        ("connect", "done"), ("check ownership", "done"), ("apply", "done"), ("wait for rollout", "done")]
    # every object carries this deployment's labels, added at apply time (the manifests have none)
    deployment_id = json.loads((target.folder.state_dir / "state.json").read_text())["deployment_id"]
    for p in patches:
        assert p.body["metadata"]["labels"][DEPLOYMENT_LABEL] == deployment_id
        assert p.body["metadata"]["labels"][OWNER_LABEL] == target.folder.plan.names.project
    # each step is announced as it starts and as it ends, with its duration
    assert "kubernetes: check ownership ..." in out
    assert any(re.fullmatch(r"kubernetes: wait for rollout done in \d+\.\d s", line) for line in out), out
    assert {r["kind"] for r in state["resources"]} == {"Namespace", "Service", "Deployment", "RayService"}


def test_second_apply_changes_nothing(tmp_path: Path, kube_server: FakeKubeServer) -> None:
    folder = _folder(tmp_path)
    out: list[str] = []
    _target(folder, kube_server, tmp_path, out).apply()
    writes = kube_server.fake.writes
    versions = {k: o["metadata"]["resourceVersion"] for k, o in kube_server.fake.objects.items()}
    second = _target(folder, kube_server, tmp_path, out).apply()
    assert kube_server.fake.writes == writes
    assert {k: o["metadata"]["resourceVersion"] for k, o in kube_server.fake.objects.items()} == versions
    assert second.changed == 0
    assert [o["action"] for o in second.details["objects"]] == ["unchanged"] * 3
    # a changed manifest is reported as configured, and only that object is written
    changed = dict(DEPLOYMENT, spec={**DEPLOYMENT["spec"], "replicas": 4})  # type: ignore[dict-item]
    (folder / "k8s/20-deployment.yaml").write_text(yaml.safe_dump(changed))
    reseal(folder)  # as a re-plan writes it
    third = _target(folder, kube_server, tmp_path, out).apply()
    assert [o["action"] for o in third.details["objects"]] == ["unchanged", "configured", "unchanged"]
    assert kube_server.fake.writes == writes + 1


def test_dry_run_sends_dry_run_all_and_changes_nothing(tmp_path: Path, kube_server: FakeKubeServer) -> None:
    folder = _folder(tmp_path)
    out: list[str] = []
    # the namespace exists, so the server can dry-run every object
    kube_server.fake.objects[("namespaces", None, NS)] = {"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": NS, "resourceVersion": "5"}}
    summary = _target(folder, kube_server, tmp_path, out).plan()
    patches = kube_server.fake.applies()
    assert len(patches) == 3
    assert all(p.query["dryRun"] == ["All"] for p in patches)
    assert kube_server.fake.writes == 0
    assert kube_server.fake.get("deployments", NS, "mistral-7b") is None
    assert summary.dry_run is True
    assert all(o["action"] == "created (dry run)" for o in summary.details["objects"])
    assert not (folder / ".mlplan" / "state.json").exists() or \
        "kubernetes" not in (folder / ".mlplan" / "state.json").read_text()


def test_status_and_destroy(tmp_path: Path, kube_server: FakeKubeServer) -> None:
    folder = _folder(tmp_path)
    out: list[str] = []
    _target(folder, kube_server, tmp_path, out).apply()
    health = _target(folder, kube_server, tmp_path, out).status()
    healthy, lines = health.healthy, health.lines
    assert healthy, lines
    assert "Deployment/mistral-7b: ready (3/3 ready, 3 updated)" in lines
    # someone deletes the deployment behind mlplan's back: status tells the truth
    del kube_server.fake.objects[("deployments", NS, "mistral-7b")]
    health = _target(folder, kube_server, tmp_path, out).status()
    healthy, lines = health.healthy, health.lines
    assert not healthy and "Deployment/mistral-7b: missing" in lines
    removed = _target(folder, kube_server, tmp_path, out).destroy()
    assert removed == 3  # service, rayservice and the namespace mlplan created; the deployment was gone
    deletes = [r.path for r in kube_server.fake.requests if r.method == "DELETE"]
    assert deletes[-1] == f"/api/v1/namespaces/{NS}"  # the namespace last
    assert all(r.query.get("propagationPolicy") == ["Foreground"]
               for r in kube_server.fake.requests if r.method == "DELETE")
    assert kube_server.fake.get("namespaces", None, NS) is None
    assert kube_server.fake.get("namespaces", None, "default") is not None
    # a second destroy is a no-op
    before = len(kube_server.fake.requests)
    assert _target(folder, kube_server, tmp_path, out).destroy() == 0
    assert not [r for r in kube_server.fake.requests[before:] if r.method == "DELETE"]


def test_existing_namespace_is_never_deleted(tmp_path: Path, kube_server: FakeKubeServer) -> None:
    folder = write_plan_folder(tmp_path / "plan", factories.onprem_llm(), {
        "k8s/svc.yaml": yaml.safe_dump({**SERVICE, "metadata": {"name": "svc"}})})  # no namespace: default
    out: list[str] = []
    _target(folder, kube_server, tmp_path, out, timeout_s=5).apply()
    assert kube_server.fake.get("services", "default", "svc") is not None
    _target(folder, kube_server, tmp_path, out).destroy()
    assert kube_server.fake.get("services", "default", "svc") is None
    assert kube_server.fake.get("namespaces", None, "default") is not None


def test_rollout_timeout_is_recorded(tmp_path: Path) -> None:
    from tests.deploy.fake_kube import FakeKube

    with FakeKubeServer(FakeKube(ready_after=10**6)) as server:
        folder = _folder(tmp_path)
        out: list[str] = []
        with pytest.raises(DeployError, match="rollout not ready after 0 s: Deployment/mistral-7b"):
            _target(folder, server, tmp_path, out, timeout_s=0.2, poll_s=0.05).apply()
    state = DeployState(folder / ".mlplan", "x").target("kubernetes")
    assert state is not None and state["status"] == "failed"
    assert state["steps"][-1]["name"] == "wait for rollout" and state["steps"][-1]["status"] == "failed"
    assert len(state["resources"]) == 4  # what exists is on record, so destroy can remove it


def test_unknown_crd_is_one_clear_error(tmp_path: Path, kube_server: FakeKubeServer) -> None:
    del kube_server.fake.served[("ray.io", "v1")]
    out: list[str] = []
    with pytest.raises(DeployError, match=r"does not serve RayService \(ray.io/v1\).*KubeRay operator"):
        _target(_folder(tmp_path), kube_server, tmp_path, out).apply()
    assert not kube_server.fake.applies()  # nothing half-applied: kinds are resolved before the first PATCH


def test_unreachable_cluster_is_cluster_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    folder = load_folder(_folder(tmp_path))
    target = KubernetesTarget(folder, DeployState(folder.state_dir, "x"), kubeconfig=str(cfg), say=lambda _: None)
    with pytest.raises(ClusterUnreachable) as err:
        target.apply()
    line = err.value.one_line()
    assert f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}: connection refused" in line
    assert "To fix:" in line and "\n" not in line


def test_missing_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    folder = load_folder(_folder(tmp_path))
    target = KubernetesTarget(folder, DeployState(folder.state_dir, "x"), say=lambda _: None)
    with pytest.raises(ClusterUnreachable, match="no kubeconfig found"):
        target.apply()


def test_manifest_reading(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(yaml.safe_dump_all([DEPLOYMENT, None, {"apiVersion": "v1", "kind": "Namespace",
                                                        "metadata": {"name": NS}}]))
    kinds = [m.kind for m in read_manifests([f])]
    assert kinds == ["Namespace", "Deployment"]  # namespaces first
    f.write_text("kind: Service\nmetadata: {name: x}\n")
    with pytest.raises(ArtifactError, match="not a Kubernetes object"):
        read_manifests([f])
    f.write_text("apiVersion: v1\nkind: Service\nmetadata: {}\n")
    with pytest.raises(ArtifactError, match=r"no metadata\.name"):
        read_manifests([f])


@pytest.mark.parametrize(("obj", "ready"), [
    ({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
      "status": {"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 2}}, False),  # stale
    ({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
      "status": {"observedGeneration": 2, "readyReplicas": 1, "updatedReplicas": 2}}, False),
    ({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
      "status": {"observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 2}}, True),
    ({"kind": "DaemonSet", "metadata": {}, "status": {"desiredNumberScheduled": 0}}, False),
    ({"kind": "DaemonSet", "metadata": {}, "status": {"desiredNumberScheduled": 12, "numberReady": 12,
                                                      "updatedNumberScheduled": 12}}, True),
    ({"kind": "RayService", "metadata": {}, "status": {"serviceStatus": "Running"}}, True),
    ({"kind": "RayService", "metadata": {}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
     False),
    ({"kind": "Service", "metadata": {}}, True),
])
def test_readiness(obj: dict, ready: bool) -> None:  # type: ignore[type-arg]
    assert readiness(obj)[0] is ready


@pytest.mark.parametrize("name", ["onprem_llm", "edge_vision", "hybrid_onprem_cloud_burst"])
def test_the_emitters_manifests_apply(name: str, tmp_path: Path, kube_server: FakeKubeServer) -> None:
    """The manifests the plan writer renders (stacks.manifests + serving.kuberay) apply through discovery;
    a hybrid plan's EKS-side file is left to the Pulumi stack, and the serving package's RayService copy is not
    applied a second time next to the k8s/ one."""
    from serving.kuberay import build_rayservices
    from stacks.layout import parts
    from stacks.manifests import render

    plan = factories.ALL_PLANS[name]()
    rendered = render(plan)
    files = {f"k8s/{key}.yaml": yaml.safe_dump_all(objs) for key, objs in rendered.items()}
    services = build_rayservices(plan, parts(plan)[0].namespace)
    if services:
        files["serving/kuberay/rayservice.yaml"] = yaml.safe_dump_all(services)
    folder = write_plan_folder(tmp_path / "p", plan, files)
    out: list[str] = []
    target = "kubernetes" if name.startswith("hybrid") else None
    from stacks.deploy import targets

    result = targets.deploy(folder, target, opts=targets.Options(kubeconfig=kube_server.kubeconfig(
        tmp_path / "kubeconfig"), timeout_s=20), say=out.append)
    cloud_keys = {i.key for i in parts(plan) if i.target == "aws-eks"}
    expected = {(o["kind"], o["metadata"]["name"]) for key, objs in rendered.items() if key not in cloud_keys
                for o in objs}
    assert {(o["kind"], o["name"]) for o in result.details["objects"]} == expected
    assert len(result.details["objects"]) == len(expected)  # each object once
    if cloud_keys:
        assert not any(o["name"].endswith("-burst") for o in result.details["objects"])
    again = targets.deploy(folder, target, opts=targets.Options(kubeconfig=kube_server.kubeconfig(
        tmp_path / "kubeconfig"), timeout_s=20), say=out.append)
    assert again.changed == 0


def test_objects_dropped_from_the_manifests_are_pruned(tmp_path: Path, kube_server: FakeKubeServer) -> None:
    folder = _folder(tmp_path)
    out: list[str] = []
    _target(folder, kube_server, tmp_path, out).apply()
    (folder / "k8s/10-service.yaml").unlink()  # the new plan has no Service
    reseal(folder)
    dry = _target(folder, kube_server, tmp_path, out).plan()
    assert dry.details["pruned"] == ["Service/mistral-7b"]
    assert kube_server.fake.get("services", NS, "mistral-7b") is not None  # a dry run deletes nothing
    dry_deletes = [r for r in kube_server.fake.requests if r.method == "DELETE"]
    assert dry_deletes and all(r.query.get("dryRun") == ["All"] for r in dry_deletes)
    result = _target(folder, kube_server, tmp_path, out).apply()
    assert result.details["pruned"] == ["Service/mistral-7b"] and result.changed == 1
    assert kube_server.fake.get("services", NS, "mistral-7b") is None
    state = DeployState(folder / ".mlplan", "x").target("kubernetes")
    assert state is not None and "Service" not in {r["kind"] for r in state["resources"]}
    assert kube_server.fake.get("deployments", NS, "mistral-7b") is not None


def test_another_cluster_is_refused(tmp_path: Path, kube_server: FakeKubeServer) -> None:
    folder = _folder(tmp_path)
    out: list[str] = []
    _target(folder, kube_server, tmp_path, out).apply()
    with FakeKubeServer() as other:
        for action in ("status", "destroy", "apply"):
            target = _target(folder, other, tmp_path / action, out)
            with pytest.raises(DeployError, match=f"was deployed to {kube_server.url}, but the kubeconfig now "
                                                  f"points at {other.url}"):
                getattr(target, action)()
        assert not other.fake.applies() and not [r for r in other.fake.requests if r.method == "DELETE"]
    assert kube_server.fake.get("deployments", NS, "mistral-7b") is not None
