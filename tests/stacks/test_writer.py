"""The plan folder: golden files, determinism, atomic replacement, deploy state kept, diff, and the CLI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.catalog import Catalog, EdgeDevice, Region, RttTable
from planner.errors import ArtifactError, EnvironmentProblem, InputError
from planner.plan import Plan, Recommendation, Rejected
from planner.specs import ModelSpec, Spec
from stacks import writer
from stacks.diff import diff_folders, resources_of
from tests import factories as f
from tests.stacks.conftest import PLANS

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE = os.environ.get("MLPLAN_UPDATE_GOLDEN") == "1"
#: The golden cases: one per target (EKS + KubeRay, EC2, on-prem, edge fleet, firmware, hybrid, local, training).
GOLDEN_CASES = ["cloud_llm_tensor_parallel", "ec2_single_gpu", "onprem_llm", "edge_vision", "microcontroller",
                "hybrid_onprem_cloud_burst", "local_demo", "training_zero"]
#: serving/ is the serving package's output (pinned by its own tests); the golden files pin what stacks/ writes.
OWNED_BY_OTHERS = ("serving/", ".mlplan-folder")


def fixed_catalog() -> Catalog:
    """A fixed catalog so the goldens do not move when the embedded catalog data is refreshed."""
    stm = EdgeDevice(id="stm32h7", name="STM32H743", kind="mcu", ram_mib=1.0, storage_mib=2.0, bandwidth_gbps=1.9,
                     tops={"int8": 0.00192}, power_w=0.42, price_usd=12, runtime="tflite-micro", int8_only=True,
                     source="STM32H743 datasheet DS12110")
    regions = [Region(provider=pr, region=r, geography=g, zone="x", source="test fixture")  # type: ignore[arg-type]
               for pr, r, g in (("aws", "us-east-1", "us"), ("aws", "eu-west-1", "eu"), ("aws", "eu-central-1", "eu"),
                                ("gcp", "europe-west4", "eu"), ("azure", "eastus", "us"))]
    return Catalog(version="test", accelerators={}, edge_devices={"stm32h7": stm}, instances=(), onprem_servers=(),
                   regions={(r.provider, r.region): r for r in regions},
                   rtt=RttTable(zones=["x"], rtt_ms={}, source="test fixture"))


def recommendation(plan: Plan) -> Recommendation:
    """The plan, two runners-up (dearer, slower) and rejected option classes."""
    up1 = plan.model_copy(update={"rank": 2, "id": f"{plan.id}-alt1", "monthly_cost_usd": plan.monthly_cost_usd * 1.3
                                  + 100, "predicted": plan.predicted.model_copy(update={
                                      "ttft_s": (plan.predicted.ttft_s or 0) * 2 or None})})
    up2 = plan.model_copy(update={"rank": 3, "id": f"{plan.id}-alt2", "monthly_cost_usd": plan.monthly_cost_usd * 2
                                  + 200})
    rejected = (Rejected(option="l4", constraint="memory", reason="weights 140 GB > 24 GB even at int4"),
                Rejected(option="us-east-1", constraint="residency", reason="eu only"))
    return Recommendation(spec_name="golden", catalog_version="test", candidates_searched=42,
                          plans=(plan, up1, up2), rejected=rejected)


def spec_for(name: str) -> Spec:
    return f.spec_for(PLANS[name](), name.replace("_", "-"))


def write(name: str, out: Path, plan: Plan | None = None, **kw: Any) -> list[Path]:
    plan = plan or PLANS[name]()
    return writer.write_plan_folder(spec_for(name), recommendation(plan), out, catalog=fixed_catalog(),
                                    isolate=False, **kw)


def files_of(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.relative_to(folder).as_posix().startswith(skip)}


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden_folder(tmp_path: Path, name: str) -> None:
    out = tmp_path / "plan"
    write(name, out)
    got = files_of(out, OWNED_BY_OTHERS)
    gold_dir = GOLDEN / name
    if UPDATE:
        shutil.rmtree(gold_dir, ignore_errors=True)
        for rel, data in got.items():
            (gold_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (gold_dir / rel).write_bytes(data)
    if not gold_dir.is_dir():
        pytest.fail(f"no golden files for {name}: run with MLPLAN_UPDATE_GOLDEN=1 and review the diff")
    want = files_of(gold_dir)
    assert sorted(got) == sorted(want), "file list differs from the golden folder"
    for rel in want:
        assert got[rel] == want[rel], f"{name}/{rel} differs from tests/golden (MLPLAN_UPDATE_GOLDEN=1 to update)"


def test_folder_layout_per_placement(tmp_path: Path) -> None:
    eks = write("cloud_llm_tensor_parallel", tmp_path / "eks")
    rel = {p.relative_to(tmp_path / "eks").as_posix() for p in eks}
    assert {"plan.yaml", "PLAN.md", "infra/Pulumi.yaml", "infra/__main__.py", "infra/requirements.txt",
            "infra/Pulumi.test.yaml", "k8s/primary.yaml",
            "serving/kuberay/rayservice.yaml"} <= rel
    main = (tmp_path / "eks/infra/__main__.py").read_text()
    assert len(main.splitlines()) <= 10 and "stacks.program" in main
    stack_cfg = yaml.safe_load((tmp_path / "eks/infra/Pulumi.test.yaml").read_text())
    assert stack_cfg["config"]["aws:region"] == "us-east-1"
    data = yaml.safe_load((tmp_path / "eks/plan.yaml").read_text())
    assert Plan.model_validate(data["plan"]) == PLANS["cloud_llm_tensor_parallel"]()
    assert len(data["runners_up"]) == 2 and data["rejected"][0]["constraint"] == "memory"
    assert set(data) == {"mlplan_version", "catalog_version", "spec", "spec_sha256", "plan", "runners_up",
                         "rejected"}

    fw = write("microcontroller", tmp_path / "fw")
    rel = {p.relative_to(tmp_path / "fw").as_posix() for p in fw}
    assert "firmware/FIRMWARE.md" in rel and "firmware/firmware.yaml" in rel
    assert not any(r.startswith(("infra/", "k8s/")) for r in rel)
    md = (tmp_path / "fw/firmware/FIRMWARE.md").read_text()
    assert "This placement has no IaC" in md and "STM32Cube.AI" in md
    fwy = yaml.safe_load((tmp_path / "fw/firmware/firmware.yaml").read_text())
    assert fwy["fit"]["flash_fits"] is True and fwy["model"]["weights_bytes"] == 38_604 and fwy["int8_required"]

    onprem = write("onprem_llm", tmp_path / "onprem")
    cfg_text = (tmp_path / "onprem/infra/Pulumi.test.yaml").read_text()
    assert "pulumi config set --secret mlplan:kubeconfig" in cfg_text
    assert "apiVersion" not in cfg_text and "kubeconfig:" not in cfg_text.split("\n", 1)[1]  # no secret in clear
    assert onprem


def test_plan_md_lists_decision_costs_runners_up_rejected_and_previewed_resources(tmp_path: Path) -> None:
    write("hybrid_onprem_cloud_burst", tmp_path / "h")
    md = (tmp_path / "h/PLAN.md").read_text()
    for text in ("**Decision:**", "## Predicted figures", "## Cost breakdown", "hours_per_month = 730.0",
                 "## Runner-up plans", "why it lost", "+$", "## Rejected option classes", "**memory** (1)",
                 "### Routing between the parts", "x-mlplan-data-class: public", "sized for the 40% of requests",
                 "| sensitive-on-prem | every request not marked public (untagged ones included) | confidential "
                 "| owned |", "| burst-cloud | only requests marked `x-mlplan-data-class: public` | public | shared |",
                 "aws:eks/nodeGroup:NodeGroup mlplan-test-burst-cloud-gpu (eu-central-1)",
                 "kubernetes:helm.sh/v3:Release", "RayService mlplan-test/"):
        assert text in md, text
    gcp = write("gcp_plan", tmp_path / "g")
    assert gcp
    md = (tmp_path / "g/PLAN.md").read_text()
    # the GKE stack is generated and previewed like the AWS one; the project is the user's to set
    assert "only the AWS stack is generated" not in md
    for text in ("gcp:container/cluster:Cluster mlplan-test-primary (europe-west4)",
                 "gcp:container/nodePool:NodePool mlplan-test-primary-accel (europe-west4)",
                 "gcp:storage/bucket:Bucket", "pulumi config set gcp:project"):
        assert text in md, text
    assert "# required before `pulumi up`: pulumi config set gcp:project" in \
        (tmp_path / "g/infra/Pulumi.test.yaml").read_text()
    endpoints = yaml.safe_load((tmp_path / "g/serving/endpoints.yaml").read_text())["endpoints"]
    assert endpoints == [{"internal": False, "namespace": "mlplan-test", "part": "primary", "port": 8000,
                          "scheme": "http", "service": "test-endpoint"}]
    reqs = (tmp_path / "g/infra/requirements.txt").read_text()
    assert all(line.startswith("#") for line in reqs.splitlines())  # nothing to pip-install, ever


def test_deterministic_and_no_machine_paths(tmp_path: Path) -> None:
    for name in ("hybrid_onprem_cloud_burst", "local_demo"):
        write(name, tmp_path / f"a-{name}")
        write(name, tmp_path / f"b-{name}")
        a, b = files_of(tmp_path / f"a-{name}"), files_of(tmp_path / f"b-{name}")
        assert a == b
        for rel, data in a.items():
            assert str(tmp_path).encode() not in data, rel
            assert b"/work/" not in data and b"/home/" not in data, rel


def test_spec_paths_are_stored_relative(tmp_path: Path) -> None:
    spec = Spec(name="x", model=ModelSpec(hf_config=str(tmp_path / "cfg" / "config.json")))
    writer.write_plan_folder(spec, recommendation(f.local_demo()), tmp_path / "out", isolate=False)
    data = yaml.safe_load((tmp_path / "out/plan.yaml").read_text())
    assert data["spec"]["model"]["hf_config"] == os.path.join("..", "cfg", "config.json")


def test_spec_change_gives_a_minimal_diff(tmp_path: Path) -> None:
    base = f.cloud_llm_tensor_parallel()
    write("cloud_llm_tensor_parallel", tmp_path / "old", plan=base)
    more = base.model_copy(update={"serving": base.serving.model_copy(update={"max_replicas": 6})})
    write("cloud_llm_tensor_parallel", tmp_path / "new", plan=more)
    a, b = files_of(tmp_path / "old"), files_of(tmp_path / "new")
    changed = sorted(k for k in a if a[k] != b.get(k))
    assert "infra/__main__.py" not in changed and "infra/Pulumi.yaml" not in changed
    old_lines = a["plan.yaml"].decode().splitlines()
    new_lines = b["plan.yaml"].decode().splitlines()
    assert len(old_lines) == len(new_lines)
    assert sum(x != y for x, y in zip(old_lines, new_lines, strict=True)) <= 4  # max_replicas in plan + runners-up

    text = diff_folders(tmp_path / "old", tmp_path / "new")
    assert "Monthly cost:** unchanged" in text and "`plan.yaml`" in text


def test_diff_summarises_placement_cost_and_resources(tmp_path: Path) -> None:
    write("cloud_llm_tensor_parallel", tmp_path / "old")
    write("hybrid_onprem_cloud_burst", tmp_path / "new")
    text = diff_folders(tmp_path / "old", tmp_path / "new")
    assert "| placement | cloud | hybrid |" in text
    assert "$40,179 -> $2,800 (-$37,379 (-93.0%))" in text
    assert "| instance | p5.48xlarge x 1 | l4-8gpu-server x 1 + g6.xlarge x 3 |" in text
    assert "`+ aws:eks/nodeGroup:NodeGroup mlplan-test-burst-cloud-gpu`" in text
    assert "`- aws:eks/nodeGroup:NodeGroup mlplan-test-primary-gpu`" in text
    assert resources_of(tmp_path / "old") and resources_of(tmp_path / "new")
    same = diff_folders(tmp_path / "old", tmp_path / "old")
    assert "Plan unchanged" in same and "**Files:** identical." in same and "Resources:** unchanged" in same


def test_diff_rejects_a_folder_that_is_not_a_plan(tmp_path: Path) -> None:
    (tmp_path / "nope").mkdir()
    write("local_demo", tmp_path / "ok")
    with pytest.raises(ArtifactError, match=r"no plan\.yaml"):
        diff_folders(tmp_path / "nope", tmp_path / "ok")


def test_rewrite_keeps_deploy_state(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    write("onprem_llm", out)
    (out / ".mlplan").mkdir()
    (out / ".mlplan/state.json").write_text('{"deployed": true}')
    (out / "infra/venv/bin").mkdir(parents=True)  # what `pulumi up` creates: regenerable, not the user's
    (out / "infra/venv/bin/python").write_text("")
    (out / "k8s/primary.yaml").write_text("# edited by hand\n")  # a generated file: mlplan's to replace
    write("edge_vision", out)
    assert (out / ".mlplan/state.json").read_text() == '{"deployed": true}'
    assert not (out / "infra/venv").exists() and "# edited by hand" not in (out / "k8s/primary.yaml").read_text()
    assert Plan.model_validate(yaml.safe_load((out / "plan.yaml").read_text())["plan"]).placement == "edge"
    assert [p.name for p in tmp_path.iterdir()] == ["plan"]


def test_refuses_a_plan_folder_holding_a_file_mlplan_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    write("onprem_llm", out)
    (out / "notes").mkdir()
    (out / "notes/mine.txt").write_text("the user's")
    before = files_of(out)
    with pytest.raises(InputError, match=r"holds notes/mine\.txt, which mlplan did not write"):
        write("edge_vision", out)
    assert files_of(out) == before
    (out / "notes/mine.txt").unlink()
    with pytest.raises(InputError, match=r"holds notes/, which mlplan did not write"):  # an empty folder too
        write("edge_vision", out)
    assert [p.name for p in tmp_path.iterdir()] == ["plan"]


def test_failure_mid_write_leaves_old_folder_and_no_temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "plan"
    write("onprem_llm", out)
    (out / ".mlplan").mkdir()
    (out / ".mlplan/state.json").write_text("{}")
    before = files_of(out)
    calls = {"n": 0}
    real = writer.write_text

    def flaky(path: Path, content: str) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real(path, content)

    monkeypatch.setattr(writer, "write_text", flaky)
    with pytest.raises(EnvironmentProblem, match="no space left"):  # the machine's problem, not bad input
        write("edge_vision", out)
    assert files_of(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["plan"]


def test_failure_during_the_swap_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "plan"
    write("onprem_llm", out)
    (out / ".mlplan").mkdir()
    (out / ".mlplan/state.json").write_text("{}")
    before = files_of(out)
    real_rename = os.rename

    def rename(src: Any, dst: Any) -> None:
        if Path(dst) == out.resolve() and writer.TMP_PREFIX in Path(src).name:
            raise OSError(5, "Input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)  # the os module the writer renames with
    with pytest.raises(InputError, match="Input/output"):  # one clear line, not a raw OSError
        write("edge_vision", out)
    assert files_of(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["plan"]


def test_refuses_to_replace_a_folder_that_is_not_a_plan(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src/main.py").write_text("print('mine')")
    with pytest.raises(InputError, match="non-empty folder that mlplan did not write"):
        write("local_demo", tmp_path / "src")
    with pytest.raises(InputError, match="out of range"):
        write("local_demo", tmp_path / "x", plan_index=7)
    assert (tmp_path / "src/main.py").read_text() == "print('mine')"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
