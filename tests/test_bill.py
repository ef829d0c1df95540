"""The full bill (issue 15): every billable resource the stack creates has a cost line, priced from the catalog.

Two kinds of checks:

- against the stacks: every resource the Pulumi program of every example (and of each example's best plan on each
  cloud, and of every factory plan) creates maps to a cost rule or an explicit free entry, and every billable one
  to a line of its part's bill; node volumes and system pools are sized as the stacks size them;
- against published prices written here as literals (the pricing pages, not the catalog): control planes, NAT,
  public IPs, keys, monitoring, egress at the average rate, NLB capacity units, Cloud NAT per VM, the AWS
  dedicated fee, edge connectivity only for fleets that connect.
"""

from __future__ import annotations

import math
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from planner.catalog import Catalog
from planner.errors import SpecError
from planner.optimizer import recommend
from planner.optimizer.bill import KINDS, Biller, CloudPart, Free, check_resources, part_kinds, resource_kinds
from planner.optimizer.nodes import SYSTEM_POOLS, node_disk_gib
from planner.plan import COST_GROUPS, Plan
from planner.specs import Spec, load_spec, spec_from_data
from tests import billcheck

ROOT = Path(__file__).resolve().parents[1]
HOURS = 730.0
GIB = 2**30

pytestmark = [pytest.mark.filterwarnings("ignore:.*has been deprecated in favor of:DeprecationWarning:pulumi_aws"),
              pytest.mark.filterwarnings("ignore:.*has been deprecated in favor of:DeprecationWarning:pulumi_gcp"),
              pytest.mark.filterwarnings("ignore:Using extra keyword arguments on `Field` is deprecated:"
                                         "pydantic.warnings.PydanticDeprecatedSince20")]


@cache
def checked() -> dict[str, tuple[Plan, Any, list[dict[str, Any]]]]:
    """Every case (examples, each example per cloud, factory plans) with its check and recorded resources."""
    out: dict[str, tuple[Plan, Any, list[dict[str, Any]]]] = {}
    for case in billcheck.cases(factories=True):
        result, resources = billcheck.check(case.plan)
        out[case.label] = (case.plan, result, resources)
    return out


def example(name: str, **update: Any) -> Spec:
    spec = load_spec(ROOT / "examples" / f"{name}.yaml")
    if update:
        data = spec.model_dump(mode="json", exclude_none=True)
        for section, fields in update.items():
            data[section] = {**data.get(section, {}), **fields}
        if spec.catalog_overlay:
            data["catalog_overlay"] = spec.catalog_overlay
        spec = spec_from_data(data)
    return spec


def top(spec: Spec, catalog: Catalog | None = None) -> Plan:
    return recommend(spec, catalog or Catalog.load(spec.catalog_overlay), top=1).plans[0]


def line(plan: Plan, kind: str) -> Any:
    found = [x for x in plan.cost.lines if x.kind == kind]
    assert len(found) == 1, (kind, [x.item for x in plan.cost.lines])
    return found[0]


# ------------------------------------------------------------------------------------- against the stacks


def test_every_stack_resource_maps_to_a_cost_rule_and_a_line() -> None:
    results = checked()
    assert any("[" in label for label in results), "no per-cloud example case was checked"
    assert {p.target for plan, _, _ in results.values() for p in plan.parts} >= {
        "aws-ec2", "aws-eks", "gcp-gke", "azure-aks", "kubeconfig", "edge-fleet", "local", "firmware"}
    problems = [f"{label}: {f.type} {f.name} (part {f.part}) "
                + ("has no cost rule: add one to planner.optimizer.bill.RESOURCE_RULES" if f.kind is None
                   else f"implies {f.kind}, which the part's bill lacks")
                for label, (_, result, _) in results.items() for f in (*result.unmapped, *result.missing)]
    assert not problems, "\n".join(problems)


def test_optimizer_bills_exactly_the_kinds_of_each_target() -> None:
    for label, (plan, result, _) in checked().items():
        if label.startswith("factory:"):
            continue
        assert not result.from_table, label
        for p in plan.parts:
            want = set(part_kinds(p.target, p.provider, tenancy=p.tenancy, data_class=p.data_class,
                                  training=plan.workload == "training"))
            assert result.billed[p.names.key] == want, (label, p.names.key)


