"""Regression tests for the trust issue: each numbered failure found by attacking the project, now refused.

1. ``--out`` on a folder mlplan did not write deleted a project; 2. hybrid routing leaked untagged private data
and a restricted spec with a local split planned a shared cloud; 4. two specs serving one model shared names;
7. input that should be refused; 8. the writer's smaller faults (SIGTERM leftovers, folder mode).
(3, every offered plan can be written: tests/test_plan_roundtrip.py; 5 and the rest of 4, the deploy side:
tests/deploy/; 6, the residency guard: tests/security/test_stack_guards.py.)
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.catalog import Catalog
from planner.errors import CatalogError, SpecError
from planner.optimizer import recommend
from planner.specs import load_spec, spec_from_data

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def mlplan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from mlplan.cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ 1. data loss


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project: source, a git repository, the spec and its catalog overlay."""
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "src/main.py").write_text("print('mine')\n")
    (root / ".git").mkdir()
    (root / ".git/HEAD").write_text("ref: refs/heads/main\n")
    (root / "spec.yaml").write_text((EXAMPLES / "local-demo.yaml").read_text())
    (root / "local-demo.catalog.yaml").write_text((EXAMPLES / "local-demo.catalog.yaml").read_text())
    return root


@pytest.mark.parametrize(("out", "why"), [
    (".", "is the current directory"),
    ("src", "is a non-empty folder that mlplan did not write"),
    ("..", "holds the current directory"),
])
def test_out_never_replaces_a_folder_mlplan_did_not_write(project: Path, out: str, why: str) -> None:
    before = tree(project.parent)
    done = mlplan("plan", "spec.yaml", "--out", out, "--no-preview", cwd=project)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and why in lines[0] and "nothing was changed" in lines[0]
    assert tree(project.parent) == before


def test_out_refuses_a_repository_root_and_the_spec_folder_from_elsewhere(project: Path, tmp_path: Path) -> None:
    before = tree(project)
    done = mlplan("plan", str(project / "spec.yaml"), "--out", str(project), "--no-preview", cwd=tmp_path)
    assert done.returncode == 2 and "holds spec.yaml, an input of this plan" in done.stderr
    (project / "spec.yaml").rename(tmp_path / "spec.yaml")
    (project / "local-demo.catalog.yaml").rename(tmp_path / "local-demo.catalog.yaml")
    done = mlplan("plan", str(tmp_path / "spec.yaml"), "--out", str(project), "--no-preview", cwd=tmp_path)
    assert done.returncode == 2 and "is a repository root" in done.stderr
    assert {k: v for k, v in tree(project).items() if not k.endswith(".yaml")} == \
        {k: v for k, v in before.items() if not k.endswith(".yaml")}


def test_out_replaces_its_own_folder_and_writes_it_with_the_users_mode(project: Path) -> None:
    done = mlplan("plan", "spec.yaml", "--out", "plans/demo", "--no-preview", cwd=project)
    assert done.returncode == 0, done.stderr
    folder = project / "plans/demo"
    mask = os.umask(0)
    os.umask(mask)
    assert (folder.stat().st_mode & 0o777) == (0o777 & ~mask)  # not mkdtemp's 0700
    again = mlplan("plan", "spec.yaml", "--out", "plans/demo", "--no-preview", cwd=project)
    assert again.returncode == 0, again.stderr
    assert (project / "src/main.py").read_text() == "print('mine')\n"


# --------------------------------------------------------------------------------------------- 2. privacy


def _spec(name: str = "t", **over: Any) -> Any:
    data: dict[str, Any] = {"name": name, "model": {"preset": "llama-3-8b"},
                            "workload": {"requests_per_s": 4, "input_tokens": 512, "output_tokens": 128},
                            "constraints": {"privacy": "restricted"}}
    for section, values in over.items():
        data[section] = {**data.get(section, {}), **values}
    return spec_from_data(data)


