"""Fixtures of the deploy tests: plan folders in the layout `mlplan plan --out DIR` writes, a fake Kubernetes API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.plan import Plan
from tests.deploy.fake_kube import FakeKubeServer


def write_plan_folder(root: Path, plan: Plan, files: dict[str, str] | None = None) -> Path:
    """A plan folder with ``plan.yaml`` (as the plan writer stores it: the spec copy and its hash), the given
    artifact files and the ownership marker over all of them."""
    from planner.guard import spec_digest
    from tests.factories import spec_for

    root.mkdir(parents=True, exist_ok=True)
    spec = spec_for(plan).model_dump(mode="json")
    data: dict[str, Any] = {"mlplan_version": "0.1.0", "catalog_version": "test", "spec": spec,
                            "spec_sha256": spec_digest(spec), "plan": plan.model_dump(mode="json"),
                            "runners_up": [], "rejected": []}
    (root / "plan.yaml").write_text(yaml.safe_dump(data, sort_keys=True))
    for rel, text in (files or {}).items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    reseal(root)
    return root


def reseal(root: Path, plan_id: str | None = None) -> None:
    """Recompute a folder's marker after a test changed its files (as a re-plan would have written them)."""
    from stacks.folder import MARKER, marker_text

    plan_id = plan_id or yaml.safe_load((root / "plan.yaml").read_text())["plan"]["id"]
    written = [p for p in root.rglob("*") if p.is_file() and p.name != MARKER and ".mlplan" not in p.parts]
    (root / MARKER).write_text(marker_text(plan_id, root, written))


@pytest.fixture
def kube_server() -> Iterator[FakeKubeServer]:
    with FakeKubeServer() as server:
        yield server


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real moto server on 127.0.0.1 (``moto_server``), shared by the AWS tests of this package."""
    import os
    import shutil
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if exe is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=fh, stderr=subprocess.STDOUT,
                                env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"moto_server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def reset_moto(url: str) -> None:
    import urllib.request

    req = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=60):  # a reset re-reads moto's catalogs: slow on a busy machine
        pass


def small_catalog() -> Any:
    """A catalog with a few datasheet accelerators and two AWS regions, independent of the embedded data."""
    from planner.catalog import Catalog
    from planner.catalog.schema import Accelerator, Instance, Interconnect, Region, RttTable

    pcie = Interconnect(kind="pcie", bandwidth_gbps=32, gpus_per_domain=8)
    nvl = Interconnect(kind="nvlink", bandwidth_gbps=450, gpus_per_domain=8)
    accs = [
        Accelerator(id="l40s", vendor="nvidia", name="NVIDIA L40S", memory_gib=48, bandwidth_gbps=864,
                    tflops={"bf16": 362, "fp8": 733}, tdp_w=350, interconnect=pcie,
                    source="NVIDIA L40S datasheet"),
        Accelerator(id="a10g", vendor="nvidia", name="NVIDIA A10G", memory_gib=24, bandwidth_gbps=600,
                    tflops={"bf16": 70, "fp16": 70}, tdp_w=300, interconnect=pcie, source="AWS G5 page"),
        Accelerator(id="h100-sxm", vendor="nvidia", name="NVIDIA H100 SXM 80GB", memory_gib=80,
                    bandwidth_gbps=3350, tflops={"bf16": 989, "fp8": 1979}, tdp_w=700, interconnect=nvl,
                    source="NVIDIA H100 datasheet"),
        Accelerator(id="l4", vendor="nvidia", name="NVIDIA L4", memory_gib=24, bandwidth_gbps=300,
                    tflops={"bf16": 121, "fp8": 242}, tdp_w=72, interconnect=pcie, source="NVIDIA L4 datasheet"),
    ]
    regions = [Region(provider="aws", region="us-east-1", geography="us", zone="us-east", source="AWS"),
               Region(provider="aws", region="eu-west-1", geography="eu", zone="eu-west", source="AWS")]
    inst = Instance(provider="aws", instance="g6e.xlarge", region="us-east-1", accelerator="l40s",
                    accelerator_count=1, vcpu=4, ram_gib=32, on_demand_usd_per_h=1.861, source="AWS price page")
    return Catalog(version="test", accelerators={a.id: a for a in accs}, edge_devices={}, instances=(inst,),
                   onprem_servers=(), regions={(r.provider, r.region): r for r in regions},
                   rtt=RttTable(zones=["us-east", "us-west", "eu-west", "eu-central"],
                                rtt_ms={"us-east": {"eu-west": 70}}, source="test"))


def for_spec(plan: Plan, spec_name: str) -> Plan:
    """The same plan as the planner makes it for a spec named ``spec_name``: every name derives from it."""
    from planner import names
    from planner.plan import Names
    from tests.factories import part_names

    multi = len(plan.parts) > 1
    parts = tuple(p.model_copy(update={"names": part_names(p, multi, spec_name, plan.model.name)})
                  for p in plan.parts)
    return plan.model_copy(update={"parts": parts, "names": Names(project=names.dns_label(f"mlplan-{spec_name}"),
                                                                  stack=spec_name)})


def rendered_folder(root: Path, plan: Plan) -> Path:
    """A plan folder holding the manifests the emitters render for ``plan`` (k8s/ and the RayService copy)."""
    from serving.kuberay import build_rayservices
    from stacks.layout import parts
    from stacks.manifests import render

    files = {f"k8s/{key}.yaml": yaml.safe_dump_all(objs) for key, objs in render(plan).items()}
    services = build_rayservices(plan, parts(plan)[0].namespace)
    if services:
        files["serving/kuberay/rayservice.yaml"] = yaml.safe_dump_all(services)
    return write_plan_folder(root, plan, files)