def test_a_type_without_a_rule_is_reported_by_name() -> None:
    plan, _, resources = checked()["factory:cloud_llm_single_gpu"]
    rogue = {"type": "aws:rds/instance:Instance", "name": f"{plan.parts[0].names.resource_prefix}-db",
             "custom": True, "inputs": {}}
    result = check_resources(plan, [*resources, rogue])
    assert [(f.type, f.kind) for f in result.unmapped] == [("aws:rds/instance:Instance", None)]
    assert not result.ok


def test_a_billable_resource_the_bill_lacks_is_reported() -> None:
    plan, _, resources = checked()["factory:onprem_llm"]
    nat = {"type": "aws:ec2/natGateway:NatGateway", "name": f"{plan.parts[0].names.resource_prefix}-nat",
           "custom": True, "inputs": {}}
    interface = {"type": "aws:ec2/vpcEndpoint:VpcEndpoint", "name": f"{plan.parts[0].names.resource_prefix}-ecr",
                 "custom": True, "inputs": {"vpcEndpointType": "Interface"}}
    result = check_resources(plan, [*resources, nat, interface])
    assert {(f.type, f.kind) for f in result.missing} == {
        ("aws:ec2/natGateway:NatGateway", "nat_gateway"), ("aws:ec2/natGateway:NatGateway", "nat_gateway_data"),
        ("aws:ec2/vpcEndpoint:VpcEndpoint", "vpc_endpoint")}


def test_node_volumes_are_sized_as_the_stack_sizes_them() -> None:
    seen = 0
    for label, (plan, _, resources) in checked().items():
        for p in plan.parts:
            want = node_disk_gib(p.weights_bytes, gpus_per_replica=p.tensor_parallel * p.pipeline_parallel,
                                 gpus_per_node=p.gpus_per_node, has_device=p.device.resource is not None)
            mine = [r for r in resources if r["name"].startswith(p.names.resource_prefix)]
            for r in mine:
                if r["type"] == "aws:ec2/launchTemplate:LaunchTemplate" and r["name"].endswith("-system"):
                    assert p.system_pool is not None
                    got = r["inputs"]["blockDeviceMappings"][0]["ebs"]["volumeSize"]
                    assert got == p.system_pool.disk_gib, (label, r["name"], got)
                    continue
                if r["type"] == "aws:ec2/launchTemplate:LaunchTemplate":
                    got = r["inputs"]["blockDeviceMappings"][0]["ebs"]["volumeSize"]
                elif r["type"] == "aws:ec2/instance:Instance":
                    got = r["inputs"]["rootBlockDevice"]["volumeSize"]
                else:
                    continue
                assert got == want, (label, r["name"], got, want)
                seen += 1
    assert seen >= 8


def test_system_pools_are_the_stacks_system_pools() -> None:
    gke = aks = 0
    for label, (_, _, resources) in checked().items():
        for r in resources:
            inputs = r["inputs"]
            if r["type"] == "gcp:container/nodePool:NodePool" and r["name"].endswith("-system"):
                pool = SYSTEM_POOLS["gcp-gke"]
                assert inputs["nodeConfig"]["machineType"] == pool.machine, label
                assert inputs["nodeConfig"]["diskSizeGb"] == pool.disk_gib, label
                assert inputs["nodeCount"] * len(inputs["nodeLocations"]) >= pool.nodes, label
                assert (inputs["nodeCount"] - 1) * len(inputs["nodeLocations"]) < pool.nodes, label
                gke += 1
            elif r["type"] == "azure-native:containerservice:ManagedCluster":
                pool, profile = SYSTEM_POOLS["azure-aks"], inputs["agentPoolProfiles"][0]
                assert (profile["vmSize"], profile["count"], profile["osDiskSizeGB"]) == \
                    (pool.machine, pool.nodes, pool.disk_gib), label
                aks += 1
            elif r["type"] == "aws:eks/nodeGroup:NodeGroup" and resource_kinds(r, "aws-eks") == \
                    ("system_nodes", "block_volume"):  # the EKS system group, once the stack has one
                pool = SYSTEM_POOLS["aws-eks"]
                assert inputs["instanceTypes"] == [pool.machine], label
                assert inputs["scalingConfig"]["desiredSize"] == pool.nodes, label
    assert gke and aks