def test_a_restricted_local_split_never_plans_a_shared_cloud() -> None:
    """The first round sent 70% of a restricted spec's traffic to a shared g4dn in us-east-1."""
    spec = _spec(workload={"local_traffic_fraction": 0.3})
    rec = recommend(spec, top=50)
    for plan in rec.plans:
        assert all(p.placement != "cloud" for p in plan.parts), plan.id  # no allowed_regions, no dedicated tenancy


def test_a_restricted_local_split_with_a_dedicated_cloud_checks_the_cloud_side_fully() -> None:
    spec = _spec(workload={"local_traffic_fraction": 0.3},
                 constraints={"allowed_regions": ["eu"], "dedicated_tenancy": True})
    cat = Catalog.load()
    hybrids = [p for p in recommend(spec, cat, top=50).plans if p.placement == "hybrid"]
    for plan in hybrids:
        cloud = next(p for p in plan.parts if p.placement == "cloud")
        assert cloud.routing == "not-local" and cloud.data_class == "restricted" and cloud.tenancy == "dedicated"
        assert cat.region(cloud.provider, cloud.region or "").geography == "eu"


def test_hybrid_clinic_routes_as_an_allow_list_and_sizes_the_private_side_for_what_it_gets() -> None:
    spec = load_spec(EXAMPLES / "hybrid-clinic.yaml")
    plan = recommend(spec, top=3).plans[0]
    assert plan.placement == "hybrid"
    safe = next(p for p in plan.parts if p.placement == "on-prem")
    public = next(p for p in plan.parts if p.placement == "cloud")
    assert safe.routing == "not-marked-public" and safe.data_class == "restricted"
    assert public.routing == "marked-public" and public.data_class == "public" and public.tenancy == "shared"
    assert safe.traffic_fraction == pytest.approx(spec.workload.sensitive_traffic_fraction)  # type: ignore[union-attr]
    assert plan.security.dedicated_tenancy is False  # the cloud side is shared: the plan must not claim otherwise

    from stacks.manifests import default_contexts, render

    objs = render(plan, default_contexts(plan))[safe.names.key]
    envoy = yaml.safe_load(next(o for o in objs if o["kind"] == "ConfigMap")["data"]["envoy.yaml"])
    routes = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"]["virtual_hosts"][0]["routes"]
    assert [r["route"]["cluster"] for r in routes] == ["cloud", "local"]
    assert routes[0]["match"]["headers"] == [{"name": "x-mlplan-data-class", "string_match": {"exact": "public"}}]
    assert "headers" not in routes[1]["match"]  # everything else, untagged requests included, stays on-prem


# ---------------------------------------------------------------------------------------------- 4. names


def test_two_specs_serving_one_model_share_no_name() -> None:
    a = recommend(_spec(name="team-a", constraints={"privacy": "internal"}), top=1).plans[0]
    b = recommend(_spec(name="team-b", constraints={"privacy": "internal"}), top=1).plans[0]
    assert a.model.name == b.model.name and a.parts[0].instance == b.parts[0].instance
    na, nb = a.parts[0].names, b.parts[0].names
    for field in ("namespace", "app", "resource_prefix", "bucket", "role"):
        assert getattr(na, field) != getattr(nb, field), field
    assert a.names.stack != b.names.stack and a.names.project != b.names.project


def test_long_spec_names_that_share_a_head_share_no_gcp_resource() -> None:
    """GKE names are cut to 30 characters; two parts whose prefixes differ only past the cut still differ."""
    from planner.names import GCP_PREFIX_LEN, gcp_prefix

    a, b = "mlplan-llama-70b-tight-ttft-primary", "mlplan-llama-70b-tight-ttft-prod-primary"
    assert gcp_prefix(a) != gcp_prefix(b)
    assert all(len(gcp_prefix(x)) <= GCP_PREFIX_LEN for x in (a, b))
    assert gcp_prefix("mlplan-short-primary") == "mlplan-short-primary"  # short ones keep their name


