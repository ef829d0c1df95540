"""Two teams, one cluster: a deploy changes, and a destroy deletes, only what its own deploy created.

Every case runs against the fake API server (tests/deploy/fake_kube.py), which keeps ``metadata.managedFields`` as
the real one does: the oracle is the fake's object store and its request log (who wrote what), never mlplan's
own report.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.errors import DeployError
from stacks.deploy import targets
from stacks.deploy.kube import DEPLOYMENT_LABEL, OWNER_LABEL
from tests import factories
from tests.deploy.conftest import for_spec, rendered_folder, write_plan_folder
from tests.deploy.fake_kube import FakeKubeServer, request
from tests.deploy.test_kube import DEPLOYMENT, NS, RAYSERVICE, SERVICE


def _opts(server: FakeKubeServer, tmp_path: Path, **kw: Any) -> targets.Options:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return targets.Options(kubeconfig=server.kubeconfig(tmp_path / "kubeconfig"), timeout_s=20, **kw)


def _snapshot(server: FakeKubeServer, namespace: str) -> dict[tuple[str, str], str]:
    """(plural, name) -> resourceVersion of every object in a namespace (and the namespace itself)."""
    out = {(p, n): o["metadata"]["resourceVersion"] for (p, ns, n), o in server.fake.objects.items()
           if ns == namespace}
    out[("namespaces", namespace)] = server.fake.objects[("namespaces", None, namespace)]["metadata"]["resourceVersion"]
    return out


def _writes_by(server: FakeKubeServer, since: int) -> list[str]:
    return [f"{r.method} {r.path}" for r in server.fake.requests[since:] if r.method in ("PATCH", "DELETE", "PUT")]


def _object_count(folder: Path) -> int:
    """Kubernetes objects the folder's manifests hold."""
    return sum(1 for f in sorted((folder / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d)


def test_two_specs_serving_one_model_share_a_cluster(tmp_path: Path, kube_server: FakeKubeServer) -> None:
    """Team A and team B plan the same model; their emitted names differ by spec. B's deploy and B's destroy
    leave every object of A exactly as it was (same resourceVersion), and A stays healthy."""
    a = rendered_folder(tmp_path / "a", for_spec(factories.onprem_llm(), "team-a"))
    b = rendered_folder(tmp_path / "b", for_spec(factories.onprem_llm(), "team-b"))
    out: list[str] = []
    targets.deploy(a, opts=_opts(kube_server, tmp_path / "ka"), say=out.append)
    before = _snapshot(kube_server, "mlplan-team-a")
    objects = _object_count(a)  # namespace, service account, quota, network policies, TLS front door, RayService ...
    assert len(before) == objects >= 9
    n = len(kube_server.fake.requests)
    targets.deploy(b, opts=_opts(kube_server, tmp_path / "kb"), say=out.append)
    assert not [w for w in _writes_by(kube_server, n) if "mlplan-team-a" in w]
    assert targets.destroy(b, opts=_opts(kube_server, tmp_path / "kb"), say=out.append) == objects
    assert not [k for k in kube_server.fake.objects if k[1] == "mlplan-team-b" or k[2] == "mlplan-team-b"]
    assert _snapshot(kube_server, "mlplan-team-a") == before
    assert not [w for w in _writes_by(kube_server, n) if "mlplan-team-a" in w]
    healthy, lines = targets.status(a, opts=_opts(kube_server, tmp_path / "ka"))
    assert healthy, lines
    # the objects say whose they are
    rs = kube_server.fake.get("rayservices", "mlplan-team-a", "team-a")
    assert rs is not None and rs["metadata"]["labels"][OWNER_LABEL] == "mlplan-team-a"


def test_a_second_folder_with_the_same_names_is_refused_and_changes_nothing(
        tmp_path: Path, kube_server: FakeKubeServer) -> None:
    """Two specs with the same name (or one spec planned into two folders): the second deploy stops before its
    first write, with one line naming the first object it would have taken over; its destroy deletes nothing."""
    plan = for_spec(factories.onprem_llm(), "chat")
    a = rendered_folder(tmp_path / "a", plan)
    b = rendered_folder(tmp_path / "b", plan)
    out: list[str] = []
    targets.deploy(a, opts=_opts(kube_server, tmp_path / "ka"), say=out.append)
    before = _snapshot(kube_server, "mlplan-chat")
    writes = kube_server.fake.writes
    n = len(kube_server.fake.requests)
    with pytest.raises(DeployError) as err:
        targets.deploy(b, opts=_opts(kube_server, tmp_path / "kb"), say=out.append)
    line = err.value.one_line()
    assert err.value.exit_code == 5 and "\n" not in line
    assert f"Namespace/mlplan-chat already exists on {kube_server.url} and is not this deployment's (owner " \
           "mlplan-chat, deployment " in line
    assert f"; so do {_object_count(a) - 1} more of its objects: mlplan changes only objects its own deploy " \
           "created. To fix: give the spec another name" in line
    assert kube_server.fake.writes == writes and not _writes_by(kube_server, n)
    # a dry run of B says the same, and writes nothing either
    with pytest.raises(DeployError, match="is not this deployment's"):
        targets.deploy(b, dry_run=True, opts=_opts(kube_server, tmp_path / "kb"), say=out.append)
    assert targets.destroy(b, opts=_opts(kube_server, tmp_path / "kb"), say=out.append) == 0
    assert not _writes_by(kube_server, n)
    assert _snapshot(kube_server, "mlplan-chat") == before


def test_an_object_made_by_hand_is_never_taken_over(tmp_path: Path, kube_server: FakeKubeServer) -> None:
    """A Service someone created with kubectl (no mlplan labels) where the manifests want one: refused."""
    status, _ = request(kube_server, "PATCH", "/api/v1/namespaces/default/services/mistral-7b",
                        {**SERVICE, "metadata": {"name": "mistral-7b"}}, manager="kubectl",
                        content_type="application/apply-patch+yaml")
    assert status == 201
    folder = write_plan_folder(tmp_path / "p", factories.onprem_llm(), {
        "k8s/svc.yaml": yaml.safe_dump({**SERVICE, "metadata": {"name": "mistral-7b"}})})
    with pytest.raises(DeployError, match=r"Service/mistral-7b in default already exists on .* and is not this "
                                          r"deployment's \(field managers kubectl\): mlplan changes only"):
        targets.deploy(folder, opts=_opts(kube_server, tmp_path), say=lambda _: None)
    svc = kube_server.fake.get("services", "default", "mistral-7b")
    assert svc is not None and "labels" not in svc["metadata"]


def _deployed(tmp_path: Path, server: FakeKubeServer) -> Path:
    folder = write_plan_folder(tmp_path / "plan", factories.onprem_llm(), {
        "k8s/10-service.yaml": yaml.safe_dump(SERVICE), "k8s/20-deployment.yaml": yaml.safe_dump(DEPLOYMENT),
        "serving/kuberay/rayservice.yaml": yaml.safe_dump(RAYSERVICE)})
    targets.deploy(folder, opts=_opts(server, tmp_path), say=lambda _: None)
    return folder


def test_destroy_refuses_an_object_another_field_manager_co_owns(tmp_path: Path,
                                                                 kube_server: FakeKubeServer) -> None:
    folder = _deployed(tmp_path, kube_server)
    # the controllers' own writes (status subresource, the revision annotation, an autoscaler's scale
    # subresource) are not ownership ...
    status, scaled = request(kube_server, "PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/mistral-7b/scale",
                             {"spec": {"replicas": 5}}, manager="kube-controller-manager")
    assert status == 200 and scaled["spec"]["replicas"] == 5
    managers = {(e["manager"], e.get("subresource")) for e in kube_server.fake.managers("deployments", NS,
                                                                                         "mistral-7b")}
    assert managers >= {("mlplan", None), ("kube-controller-manager", "status"),
                        ("kube-controller-manager", None), ("kube-controller-manager", "scale")}
    # ... but someone's `kubectl edit` of the container image is
    containers = copy.deepcopy(DEPLOYMENT["spec"]["template"]["spec"]["containers"])  # type: ignore[index]
    containers[0]["image"] = "rayproject/ray:2.61.0"
    status, _ = request(kube_server, "PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/mistral-7b",
                        {"spec": {"template": {"spec": {"containers": containers}}}}, manager="kubectl-edit")
    assert status == 200
    n = len(kube_server.fake.requests)
    with pytest.raises(DeployError) as err:
        targets.destroy(folder, opts=_opts(kube_server, tmp_path), say=lambda _: None)
    line = err.value.one_line()
    assert err.value.exit_code == 5
    assert f"destroy refused: Deployment/mistral-7b in {NS} is also managed by kubectl-edit " \
           "(.spec.template.spec.containers); mlplan deletes only objects no one else manages" in line
    assert f"kubectl delete deployment mistral-7b -n {NS}" in line
    assert not kube_server.fake.deletes()[n:] and not [r for r in kube_server.fake.requests[n:]
                                                       if r.method == "DELETE"]
    assert kube_server.fake.get("services", NS, "mistral-7b") is not None  # nothing was deleted
    # once that object is gone (the user deleted it), destroy removes the rest
    assert request(kube_server, "DELETE", f"/apis/apps/v1/namespaces/{NS}/deployments/mistral-7b")[0] == 200
    out: list[str] = []
    assert targets.destroy(folder, opts=_opts(kube_server, tmp_path), say=out.append) == 3
    assert f"  Deployment/mistral-7b in {NS}: already gone" in out
    assert kube_server.fake.get("namespaces", None, NS) is None


def test_an_object_recreated_by_someone_else_is_left_alone(tmp_path: Path, kube_server: FakeKubeServer) -> None:
    folder = _deployed(tmp_path, kube_server)
    assert request(kube_server, "DELETE", f"/api/v1/namespaces/{NS}/services/mistral-7b")[0] == 200
    theirs = {**SERVICE, "metadata": {"name": "mistral-7b", "namespace": NS,
                                      "labels": {OWNER_LABEL: "mlplan-other", DEPLOYMENT_LABEL: "0123456789abcdef"}}}
    assert request(kube_server, "PATCH", f"/api/v1/namespaces/{NS}/services/mistral-7b", theirs, manager="mlplan",
                   content_type="application/apply-patch+yaml")[0] == 201
    healthy, lines = targets.status(folder, opts=_opts(kube_server, tmp_path))
    assert not healthy
    assert "  Service/mistral-7b: not this deployment's any more (owner mlplan-other, deployment " \
           "0123456789abcdef, field managers mlplan)" in lines
    out: list[str] = []
    targets.destroy(folder, opts=_opts(kube_server, tmp_path), say=out.append)
    assert any(line.startswith(f"  Service/mistral-7b in {NS}: not deleted, it is not this deployment's any more")
               for line in out), out
    # their Service survives; the namespace mlplan created is kept because it now holds it
    assert kube_server.fake.get("services", NS, "mistral-7b") is not None
    assert kube_server.fake.get("deployments", NS, "mistral-7b") is None
    assert kube_server.fake.get("namespaces", None, NS) is not None
    assert any("Namespace/" + NS + ": not deleted, kept: it holds objects mlplan did not create (Service/mistral-7b"
               in line for line in out), out


def test_an_existing_namespace_without_mlplan_labels_is_used_as_it_is(tmp_path: Path,
                                                                     kube_server: FakeKubeServer) -> None:
    """An admin created the team's namespace; the manifests declare it too. mlplan applies into it, never
    changes or deletes it."""
    assert request(kube_server, "PATCH", "/api/v1/namespaces/mlplan-test",
                   {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mlplan-test"}}, manager="kubectl",
                   content_type="application/apply-patch+yaml")[0] == 201
    folder = rendered_folder(tmp_path / "p", factories.onprem_llm())
    out: list[str] = []
    result = targets.deploy(folder, opts=_opts(kube_server, tmp_path), say=out.append)
    assert "  Namespace/mlplan-test: exists and mlplan did not create it: used as it is (its labels from the " \
           "manifests are not applied)" in out
    assert "Namespace" not in {o["kind"] for o in result.details["objects"]}
    ns = kube_server.fake.get("namespaces", None, "mlplan-test")
    assert ns is not None and OWNER_LABEL not in ns["metadata"].get("labels", {})
    targets.destroy(folder, opts=_opts(kube_server, tmp_path), say=out.append)
    assert kube_server.fake.get("namespaces", None, "mlplan-test") is not None
    assert not [k for k in kube_server.fake.objects if k[1] == "mlplan-test"]


def test_no_force_conflicts_answers_the_servers_conflict_in_one_line(tmp_path: Path,
                                                                     kube_server: FakeKubeServer) -> None:
    folder = _deployed(tmp_path, kube_server)
    assert request(kube_server, "PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/mistral-7b",
                   {"spec": {"replicas": 7}}, manager="kubectl-edit")[0] == 200
    with pytest.raises(DeployError) as err:
        targets.deploy(folder, opts=_opts(kube_server, tmp_path, force_conflicts=False), say=lambda _: None)
    assert 'apply Deployment/mistral-7b: conflict (Apply failed with 1 conflict: conflict with "kubectl-edit" ' \
           'using apps/v1: .spec.replicas)' in err.value.one_line()
    # with force (the default) mlplan takes the field back: the Deployment is its own
    targets.deploy(folder, opts=_opts(kube_server, tmp_path), say=lambda _: None)
    dep = kube_server.fake.get("deployments", NS, "mistral-7b")
    assert dep is not None and dep["spec"]["replicas"] == 3
    assert "kubectl-edit" not in {e["manager"] for e in dep["metadata"]["managedFields"]}
