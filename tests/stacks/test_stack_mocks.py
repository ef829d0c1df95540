"""The Pulumi program for every placement, run under Pulumi's own mocks: resources and key properties."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from planner.catalog import Catalog
from planner.errors import ArtifactError
from planner.guard import check_plan
from planner.privacy import region_allowed
from tests import factories as f
from tests.stacks.conftest import PLANS

CATALOG = Catalog.load()

Res = dict[str, Any]


def of_type(resources: list[Res], typ: str) -> list[Res]:
    return [r for r in resources if r["type"] == typ]


def one(resources: list[Res], typ: str) -> Res:
    found = of_type(resources, typ)
    assert len(found) == 1, f"expected one {typ}, got {[r['name'] for r in found]}"
    return found[0]


def named(resources: list[Res], typ: str, suffix: str) -> Res:
    found = [r for r in of_type(resources, typ) if r["name"].endswith(suffix)]
    assert len(found) == 1, f"expected one {typ} named *{suffix}, got {[r['name'] for r in found]}"
    return found[0]


def config_group_objs(resources: list[Res]) -> list[dict[str, Any]]:
    return [o for r in of_type(resources, "kubernetes:yaml/v2:ConfigGroup") for o in r["inputs"]["objs"]]


def test_eks_plan_creates_cluster_gpu_node_group_bucket_and_irsa(mock_runs: dict[str, list[Res]]) -> None:
    plan = f.cloud_llm_tensor_parallel()
    res = mock_runs["cloud_llm_tensor_parallel"]
    ng = named(res, "aws:eks/nodeGroup:NodeGroup", "-gpu")["inputs"]
    assert ng["instanceTypes"] == ["p5.48xlarge"]
    assert ng["scalingConfig"]["desiredSize"] == plan.nodes == 1
    assert ng["amiType"] in ("AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA")
    assert ng["capacityType"] == "ON_DEMAND"
    assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"} in ng["taints"]
    assert ng["labels"]["mlplan.dev/pool"] == "accelerators" and ng["labels"]["mlplan.dev/accelerator"] == "h100-sxm"
    # the system node group: untainted, for CoreDNS, the operators and the Ray head
    system = named(res, "aws:eks/nodeGroup:NodeGroup", "-system")["inputs"]
    assert not system.get("taints") and system["labels"] == {"mlplan.dev/pool": "system"}
    assert system["scalingConfig"]["desiredSize"] >= 2
    lt = named(res, "aws:ec2/launchTemplate:LaunchTemplate", "-gpu")["inputs"]
    assert lt["metadataOptions"]["httpTokens"] == "required"
    assert lt["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"
    cluster = one(res, "aws:eks/cluster:Cluster")["inputs"]
    assert cluster["encryptionConfig"]["resources"] == ["secrets"]
    # the model bucket: KMS encryption, public access blocked, versioning on
    sse = one(res, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse["inputs"]["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    pab = one(res, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")["inputs"]
    assert all(pab[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                         "restrictPublicBuckets"))
    assert one(res, "aws:s3/bucketVersioning:BucketVersioning")["inputs"]["versioningConfiguration"] == \
        {"status": "Enabled"}
    # KubeRay operator from its Helm chart (the plan is served by a RayService)
    charts = {r["inputs"]["chart"]: r["inputs"] for r in of_type(res, "kubernetes:helm.sh/v3:Release")}
    assert charts["kuberay-operator"]["repositoryOpts"]["repo"] == "https://ray-project.github.io/kuberay-helm/"
    assert "nvidia-device-plugin" in charts
    # the AWS Load Balancer Controller runs the endpoint's NLB, as its own IRSA role, on the system pool
    lbc = charts["aws-load-balancer-controller"]
    assert lbc["repositoryOpts"]["repo"] == "https://aws.github.io/eks-charts" and lbc["version"]
    assert lbc["values"]["nodeSelector"] == {"mlplan.dev/pool": "system"}
    # IRSA: the serving role trusts only the serving service account, and reads only the model bucket
    roles = {r["name"]: r["inputs"] for r in of_type(res, "aws:iam/role:Role")}
    serving = roles[f"{plan.parts[0].names.resource_prefix}-serving"]
    trust = json.loads(serving["assumeRolePolicy"])["Statement"][0]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    sub = next(v for k, v in trust["Condition"]["StringEquals"].items() if k.endswith(":sub"))
    assert sub == "system:serviceaccount:mlplan-test:test"  # the spec's names, not the model's
    policy = json.loads(named(res, "aws:iam/rolePolicy:RolePolicy", "-serving-read-models")["inputs"]["policy"])
    bucket = one(res, "aws:s3/bucket:Bucket")["inputs"]["bucket"]
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt"}
    assert all(bucket in r or r.startswith("arn:aws:kms") for s in policy["Statement"] for r in s["Resource"])


def test_gpu_limits_equal_tp_degree_per_pod(mock_runs: dict[str, list[Res]]) -> None:
    plan = PLANS["triton_tensor_parallel"]()
    objs = config_group_objs(mock_runs["triton_tensor_parallel"])
    dep = next(o for o in objs if o["kind"] == "Deployment")
    limits = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == str(plan.tensor_parallel * plan.pipeline_parallel) == "4"
    assert dep["spec"]["replicas"] == plan.replicas
    assert dep["spec"]["template"]["spec"]["nodeSelector"]["node.kubernetes.io/instance-type"] == "p5.48xlarge"
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--tp_size") + 1] == "4" and args[args.index("--pp_size") + 1] == "1"


def test_single_gpu_plan_is_one_private_ec2_instance(mock_runs: dict[str, list[Res]]) -> None:
    res = mock_runs["ec2_single_gpu"]
    assert not of_type(res, "aws:eks/cluster:Cluster")
    inst = one(res, "aws:ec2/instance:Instance")["inputs"]
    assert inst["instanceType"] == "g6e.xlarge"
    assert inst["metadataOptions"]["httpTokens"] == "required"
    assert inst["rootBlockDevice"]["encrypted"] is True
    assert inst["associatePublicIpAddress"] is False
    assert "keyName" not in inst  # SSM, no SSH key
    assert inst["tenancy"] == "default"
    assert "vllm/vllm-openai" in inst["userData"] and "--tensor-parallel-size 1" in inst["userData"]
    attached = {r["inputs"]["policyArn"] for r in of_type(res, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    assert "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" in attached


def test_dedicated_tenancy_for_restricted_plans(mock_runs: dict[str, list[Res]]) -> None:
    for suffix in ("-gpu", "-system"):  # every node of a restricted plan on single-tenant hardware
        lt = named(mock_runs["restricted_dedicated"], "aws:ec2/launchTemplate:LaunchTemplate", suffix)["inputs"]
        assert lt["placement"]["tenancy"] == "dedicated"
        lt = named(mock_runs["cloud_llm_tensor_parallel"], "aws:ec2/launchTemplate:LaunchTemplate", suffix)["inputs"]
        assert "placement" not in lt


@pytest.mark.parametrize("name", ["cloud_llm_pipeline_parallel", "hybrid_onprem_cloud_burst", "restricted_dedicated"])
def test_no_public_ingress_on_confidential_plans(mock_runs: dict[str, list[Res]], name: str) -> None:
    res = mock_runs[name]
    sgs = of_type(res, "aws:ec2/securityGroup:SecurityGroup")
    assert sgs
    for sg in sgs:
        for rule in sg["inputs"].get("ingress", []):
            assert "0.0.0.0/0" not in rule.get("cidrBlocks", []), sg["name"]
    cluster = one(res, "aws:eks/cluster:Cluster")["inputs"]
    assert cluster["vpcConfig"]["endpointPublicAccess"] is False
    for sn in of_type(res, "aws:ec2/subnet:Subnet"):
        assert sn["inputs"]["mapPublicIpOnLaunch"] is False
    objs = config_group_objs(res)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert ("NetworkPolicy", "default-deny") in kinds
    targets = {p.names.key: p.target for p in PLANS[name]().parts}
    for o in objs:
        md = o["metadata"]
        if o["kind"] == "Service" and targets[md["labels"]["mlplan.dev/part"]] == "aws-eks":
            assert o["spec"]["type"] != "LoadBalancer" or \
                md["annotations"]["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
        if o["kind"] == "NetworkPolicy":
            for rule in o["spec"].get("ingress", []):
                for peer in rule.get("from", []):
                    assert peer.get("ipBlock", {}).get("cidr") != "0.0.0.0/0"


@pytest.mark.parametrize("name", sorted(PLANS))
def test_every_aws_resource_in_the_plans_region(mock_runs: dict[str, list[Res]], name: str) -> None:
    plan = PLANS[name]()
    regions = {p.region for p in plan.parts if p.placement == "cloud" and p.provider == "aws"}
    res = mock_runs[name]
    aws_res = [r for r in res if r["type"].startswith("aws:")]
    assert bool(aws_res) == bool(regions) and (name != "gcp_plan" or not aws_res)
    for r in aws_res:
        assert r["region"] in regions, (r["type"], r["name"], r["region"])
        geography = CATALOG.region("aws", r["region"]).geography  # the catalog's, not the plan's claim
        assert region_allowed("aws", r["region"], geography, plan.security.allowed_regions)
    for p in of_type(res, "pulumi:providers:aws"):
        assert p["inputs"]["region"] in regions


@pytest.mark.parametrize("name", sorted(PLANS))
def test_no_iam_star_on_star(mock_runs: dict[str, list[Res]], name: str) -> None:
    for r in mock_runs[name]:
        if r["type"] not in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"):
            continue
        for stmt in json.loads(r["inputs"]["policy"])["Statement"]:
            actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
            resources = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
            assert not (any(a in ("*", "s3:*") for a in actions) and "*" in resources), r["name"]
    for r in of_type(mock_runs[name], "aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        assert not r["inputs"]["policyArn"].endswith(("/AdministratorAccess", "/AmazonS3FullAccess"))


def test_onprem_uses_kubeconfig_secret_and_no_cloud(mock_runs: dict[str, list[Res]]) -> None:
    res = mock_runs["onprem_llm"]
    assert not [r for r in res if r["type"].startswith("aws:")]
    prov = one(res, "pulumi:providers:kubernetes")
    kubeconfig = prov["inputs"]["kubeconfig"]
    # read with config.require_secret: the value stays a Pulumi secret (the secret signature wraps it)
    assert isinstance(kubeconfig, dict) and kubeconfig["value"] == "mock-kubeconfig"
    assert kubeconfig.get("4dabf18193072939515e22adb298388d") == "1b47061264138c4ac30d75fd1eb44270"
    kinds = [o["kind"] for o in config_group_objs(res)]
    assert {"Namespace", "ResourceQuota", "NetworkPolicy", "RayService"} <= set(kinds)


def test_edge_fleet_is_a_daemonset_pinned_to_edge_nodes(mock_runs: dict[str, list[Res]]) -> None:
    objs = config_group_objs(mock_runs["edge_vision"])
    ds = next(o for o in objs if o["kind"] == "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"node-role.kubernetes.io/edge": "true", "mlplan.dev/device": "jetson-orin-nano"}
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec["containers"][0]["image"].endswith("-igpu")


def test_hybrid_creates_both_sides_and_the_router(mock_runs: dict[str, list[Res]]) -> None:
    res = mock_runs["hybrid_onprem_cloud_burst"]
    assert named(res, "aws:eks/nodeGroup:NodeGroup", "-gpu")["inputs"]["instanceTypes"] == ["g6.xlarge"]
    assert len(of_type(res, "pulumi:providers:kubernetes")) == 2
    objs = config_group_objs(res)
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-router"))
    envoy = yaml.safe_load(cm["data"]["envoy.yaml"])
    hcm = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    # an allow-list: only requests marked public go to the cloud; everything else (untagged too) stays on-prem
    assert routes == [
        {"match": {"prefix": "/", "headers": [{"name": "x-mlplan-data-class", "string_match": {"exact": "public"}}]},
         "route": {"cluster": "cloud", "timeout": "300s"}},
        {"match": {"prefix": "/"}, "route": {"cluster": "local", "timeout": "300s"}}]
    assert "weighted_clusters" not in cm["data"]["envoy.yaml"]
    rs = next(o for o in objs if o["kind"] == "RayService" and "serveService" in o["spec"])
    assert rs["spec"]["serveService"]["spec"]["type"] == "LoadBalancer"


def test_firmware_local_and_gcp_plans_create_nothing_in_aws(mock_runs: dict[str, list[Res]]) -> None:
    assert mock_runs["microcontroller"] == []
    assert mock_runs["local_demo"] == []
    assert not [r for r in mock_runs["gcp_plan"] if r["type"].startswith("aws:")]
    assert [r for r in mock_runs["gcp_plan"] if r["type"] == "gcp:container/cluster:Cluster"]  # the GKE stack


def test_training_plan_gets_a_rayjob_on_gpu_nodes(mock_runs: dict[str, list[Res]]) -> None:
    plan = f.training_zero()
    res = mock_runs["training_zero"]
    assert named(res, "aws:eks/nodeGroup:NodeGroup", "-gpu")["inputs"]["scalingConfig"]["desiredSize"] == 2
    job = next(o for o in config_group_objs(res) if o["kind"] == "RayJob")
    group = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert group["replicas"] == plan.nodes
    assert group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"


def test_residency_is_enforced_before_anything_is_created() -> None:
    plan = f.cloud_llm_pipeline_parallel()  # allowed_regions: eu
    part = plan.parts[0].model_copy(update={"region": "us-east-1", "geography": "us"})
    with pytest.raises(ArtifactError, match="residency eu only"):
        check_plan(plan.model_copy(update={"parts": (part,)}), f.spec_for(plan))


@pytest.mark.parametrize(("name", "expected"), [
    ("cloud_llm_single_gpu", "http://mlplan-test-primary-serving-endpoint.lb.mock:8000"),
    ("cloud_llm_pipeline_parallel", "https://mlplan-test-primary-serving-endpoint.lb.mock"),  # TLS front door
    ("ec2_single_gpu", "http://10.40.0.10:8000"),  # private address, the VPC's way in
    ("hybrid_onprem_cloud_burst", "https://mlplan-test-sensitive-on-prem-serving-endpoint.lb.mock"),  # the router
])
def test_the_stack_exports_the_endpoint_deploy_prints(monkeypatch: pytest.MonkeyPatch, name: str,
                                                      expected: str) -> None:
    import pulumi

    from stacks.preview import run_under_mocks
    from stacks.program import build

    seen: dict[str, Any] = {}

    def export(key: str, value: Any) -> None:
        pulumi.Output.from_input(value).apply(lambda v: seen.__setitem__(key, v))

    monkeypatch.setattr(pulumi, "export", export)
    plan = PLANS[name]()
    run_under_mocks(lambda: build(plan))
    assert seen["endpoint"] == expected
    assert seen["plan_id"] == plan.id
