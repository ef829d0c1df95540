"""The Pulumi program on plans that land on GCP and Azure (issue 17), run under Pulumi's own mocks: the plan's
machine type, accelerators and node count on the GKE / AKS pools; every resource inside the plan's residency set;
encryption, private networking and an internal load balancer where the data class asks; nothing public; no grant
broader than read on the weights; and the shared manifests fitted to the cluster the stack creates (the same
pod labels, tolerations and load-balancer annotations the written ``k8s/*.yaml`` carry)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from planner.plan import Plan
from stacks.program import GKE_ZONES, aks_args, gke_args
from tests.fuzz_strategies import valid_spec_data
from tests.security import audit
from tests.stacks.conftest import PLANS

Res = dict[str, Any]
PRIVATE = ("confidential", "restricted")


def example_plans() -> dict[str, Plan]:
    from planner.catalog import Catalog
    from planner.optimizer import recommend
    from planner.specs import load_spec

    out = {}
    for path in audit.example_specs():
        if path.stem in ("gke-a3-eu", "aks-confidential-us", "llama-70b-tight-ttft"):
            spec = load_spec(path)
            for i, plan in enumerate(recommend(spec, Catalog.load(), top=3).plans):
                if any(p.target in ("gcp-gke", "azure-aks") for p in plan.parts):
                    out[f"{path.stem}-{i}"] = plan
    return out


def hybrid_gcp() -> Plan:
    """The hybrid factory plan with its public side on GKE (g2-standard-8, europe-west4) instead of EKS."""
    from tests import factories as f

    base = PLANS["hybrid_onprem_cloud_burst"]()
    onprem, burst = base.parts
    burst = burst.model_copy(update={"provider": "gcp", "region": "europe-west4", "geography": "eu",
                                     "instance": "g2-standard-8"})
    return f._plan(onprem, placement="hybrid", parts=(onprem, burst), monthly_cost_usd=base.monthly_cost_usd,
                   cost=base.cost, id="hybrid-onprem-datacenter+gcp-europe-west4-l4-int8", security=base.security)


CASES: dict[str, Plan] = {**example_plans(), "factory-gcp": PLANS["gcp_plan"](),
                          "factory-azure-spot": PLANS["azure_spot_plan"](), "factory-hybrid-gcp": hybrid_gcp()}


def config_objs(res: list[Res]) -> list[dict[str, Any]]:
    return [o for r in res if r["type"] == "kubernetes:yaml/v2:ConfigGroup" for o in r["inputs"]["objs"]]


def check_cloud_plan(plan: Plan, res: list[Res]) -> None:
    """Every property of the module docstring for one plan's recorded resources."""
    from stacks import manifests
    from stacks.gcp import gke_accelerator_type

    for part in plan.parts:
        from planner.names import gcp_prefix

        prefix = gcp_prefix(part.names.resource_prefix) if part.target == "gcp-gke" else part.names.resource_prefix
        mine = [r for r in res if r["name"].startswith(prefix)]
        if part.target == "gcp-gke":
            pool = next(r["inputs"] for r in mine if r["type"] == "gcp:container/nodePool:NodePool"
                        and r["name"].endswith("-accel"))
            cfg = pool["nodeConfig"]
            assert cfg["machineType"] == part.instance
            (acc,) = cfg["guestAccelerators"]
            assert (acc["type"], acc["count"]) == (gke_accelerator_type(part.accelerator), part.gpus_per_node)
            assert pool["initialNodeCount"] == part.nodes
            assert all(z.startswith(f"{part.region}-") for z in pool["nodeLocations"])
            cluster = next(r["inputs"] for r in mine if r["type"] == "gcp:container/cluster:Cluster")
            assert cluster["privateClusterConfig"]["enablePrivateEndpoint"] is plan.security.private_networking
            assert ("databaseEncryption" in cluster) is (part.data_class in PRIVATE)
            bucket = next(r["inputs"] for r in mine if r["type"] == "gcp:storage/bucket:Bucket")
            assert ("encryption" in bucket) is (part.data_class in PRIVATE)
            assert bucket["name"] == part.names.bucket
        if part.target == "azure-aks":
            pool = next(r["inputs"] for r in mine if r["type"] == "azure-native:containerservice:AgentPool")
            assert (pool["vmSize"], pool["count"]) == (part.instance, part.nodes)
            cluster = next(r["inputs"] for r in mine if r["type"] == "azure-native:containerservice:ManagedCluster")
            assert cluster["apiServerAccessProfile"]["enablePrivateCluster"] is plan.security.private_networking
            account = next(r["inputs"] for r in mine if r["type"] == "azure-native:storage:StorageAccount")
            assert account["accountName"] == part.names.storage_account
            assert ("encryption" in account) is (part.data_class in PRIVATE)
    assert audit.residency_violations(res, plan) == []
    objs = config_objs(res)
    assert audit.public_exposure(res, objs, plan) == []
    assert audit.iam_wildcards(res) == []
    # the manifests the stack applies are the written ones, fitted to the live cluster the same way
    def key(o: dict[str, Any]) -> tuple[str, str, str]:  # the parts of a hybrid plan share names, not clusters
        return o["kind"], o["metadata"]["name"], (o["metadata"].get("labels") or {}).get("mlplan.dev/part", "")

    written = {key(o): o for objs_ in manifests.render(plan, manifests.default_contexts(plan)).values()
               for o in objs_}
    for o in objs:
        w = written[key(o)]
        if o["kind"] == "ServiceAccount":
            assert set(o["metadata"].get("annotations") or {}) == set(w["metadata"].get("annotations") or {})
        elif o["kind"] != "ResourceQuota":
            assert _without_identity(o) == _without_identity(w), o["metadata"]["name"]