def test_resource_rules_read_the_resources() -> None:
    lb = {"type": "kubernetes:core/v1:Service", "name": "x", "inputs": {"spec": {"type": "LoadBalancer"}}}
    assert resource_kinds(lb, "aws-eks") == ("load_balancer", "load_balancer_data")
    assert isinstance(resource_kinds(lb, "kubeconfig"), Free)  # MetalLB on the site's network
    cluster_ip = {**lb, "inputs": {"spec": {"type": "ClusterIP"}}}
    assert isinstance(resource_kinds(cluster_ip, "aws-eks"), Free)
    group = {"type": "kubernetes:yaml/v2:ConfigGroup", "name": "x", "custom": False, "inputs": {"objs": [
        {"kind": "RayService", "spec": {"serveService": {"spec": {"type": "LoadBalancer"}}}},
        {"kind": "PersistentVolumeClaim", "spec": {}}, {"kind": "Deployment"}]}}
    assert set(resource_kinds(group, "gcp-gke") or ()) == {"load_balancer", "load_balancer_data", "model_cache"}
    assert resource_kinds(group, "kubeconfig") == ("onprem_storage",)
    assert resource_kinds({"type": "aws:ec2/instance:Instance", "name": "x", "inputs": {
        "tenancy": "dedicated", "monitoring": True}}, "aws-ec2") == (
        "instances", "block_volume", "detailed_monitoring", "dedicated_fee", "dedicated_uplift")
    assert resource_kinds({"type": "aws:eks/cluster:Cluster", "name": "x", "inputs": {}}, "aws-eks") == \
        ("k8s_control_plane",)
    assert resource_kinds({"type": "mlplan:aws:Network", "name": "x", "custom": False}, "aws-eks") == \
        Free("a component resource: its children are listed")
    assert resource_kinds({"type": "aws:sagemaker/endpoint:Endpoint", "name": "x"}, "aws-eks") is None
    for kinds in (part_kinds(t, prov, tenancy=ten, data_class=dc, training=tr)
                  for t, prov in (("aws-ec2", "aws"), ("aws-eks", "aws"), ("gcp-gke", "gcp"), ("azure-aks", "azure"),
                                  ("kubeconfig", "onprem"), ("edge-fleet", "edge"), ("firmware", "edge"))
                  for ten in ("shared", "dedicated") for dc in ("internal", "restricted", "air-gapped")
                  for tr in (False, True)):
        assert set(kinds) <= set(KINDS)


# ------------------------------------------------------------------------------- against published prices


def aws_row(instance: str, region: str) -> Any:
    return next(i for i in Catalog.load().instances if (i.instance, i.region) == (instance, region))


def small_spec(**constraints: Any) -> Spec:
    return spec_from_data({
        "name": "small", "model": {"preset": "llama-3-8b"},
        "workload": {"requests_per_s": 0.5, "input_tokens": 512, "output_tokens": 256},
        "constraints": {"ttft_s": 2.0, "tpot_s": 0.1, "placements": ["cloud"], "providers": ["aws"],
                        "allowed_regions": ["us-east-1"], **constraints}})


