"""checkov (a tool we did not write, in its own environment) over every generated Kubernetes manifest of every
example and factory plan, and over the top-level Dockerfile: no failure outside the checked-in baseline, no
stale baseline entry, and proof that the pipeline does report a failure when there is one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.security import audit
from tests.security.conftest import CheckovScan, Emitted


def test_every_manifest_and_the_dockerfile_were_scanned(checkov_scan: CheckovScan,
                                                        emitted: dict[str, Emitted]) -> None:
    assert checkov_scan.parsing_errors == 0
    with_k8s = {n for n, e in emitted.items() if audit.manifest_files(e.folder)}
    assert with_k8s and set(checkov_scan.files) == with_k8s
    # the plans that run on Kubernetes: every example except the microcontroller and the local demo
    assert {"example-chat-eu-pii", "example-hybrid-clinic", "example-vision-jetson-fleet",
            "example-finetune-zero", "example-llama-70b-tight-ttft"} <= with_k8s
    assert checkov_scan.passed > 100


def test_no_failure_outside_the_baseline(checkov_scan: CheckovScan) -> None:
    high = [f for f in checkov_scan.failures if (f.severity or "").upper() in ("HIGH", "CRITICAL")]
    assert not high, "\n".join(map(str, high))
    new, _, _ = audit.Baseline().split(checkov_scan.failures)
    assert not new, "checkov failures to fix in the generators or justify in checkov-baseline.yaml:\n" + \
        "\n".join(map(str, new))


def test_no_stale_baseline_entry(checkov_scan: CheckovScan) -> None:
    _, _, stale = audit.Baseline().split(checkov_scan.failures)
    assert not stale, "baseline entries no failure needs any more (remove them): " + \
        ", ".join(f"{e.check_id}/{e.kind}" for e in stale)


def test_baseline_entries_are_justified() -> None:
    raw = yaml.safe_load(audit.BASELINE.read_text())
    assert set(raw) == {"accepted"}
    keys = [(e["check_id"], e["kind"]) for e in raw["accepted"]]
    assert len(keys) == len(set(keys)), "duplicate baseline entries"
    for e in raw["accepted"]:
        assert set(e) == {"check_id", "kind", "justification"}, e
        assert e["check_id"].startswith("CKV_") and e["kind"]
        text = " ".join(e["justification"].split())
        assert 30 <= len(text) <= 300 and "\n" not in e["justification"].strip(), e["check_id"]


@pytest.mark.slow
def test_checkov_reports_a_privileged_host_pod(tmp_path: Path) -> None:
    """The scan can fail: a pod that is privileged, on the host network and mounts the host's root."""
    if not audit.checkov_available():
        pytest.skip(f"checkov is not installed at {audit.CHECKOV}")
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad", "namespace": "x"},
           "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
               "metadata": {"labels": {"a": "b"}},
               "spec": {"hostNetwork": True, "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
                        "containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True},
                                        "volumeMounts": [{"name": "root", "mountPath": "/host"}]}]}}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    _, failures, _ = audit.run_checkov(tmp_path)
    ids = {f.check_id for f in failures}
    assert {"CKV_K8S_16", "CKV_K8S_19"} <= ids, ids  # privileged container; host network
    new, _, _ = audit.Baseline().split(failures)
    assert any(f.check_id == "CKV_K8S_16" for f in new)