def _without_identity(o: Any) -> Any:
    """An object with its workload-identity values (known only to the live cloud) blanked."""
    import json

    text = json.dumps(o, sort_keys=True, default=str)
    return json.loads(text.replace("PROJECT_ID", "mock-project"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_gcp_and_azure_plans_build_their_clusters(name: str) -> None:
    from tests.stacks import scheduling

    plan = CASES[name]
    res = audit.mock_run(plan)
    check_cloud_plan(plan, res)
    assert scheduling.check_plan(plan, res).problems() == []


def test_a_hybrid_plan_gets_its_cloud_sides_stack() -> None:
    plan = CASES["factory-hybrid-gcp"]
    res = audit.mock_run(plan)
    assert any(r["type"] == "gcp:container/cluster:Cluster" for r in res)
    objs = config_objs(res)
    lb = next(o for o in objs if o["kind"] == "RayService" and o["spec"].get("serveService"))["spec"]["serveService"]
    assert lb["metadata"]["annotations"] == {"networking.gke.io/load-balancer-type": "Internal"}  # the router's peer
    assert any(o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-router") for o in objs)


def test_the_examples_land_on_gcp_a3_and_azure() -> None:
    assert CASES["gke-a3-eu-0"].parts[0].instance.startswith("a3-")
    assert CASES["gke-a3-eu-0"].parts[0].target == "gcp-gke"
    assert CASES["aks-confidential-us-0"].parts[0].target == "azure-aks"


def test_plan_fields_map_onto_the_cloud_args() -> None:
    from stacks import layout

    gcp = CASES["gke-a3-eu-0"]
    info = layout.parts(gcp)[0]
    args = gke_args(gcp, info, "acme", None)
    assert (args.region, args.zones) == (info.part.region, GKE_ZONES[info.part.region or ""])
    assert (args.machine_type, args.accelerator_count, args.nodes) == (info.part.instance, info.part.gpus_per_node,
                                                                       info.part.nodes)
    assert args.cmek and args.private and args.internal_lb  # confidential data
    assert args.serving_service_account == info.app and args.serving_namespace == info.namespace
    azure = CASES["factory-azure-spot"]
    info = layout.parts(azure)[0]
    a = aks_args(azure, info)
    assert (a.vm_size, a.gpus_per_node, a.spot, a.cmk, a.internal_lb) == (info.part.instance, 1, True, False, False)
    assert a.storage_account == info.part.names.storage_account and 3 <= len(a.storage_account) <= 24
    assert a.storage_account.isalnum() and a.storage_account.islower()


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                HealthCheck.function_scoped_fixture])
@given(data=valid_spec_data())
def test_random_gcp_and_azure_plans(data: dict[str, Any]) -> None:
    from planner.catalog import Catalog
    from planner.errors import ArtifactError, InfeasibleError, SpecError
    from planner.optimizer import recommend
    from planner.specs import spec_from_data

    constraints = dict(data.get("constraints") or {})
    constraints["providers"] = ["gcp", "azure"]
    constraints["placements"] = ["cloud"]
    try:
        spec = spec_from_data({**data, "constraints": constraints}, source="spec")
        rec = recommend(spec, Catalog.load(spec.catalog_overlay), top=1)
    except (InfeasibleError, SpecError):
        return
    plan = rec.plans[0]
    try:
        res = audit.mock_run(plan)
    except ArtifactError as e:  # refused with its reason (e.g. sole-tenant GKE pools are not emitted)
        assert "To fix" in str(e)
        return
    check_cloud_plan(plan, res)