# -------------------------------------------------------------------------------------------- 7. input


@pytest.mark.parametrize(("section", "values", "message"), [
    ("workload", {"requests_per_s": 1e300}, "workload.requests_per_s"),
    ("workload", {"requests_per_s": True}, "must be a number, not true/false"),
    ("workload", {"requests_per_s": "8"}, "not a string"),
    ("workload", {"concurrency": 4}, "unknown field 'workload.concurrency'"),
    ("workload", {"hours_per_month": 100}, "unknown field 'workload.hours_per_month'"),
    ("constraints", {"dedicated_tenancy": 1}, "constraints.dedicated_tenancy"),
    ("constraints", {"allowed_regions": ["eu<img src=x>"]}, "constraints.allowed_regions"),
])
def test_input_that_should_be_refused_is(section: str, values: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace("[", r"\[")):
        _spec(**{section: values})


def test_a_load_beyond_any_cluster_is_refused_not_planned_with_billions_of_replicas() -> None:
    from planner.errors import InfeasibleError

    with pytest.raises(SpecError, match="less than or equal to 1000000"):  # 1e12 req/s: over the spec's bound
        _spec(workload={"requests_per_s": 1e12})
    big = _spec(workload={"requests_per_s": 999_999}, constraints={"privacy": "internal"})
    big = big.model_copy(update={"model": big.model.model_copy(update={"preset": "llama-3.1-405b"})})
    with pytest.raises(InfeasibleError, match="over the 5,000-node cluster limit"):
        recommend(big)


@pytest.mark.parametrize(("constraints", "message"), [
    ({"users_location": "eu-wset"}, r"unknown network zone 'eu-wset' \(did you mean eu-west"),
    ({"allowed_regions": ["europe"]}, r"unknown region or geography 'europe'"),
])
def test_unknown_locations_are_errors_with_did_you_mean(constraints: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        recommend(_spec(constraints={"privacy": "internal", **constraints}))


def test_catalog_names_are_identifiers_and_free_text_is_inert_markdown(tmp_path: Path) -> None:
    overlay = tmp_path / "o.yaml"
    overlay.write_text(yaml.safe_dump({"onprem_servers": [{
        "sku": "rack-a", "site": "[/]", "accelerator": "l4", "accelerator_count": 1, "capex_usd": 1,
        "power_w": 100, "available": 1, "source": "x"}]}))
    with pytest.raises(CatalogError, match="site"):
        Catalog.load(overlay)
    from planner.markup import md

    hostile = "![pixel](https://evil.example/p.png) <img src=x> @everyone\n# heading | cell"
    safe = md(hostile)
    assert "\n" not in safe and "<img" not in safe and "@everyone" not in safe and "](" not in safe
    assert safe.startswith(r"\!\[pixel\]")


# ---------------------------------------------------------------------------------- 8. the writer's faults


def _slow_write(out: str, started: Any) -> None:  # runs in a forked child
    from stacks import writer
    from tests import factories
    from tests.stacks.test_writer import fixed_catalog, recommendation

    real = writer.write_text

    def slow(path: Path, content: str) -> None:
        started.set()
        time.sleep(0.2)
        real(path, content)

    writer.write_text = slow  # type: ignore[assignment]
    plan = factories.local_demo()
    writer.write_plan_folder(factories.spec_for(plan), recommendation(plan), out, catalog=fixed_catalog(),
                             preview=False)


def test_sigterm_while_writing_leaves_no_temporary_folder(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    started = ctx.Event()
    proc = ctx.Process(target=_slow_write, args=(str(tmp_path / "plan"), started))
    proc.start()
    assert started.wait(60)
    os.kill(proc.pid or 0, signal.SIGTERM)
    proc.join(60)
    assert proc.exitcode == 128 + signal.SIGTERM  # the handler turned SIGTERM into a clean exit
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no .mlplan-tmp-* and no half-written folder