def test_a_small_load_gets_one_ec2_box_billed_in_full() -> None:
    plan = top(small_spec())
    part = plan.parts[0]
    assert part.target == "aws-ec2"
    assert "k8s_control_plane" not in {x.kind for x in plan.cost.lines}
    inst = aws_row(part.instance, "us-east-1")
    price = inst.on_demand_usd_per_h if part.purchase == "on-demand" else inst.spot_usd_per_h
    volume = math.ceil(part.weights_bytes * 1.1 / GIB) + 1  # the model volume: 1.1 x the weights + 1 GiB
    disk = 100 + 2 * volume  # one GPU, one pod: its model volume twice (volume + page cache copy) + 100 GiB
    requests = 0.5 * HOURS * 3600  # the average rate: 1,314,000 requests a month
    expected = (price * HOURS  # the instance
                + 0.045 * HOURS + 20 * 0.045  # NAT gateway hours + 20 GB of image pulls (us-east-1)
                + 0.005 * HOURS  # the NAT gateway's public IPv4
                + 1.00 + 0.0  # one KMS key; 10,000 requests inside the 20,000 free
                + 2.10  # detailed monitoring, 7 metrics x $0.30
                + requests * 256 * 4 / GIB * 0.09  # egress: 256 tokens x 4 B
                + disk * 0.08  # gp3 root volume
                + part.weights_bytes / GIB * 0.023)  # S3 Standard
    assert plan.cost.monthly_usd == pytest.approx(expected, abs=0.05)
    assert plan.monthly_cost_usd == plan.cost.monthly_usd


def test_a_cluster_of_the_same_box_costs_its_platform_more() -> None:
    spec = small_spec()
    cat = Catalog.load()
    from planner.models import resolve

    biller = Biller(spec, cat, resolve(spec.model))
    inst = aws_row("g6e.xlarge", "us-east-1")
    shape = dict(nodes=1, replicas=1, gpus_per_replica=1, dtype="fp8", purchase="on-demand",
                 price_per_h=inst.on_demand_usd_per_h, tenancy="shared", data_class="internal")
    ec2 = biller.cloud(CloudPart(inst, "aws-ec2", **shape))  # type: ignore[arg-type]
    eks = biller.cloud(CloudPart(inst, "aws-eks", **shape))  # type: ignore[arg-type]
    # EKS adds its control plane ($0.10/h), 2 x m7i.xlarge system nodes ($0.2016/h), an internet-facing NLB
    # ($0.0225/h) with 2 public IPv4 ($0.005/h each), 5 GB of control-plane logs ($0.50/GB); it drops detailed
    # monitoring ($2.10)
    floor = (0.10 + 2 * 0.2016 + 0.0225 + 2 * 0.005) * HOURS + 5 * 0.50 - 2.10
    assert eks.total - ec2.total >= floor


def test_traffic_lines_use_the_average_rate_not_the_peak() -> None:
    plan = top(example("chat-eu-pii"))  # 8 req/s on average, peak 1.5x
    requests = 8 * HOURS * 3600
    egress = line(plan, "egress_internet")
    assert f"{requests:,.0f} responses" in egress.item
    assert egress.usd_per_month == pytest.approx(round(requests * 256 * 4 / GIB * 0.09, 2), abs=0.01)
    nlcu = line(plan, "load_balancer_data")  # max(8/800 new flows, GB/h of 1,024 + 256 tokens x 4 B at 8 req/s)
    gb_h = 8 * 3600 * (1024 + 256) * 4 / 1e9
    assert nlcu.usd_per_month == pytest.approx(round(max(8 / 800, gb_h) * HOURS * 0.006, 2), abs=0.01)


def test_dedicated_tenancy_bills_the_aws_region_fee_and_says_what_it_assumed() -> None:
    plan = top(example("chat-eu-pii"))
    part = plan.parts[0]
    assert part.tenancy == "dedicated"
    assert line(plan, "dedicated_fee").usd_per_month == pytest.approx(2.0 * HOURS)  # $2 per region-hour
    uplift = line(plan, "dedicated_uplift")
    inst = aws_row(part.instance, part.region or "")
    assert uplift.usd_per_month == pytest.approx(round(0.10 * inst.on_demand_usd_per_h * HOURS * part.nodes, 2))
    assert "assumed" in uplift.item and "dedicated_tenancy_premium" in uplift.source
    assert not any("premium 10%" in x.item for x in plan.cost.lines)  # the old made-up line is gone
    # a dedicated-tenancy price in a catalog overlay replaces the assumption
    overlay = Catalog.load().with_overlay({"instances": [
        {**inst.model_dump(mode="json", exclude_none=True), "dedicated_usd_per_h": inst.on_demand_usd_per_h + 0.5}]})
    spec = example("chat-eu-pii")
    from planner.models import resolve

    row = next(i for i in overlay.instances if i.key == inst.key)
    bill = Biller(spec, overlay, resolve(spec.model)).cloud(CloudPart(
        row, part.target, part.nodes, part.replicas, 1, part.dtype, "on-demand", row.on_demand_usd_per_h,
        "dedicated", "restricted"))
    got = next(x for x in bill.lines if x.kind == "dedicated_uplift")
    assert got.usd == pytest.approx(0.5 * HOURS * part.nodes) and got.source == "catalog row dedicated_usd_per_h"


