"""Every pod template in every generated manifest meets the Kubernetes Pod Security Standards "restricted"
profile (https://kubernetes.io/docs/concepts/security/pod-security-standards/): non-root, runAsNonRoot, no
privilege escalation, all capabilities dropped, seccomp RuntimeDefault, only the allowed volume types (no
hostPath), no host network/PID/IPC, no privileged container, no host ports. The namespaces mlplan creates
enforce that profile (``pod-security.kubernetes.io/enforce: restricted``), so a violation would be refused at
admission.

Exceptions, stated: none of the generated pods needs one. GPU pods get their devices from the vendor's device
plugin (extended resources such as ``nvidia.com/gpu``), not from privileged mode or hostPath, and NCCL's shared
memory is an ``emptyDir`` with ``medium: Memory`` (an allowed volume type). The one GPU component that does need
privileges, the vendor device-plugin DaemonSet (privileged, hostPath ``/var/lib/kubelet/device-plugins``), is
not part of the generated manifests: the Pulumi stack installs it from the vendor's Helm chart into
``kube-system`` (``stacks.k8s.NvidiaDevicePlugin``), outside the restricted namespaces.
"""

from __future__ import annotations

import pytest

from tests.security import audit
from tests.security.conftest import Emitted

KUBE_NAMES = ["example-chat-eu-pii", "example-finetune-zero", "example-hybrid-clinic",
              "example-llama-70b-tight-ttft", "example-vision-jetson-fleet"]


def test_every_pod_template_is_restricted(emitted: dict[str, Emitted]) -> None:
    checked: dict[str, int] = {}
    problems: list[str] = []
    for name, e in emitted.items():
        for f in audit.manifest_files(e.folder):
            for doc in audit.documents(f):
                for where, pod in audit.pod_templates(doc):
                    checked[name] = checked.get(name, 0) + 1
                    problems += [f"{name}/{f.name} {where}: {v}" for v in audit.pss_violations(pod)]
    assert not problems, "\n".join(problems)
    assert set(KUBE_NAMES) <= set(checked), checked
    assert sum(checked.values()) >= 30


def test_every_namespace_enforces_restricted(emitted: dict[str, Emitted]) -> None:
    seen = 0
    for e in emitted.values():
        for f in audit.manifest_files(e.folder):
            for doc in audit.documents(f):
                if doc["kind"] == "Namespace":
                    seen += 1
                    labels = doc["metadata"]["labels"]
                    assert labels["pod-security.kubernetes.io/enforce"] == "restricted", f
    assert seen >= len(KUBE_NAMES)


GOOD = {"securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": False,
                                                          "capabilities": {"drop": ["ALL"]}}}],
        "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}]}


@pytest.mark.parametrize(("change", "expected"), [
    (lambda p: p.update(hostNetwork=True), "hostNetwork"),
    (lambda p: p.update(hostPID=True), "hostPID"),
    (lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
    (lambda p: p["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}), "not allowed"),
    (lambda p: p["containers"][0]["securityContext"].update(privileged=True), "privileged"),
    (lambda p: p["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"), "allowPrivilegeEscalation"),
    (lambda p: p["containers"][0]["securityContext"].update(capabilities={"add": ["SYS_ADMIN"], "drop": ["ALL"]}),
     "SYS_ADMIN"),
    (lambda p: p["containers"][0]["securityContext"].update(capabilities={}), "drop ALL"),
    (lambda p: p["securityContext"].pop("runAsNonRoot"), "runAsNonRoot"),
    (lambda p: p["containers"][0]["securityContext"].update(runAsUser=0), "runAsUser 0"),
    (lambda p: p["securityContext"].pop("seccompProfile"), "seccompProfile"),
    (lambda p: p["containers"][0]["securityContext"].update(seccompProfile={"type": "Unconfined"}), "Unconfined"),
    (lambda p: p["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]), "hostPort"),
    (lambda p: p.setdefault("initContainers", []).append({"name": "init", "securityContext": {}}), "init"),
])
def test_the_checker_catches_each_violation(change: object, expected: str) -> None:
    import copy

    assert audit.pss_violations(copy.deepcopy(GOOD)) == []
    pod = copy.deepcopy(GOOD)
    change(pod)  # type: ignore[operator]
    found = audit.pss_violations(pod)
    assert any(expected in v for v in found), found


def test_rayservice_pod_templates_are_found() -> None:
    rs = {"kind": "RayService", "metadata": {"name": "r"}, "spec": {"rayClusterConfig": {
        "headGroupSpec": {"template": {"spec": {"containers": [{"name": "h"}]}}},
        "workerGroupSpecs": [{"groupName": "gpu", "template": {"spec": {"containers": [{"name": "w"}]}}}]}}}
    assert [w for w, _ in audit.pod_templates(rs)] == ["RayService/r head", "RayService/r workers gpu"]