def test_air_gapped_fleets_pay_no_connectivity_and_connected_ones_do() -> None:
    gapped = top(example("vision-jetson-fleet"))
    assert "edge_connectivity" not in {x.kind for x in gapped.cost.lines}
    connected = top(example("vision-jetson-fleet", constraints={"privacy": "internal"}))
    assert line(connected, "edge_connectivity").usd_per_month == pytest.approx(5.0 * connected.replicas)
    priced = top(example("vision-jetson-fleet", constraints={"privacy": "internal"},
                         assumptions={"edge_connectivity_usd_per_device_month": 1.5}))
    assert line(priced, "edge_connectivity").usd_per_month == pytest.approx(1.5 * priced.replicas)


def test_assumptions_override_catalog_prices_by_item() -> None:
    plan = top(example("llama-70b-tight-ttft", constraints={"providers": ["aws"]},
                       assumptions={"service_prices": {"aws.k8s_control_plane": 0.60, "egress_internet": 0.0}}))
    assert line(plan, "k8s_control_plane").usd_per_month == pytest.approx(0.60 * HOURS)
    assert line(plan, "k8s_control_plane").source == "assumptions.service_prices.aws.k8s_control_plane"
    assert line(plan, "egress_internet").usd_per_month == 0.0
    assert plan.cost.assumptions["service_prices.egress_internet"] == 0.0
    with pytest.raises(SpecError) as err:
        top(example("llama-70b-tight-ttft", assumptions={"service_prices": {"egres_internet": 0.05}}))
    assert "egres_internet" in str(err.value) and "\n" not in str(err.value)


def test_a_catalog_overlay_reprices_a_platform_item() -> None:
    cat = Catalog.load().with_overlay({"services": [
        {"provider": "aws", "item": "k8s_control_plane", "usd": 0.6, "unit": "hour", "source": "extended support"}]})
    plan = recommend(example("llama-70b-tight-ttft", constraints={"providers": ["aws"]}), cat, top=1).plans[0]
    assert line(plan, "k8s_control_plane").usd_per_month == pytest.approx(0.6 * HOURS)
    assert line(plan, "k8s_control_plane").source == "extended support"


def test_spot_plans_state_the_interruption_risk() -> None:
    plans = recommend(small_spec(allow_spot=True), top=20).plans
    spot = next(p for p in plans if p.purchase == "spot")
    inst = aws_row(spot.instance, spot.region or "")
    assert any(inst.spot_risk() in n for n in spot.notes)
    assert not any("spot" in n for p in plans if p.purchase != "spot" for n in p.notes)


def test_gcp_cloud_nat_is_billed_per_vm_up_to_its_cap() -> None:
    spec = small_spec(providers=["gcp"], allowed_regions=None)
    from planner.models import resolve

    biller = Biller(spec, Catalog.load(), resolve(spec.model))
    inst = next(i for i in Catalog.load().instances if i.instance == "g2-standard-8")
    shape = dict(replicas=1, gpus_per_replica=1, dtype="fp8", purchase="on-demand",
                 price_per_h=inst.on_demand_usd_per_h, tenancy="shared", data_class="internal")
    for nodes, rate in ((2, 0.0014 * (2 + 3)), (40, 0.044)):  # + 3 system nodes; capped at 32 VMs
        bill = biller.cloud(CloudPart(inst, "gcp-gke", nodes=nodes, **shape))  # type: ignore[arg-type]
        nat = next(x for x in bill.lines if x.kind == "nat_gateway")
        assert nat.usd == pytest.approx(rate * HOURS)


def test_a_training_run_bills_the_cluster_for_the_run_hours_and_serves_nothing() -> None:
    plan = top(example("finetune-zero"))
    assert plan.training is not None
    hours = plan.training.time_s / 3600
    kinds = {x.kind for x in plan.cost.lines}
    assert not kinds & {"egress_internet", "load_balancer", "model_cache"}
    assert line(plan, "k8s_control_plane").usd_per_month == pytest.approx(0.10 * hours, abs=0.01)
    assert line(plan, "instances").usd_per_month == pytest.approx(
        aws_row(plan.instance, plan.region or "").on_demand_usd_per_h * hours * plan.nodes, rel=1e-3)


def test_plan_md_groups_the_bill_with_subtotals() -> None:
    from stacks.planmd import cost_table

    plan = top(example("hybrid-clinic"))
    table = cost_table(plan)
    assert table[0] == "## Cost breakdown"
    subtotals = {r.split("|")[2].strip(" *").removesuffix(" subtotal"): float(r.split("|")[3].strip(" *")
                                                                          .replace(",", ""))
                 for r in table if "subtotal" in r}
    assert list(subtotals) == [g for g in COST_GROUPS if any(x.group == g for x in plan.cost.lines)]
    assert sum(subtotals.values()) == pytest.approx(plan.cost.monthly_usd, abs=0.02)
    assert f"**{plan.cost.monthly_usd:,.2f}**" in table[-6] or any(
        f"**{plan.cost.monthly_usd:,.2f}**" in r for r in table)
    for g, lines, sub in plan.cost.groups():
        assert sub == pytest.approx(sum(x.usd_per_month for x in lines), abs=0.01)
        assert all(x.group == g for x in lines)
    assert any(r.startswith("Not in the bill:") for r in table)


def test_recommend_prints_the_grouped_total() -> None:
    spec = str(ROOT / "examples" / "llama-70b-tight-ttft.yaml")
    cmd = [sys.executable, "-c", "from mlplan.cli import main; main()", "recommend", spec]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    md = subprocess.run([*cmd, "--markdown"], capture_output=True, text=True, check=True, timeout=120).stdout
    plan = top(example("llama-70b-tight-ttft"))
    groups = " + ".join(f"{g} ${sub:,.0f}" for g, _, sub in plan.cost.groups())
    assert f"Cost: ${plan.cost.monthly_usd:,.0f}/month = {groups}" in " ".join(text.split())
    assert f"Cost breakdown (chosen plan): ${plan.cost.monthly_usd:,.0f}/month = {groups}" in md
    for g, _, sub in plan.cost.groups():
        assert f"- **{g}** ${sub:,.0f}" in md


def test_every_line_has_a_group_and_a_source() -> None:
    for label, (plan, _, _) in checked().items():
        if label.startswith("factory:"):
            continue
        for x in plan.cost.lines:
            assert x.group == KINDS[x.kind or ""][0], (label, x)
            assert x.source and x.part in {p.names.key for p in plan.parts}, (label, x)
            assert math.isfinite(x.usd_per_month) and x.usd_per_month >= 0
        assert plan.cost.monthly_usd == pytest.approx(sum(x.usd_per_month for x in plan.cost.lines), abs=0.05)


def test_non_llm_egress_counts_the_output_tensors_and_an_override_replaces_them() -> None:
    spec = spec_from_data({"name": "det", "model": {"preset": "yolov8n", "artifact": "s3://m/yolov8n.onnx"},
                           "workload": {"requests_per_s": 2}, "constraints": {
                               "latency_s": 0.1, "placements": ["cloud"], "providers": ["aws"]}})
    plan = top(spec)
    egress = line(plan, "egress_internet")
    per = 84 * 8400 * 4  # yolov8n output0: (84, 8400) fp32
    assert f"output tensors {per:,} B/request" in egress.item
    requests = 2 * HOURS * 3600
    assert egress.usd_per_month == pytest.approx(round(requests * per / GIB * 0.09, 2), abs=0.01)
    boxes = top(spec.model_copy(update={"assumptions": spec.assumptions.model_copy(
        update={"response_bytes_per_request": 2000.0})}))
    assert line(boxes, "egress_internet").usd_per_month == pytest.approx(
        round(requests * 2000 / GIB * 0.09, 2), abs=0.01)
