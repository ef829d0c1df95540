"""The GKE part (stacks/gcp.py) run under Pulumi's own mocks (the offline-preview mechanism of stacks/preview.py):
machine and accelerators as asked, every resource in the region and zones, encryption and private networking when
asked, no public bucket or internet ingress, and no IAM grant broader than read on the weights."""

from __future__ import annotations

import functools
import random
from typing import Any

import pytest

from planner.errors import InputError
from stacks.gcp import INTERNAL_LB_ANNOTATIONS, GkePartArgs

Res = dict[str, Any]

# pulumi-gcp warns at import about its own deprecated aliases (gcp.compute.MangedSslCertificate, ...), which mlplan
# never uses; the filter matches only warnings issued from inside the pulumi_gcp package.
pytestmark = pytest.mark.filterwarnings("ignore:.*has been deprecated in favor of:DeprecationWarning:pulumi_gcp")

#: Read-only roles on a bucket's objects. Source: https://cloud.google.com/storage/docs/access-control/iam-roles
#: (roles/storage.objectViewer: storage.objects.get, storage.objects.list, storage.folders.get/list,
#: storage.managedFolders.get/list). Written here, not imported, so a change in stacks/gcp.py cannot widen it.
READ_ONLY_BUCKET_ROLES = {"roles/storage.objectViewer"}
IAM_TYPES = ("IAMMember", "IAMBinding", "IAMPolicy")
SERVICE_AGENT_DOMAINS = ("@gs-project-accounts.iam.gserviceaccount.com",
                         "@container-engine-robot.iam.gserviceaccount.com", "@compute-system.iam.gserviceaccount.com")


def _put(got: dict[str, Any], key: str, value: Any) -> None:
    got[key] = value


def base(**kw: Any) -> GkePartArgs:
    args: dict[str, Any] = dict(
        name="mlplan-llama-primary", project="acme-ml", region="europe-west4",
        zones=("europe-west4-a", "europe-west4-b", "europe-west4-c"), machine_type="a3-highgpu-8g",
        accelerator_type="nvidia-h100-80gb", accelerator_count=8, accelerator="h100-sxm", nodes=2, max_nodes=3,
        bucket_name="mlplan-llama-3-70b-1a2b3c4d", model_prefix="llama-3-70b", serving_namespace="mlplan-llama-3-70b",
        serving_service_account="llama-3-70b", private=True, cmek=True, internal_lb=True)
    args.update(kw)
    return GkePartArgs(**args)


def random_args(rng: random.Random, i: int) -> GkePartArgs:
    """A random GKE part over the catalog's GCP machine types (A2, A3, G2), regions and data classes."""
    shapes = [("a2-highgpu-1g", "nvidia-tesla-a100", 1, "a100-40gb"), ("a2-ultragpu-8g", "nvidia-a100-80gb", 8,
                                                                        "a100-80gb"),
              ("a3-highgpu-8g", "nvidia-h100-80gb", 8, "h100-sxm"), ("g2-standard-24", "nvidia-l4", 2, "l4"),
              ("a3-ultragpu-8g", "nvidia-h200-141gb", 8, "h200")]
    region = rng.choice(["us-central1", "europe-west4", "asia-southeast1", "us-east4"])
    zones = tuple(f"{region}-{z}" for z in rng.sample("abc", rng.randint(1, 3)))
    machine, acc_type, count, acc = rng.choice(shapes)
    nodes = rng.randint(1, 4)
    confidential = rng.random() < 0.5
    return GkePartArgs(name=f"mlplan-rand-{i}", project=f"proj-{i}", region=region, zones=zones, machine_type=machine,
                       accelerator_type=acc_type, accelerator_count=count, accelerator=acc, nodes=nodes,
                       max_nodes=nodes + rng.randint(0, 3), bucket_name=f"mlplan-rand-{i}-{rng.randrange(10**6)}",
                       model_prefix="m", serving_namespace=f"ns-{i}", serving_service_account=f"ksa-{i}",
                       spot=rng.random() < 0.3, private=confidential, cmek=confidential, internal_lb=confidential,
                       accelerator_zone=rng.choice(zones),
                       authorized_networks=() if confidential else ("203.0.113.0/24",))


CASES: dict[str, GkePartArgs] = {
    "a3-confidential": base(),
    "g2-public-spot": base(name="mlplan-phi-primary", machine_type="g2-standard-8", accelerator_type="nvidia-l4",
                           accelerator_count=1, accelerator="l4", nodes=1, max_nodes=4, spot=True, private=False,
                           cmek=False, internal_lb=False, zones=("us-central1-a", "us-central1-c"),
                           region="us-central1", accelerator_zone="us-central1-c",
                           authorized_networks=("198.51.100.0/24",), bucket_name="mlplan-phi-0000aaaa"),
    "tpu-v5e-2x4": base(name="mlplan-gemma-primary", machine_type="ct5lp-hightpu-4t",
                        accelerator_type="tpu-v5-lite-podslice", accelerator_count=4, accelerator="tpu-v5e",
                        tpu_topology="2x4", nodes=2, max_nodes=2, zones=("us-west4-a",), region="us-west4",
                        bucket_name="mlplan-gemma-0000bbbb"),
    **{f"random-{i}": random_args(random.Random(1700 + i), i) for i in range(4)},
}


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[list[Res], dict[str, Any]]]:
    """Every case in one program run under fresh mocks (one part each), plus the resolved PartOutputs values."""
    from stacks.gcp import build_gcp_part
    from stacks.preview import run_under_mocks

    seen: dict[str, dict[str, Any]] = {k: {} for k in CASES}

    def program() -> None:
        for key, args in CASES.items():
            out = build_gcp_part(args)
            got = seen[key]
            got.update(labels=dict(out.gpu_node_labels), taints=out.gpu_node_taints, lb=dict(out.service_annotations),
                       resource=out.device_resource, plugin=out.device_plugin, pod_labels=dict(out.pod_labels))
            out.model_uri.apply(functools.partial(_put, got, "uri"))
            sa = out.service_account_annotations["iam.gke.io/gcp-service-account"]
            pulumi_output(sa).apply(functools.partial(_put, got, "gsa"))

    resources = run_under_mocks(program)
    out: dict[str, tuple[list[Res], dict[str, Any]]] = {}
    for key, args in CASES.items():
        prefix = args.name
        mine = [r for r in resources if r["name"].startswith(prefix) or r["name"] == f"gcp-{prefix}"]
        out[key] = (mine, seen[key])
    return out


def pulumi_output(value: Any) -> Any:
    import pulumi

    return pulumi.Output.from_input(value)


def of_type(res: list[Res], suffix: str) -> list[Res]:
    return [r for r in res if r["type"].endswith(suffix)]


def one(res: list[Res], suffix: str, name_suffix: str = "") -> Res:
    found = [r for r in of_type(res, suffix) if r["name"].endswith(name_suffix)]
    assert len(found) == 1, [r["name"] for r in found]
    return found[0]


@pytest.mark.parametrize("key", sorted(CASES))
def test_accelerator_pool_matches_the_args(runs: dict[str, Any], key: str) -> None:
    args = CASES[key]
    res, got = runs[key]
    pool = one(res, ":NodePool", "-accel")["inputs"]
    cfg = pool["nodeConfig"]
    assert cfg["machineType"] == args.machine_type
    assert pool["nodeLocations"] == [args.accelerator_zone or args.zones[0]]
    assert cfg["spot"] is args.spot
    assert cfg["diskSizeGb"] == args.disk_gib
    assert cfg["labels"]["mlplan.dev/accelerator"] == args.accelerator
    taints = {(t["key"], t["value"], t["effect"]) for t in cfg["taints"]}
    if args.accelerator_type and args.accelerator_type.startswith("tpu-"):
        assert "guestAccelerators" not in cfg
        assert taints == {("google.com/tpu", "present", "NO_SCHEDULE")}
        assert pool["placementPolicy"] == {"type": "COMPACT", "tpuTopology": args.tpu_topology}
        assert pool["nodeCount"] == args.nodes and "autoscaling" not in pool
        assert got["resource"] == "google.com/tpu"
        assert got["labels"]["cloud.google.com/gke-tpu-topology"] == args.tpu_topology
    else:
        (acc,) = cfg["guestAccelerators"]
        assert (acc["type"], acc["count"]) == (args.accelerator_type, args.accelerator_count)
        assert acc["gpuDriverInstallationConfig"] == {"gpuDriverVersion": "LATEST"}
        assert taints == {("nvidia.com/gpu", "present", "NO_SCHEDULE")}
        assert pool["autoscaling"] == {"minNodeCount": args.nodes, "maxNodeCount": args.max_nodes}
        assert pool["initialNodeCount"] == args.nodes
        assert got["resource"] == "nvidia.com/gpu"
        assert got["labels"]["cloud.google.com/gke-accelerator"] == args.accelerator_type
    assert got["plugin"] is None  # GKE installs the driver and runs its own device plugin
    assert {t.key for t in got["taints"]} == {k for k, _, _ in taints}
    # the system pool: untainted, over every zone, for CoreDNS, operators and the Ray head
    system = one(res, ":NodePool", "-system")["inputs"]
    assert system["nodeLocations"] == list(args.zones) and "taints" not in system["nodeConfig"]
    assert cfg["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    assert cfg["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}


def test_hyperdisk_for_a3_ultra_and_pd_balanced_elsewhere(runs: dict[str, Any]) -> None:
    for key, args in CASES.items():
        cfg = one(runs[key][0], ":NodePool", "-accel")["inputs"]["nodeConfig"]
        want = "hyperdisk-balanced" if args.machine_type.startswith("a3-ultragpu") else "pd-balanced"
        assert cfg["diskType"] == want, key


@pytest.mark.parametrize("key", sorted(CASES))
def test_every_resource_in_the_region_and_zones(runs: dict[str, Any], key: str) -> None:
    args = CASES[key]
    res, _ = runs[key]
    gcp = [r for r in res if r["type"].startswith("gcp:")]
    assert len(gcp) >= 12
    (provider,) = of_type(res, "pulumi:providers:gcp")
    assert (provider["inputs"]["region"], provider["inputs"]["project"]) == (args.region, args.project)
    for r in gcp:
        assert r["region"] == args.region, (r["type"], r["name"])
        inputs = r["inputs"]
        for field in ("region", "location"):
            if field in inputs:
                assert str(inputs[field]).lower() == args.region, (r["type"], r["name"], inputs[field])
        for zone in inputs.get("nodeLocations", []):
            assert zone in args.zones, (r["name"], zone)
        assert "zone" not in inputs


@pytest.mark.parametrize("key", sorted(CASES))
def test_encryption_and_private_networking_when_asked(runs: dict[str, Any], key: str) -> None:
    args = CASES[key]
    res, _ = runs[key]
    cluster = one(res, "container/cluster:Cluster")["inputs"]
    bucket = one(res, "storage/bucket:Bucket")["inputs"]
    pools = [p["inputs"]["nodeConfig"] for p in of_type(res, ":NodePool")]
    assert cluster["privateClusterConfig"]["enablePrivateNodes"] is True  # nodes never get public IPs
    assert cluster["privateClusterConfig"]["enablePrivateEndpoint"] is args.private
    assert cluster["datapathProvider"] == "ADVANCED_DATAPATH"  # enforces the manifests' NetworkPolicies
    assert cluster["workloadIdentityConfig"] == {"workloadPool": f"{args.project}.svc.id.goog"}
    assert cluster["releaseChannel"] == {"channel": "REGULAR"}
    assert cluster["masterAuth"]["clientCertificateConfig"] == {"issueClientCertificate": False}
    cidrs = [c["cidrBlock"] for c in cluster["masterAuthorizedNetworksConfig"]["cidrBlocks"]]
    assert "0.0.0.0/0" not in cidrs
    assert of_type(res, "compute/routerNat:RouterNat")  # egress for private nodes
    assert one(res, "compute/network:Network")["inputs"]["autoCreateSubnetworks"] is False
    if args.cmek:
        key_id = f"{args.name}-key-id"  # the mock id of the CryptoKey
        (crypto_key,) = of_type(res, "kms/cryptoKey:CryptoKey")
        assert crypto_key["inputs"]["rotationPeriod"] == "7776000s"
        assert bucket["encryption"] == {"defaultKmsKeyName": key_id}
        assert cluster["databaseEncryption"] == {"state": "ENCRYPTED", "keyName": key_id}
        assert all(p["bootDiskKmsKey"] == key_id for p in pools)
        ring = one(res, "kms/keyRing:KeyRing")["inputs"]
        assert ring["location"] == args.region
    else:
        assert "encryption" not in bucket and "databaseEncryption" not in cluster
        assert not of_type(res, "kms/cryptoKey:CryptoKey")
        assert all("bootDiskKmsKey" not in p for p in pools)


@pytest.mark.parametrize("key", sorted(CASES))
def test_no_public_bucket_and_no_internet_ingress(runs: dict[str, Any], key: str) -> None:
    res, _ = runs[key]
    bucket = one(res, "storage/bucket:Bucket")["inputs"]
    assert bucket["publicAccessPrevention"] == "enforced"
    assert bucket["uniformBucketLevelAccess"] is True
    assert bucket["versioning"] == {"enabled": True}
    for fw in of_type(res, "compute/firewall:Firewall"):
        assert "0.0.0.0/0" not in fw["inputs"].get("sourceRanges", []), fw["name"]
    for r in res:
        member = str(r["inputs"].get("member", ""))
        assert member not in ("allUsers", "allAuthenticatedUsers"), r["name"]


def iam_problems(res: list[Res], args: GkePartArgs) -> list[str]:
    """Every IAM grant of the part, checked against what reading the weights (and running nodes) needs."""
    problems: list[str] = []
    wi_member = f"serviceAccount:{args.project}.svc.id.goog[{args.serving_namespace}/{args.serving_service_account}]"
    for r in res:
        typ, inputs = r["type"], r["inputs"]
        if not typ.rsplit(":", 1)[-1].endswith(IAM_TYPES):
            continue
        role, member = inputs.get("role"), str(inputs.get("member", ""))
        if typ.endswith(("IAMBinding", "IAMPolicy")):
            problems.append(f"{r['name']}: authoritative {typ} (replaces other grants)")
        elif typ.startswith("gcp:storage/bucketIAMMember"):
            if role not in READ_ONLY_BUCKET_ROLES or not member.startswith("serviceAccount:") \
                    or "-serve@" not in member:
                problems.append(f"{r['name']}: {role} on the bucket for {member}")
        elif typ.startswith("gcp:projects/"):
            if role != "roles/container.defaultNodeServiceAccount" or "-nodes@" not in member:
                problems.append(f"{r['name']}: project-wide {role} for {member}")
        elif typ.startswith("gcp:serviceaccount/"):
            if role != "roles/iam.workloadIdentityUser" or member != wi_member:
                problems.append(f"{r['name']}: {role} on a service account for {member}")
        elif typ.startswith("gcp:kms/"):
            if role != "roles/cloudkms.cryptoKeyEncrypterDecrypter" or not member.endswith(SERVICE_AGENT_DOMAINS):
                problems.append(f"{r['name']}: {role} on the key for {member}")
        else:
            problems.append(f"{r['name']}: unexpected IAM resource {typ}")
    return problems


@pytest.mark.parametrize("key", sorted(CASES))
def test_no_role_broader_than_read_on_the_weights(runs: dict[str, Any], key: str) -> None:
    args = CASES[key]
    res, got = runs[key]
    assert iam_problems(res, args) == []
    readers = of_type(res, "storage/bucketIAMMember:BucketIAMMember")
    assert [r["inputs"]["role"] for r in readers] == ["roles/storage.objectViewer"]
    assert readers[0]["inputs"]["member"] == f"serviceAccount:{got['gsa']}"
    wi = one(res, "serviceaccount/iAMMember:IAMMember")["inputs"]
    assert wi["member"] == f"serviceAccount:{args.project}.svc.id.goog[{args.serving_namespace}/" \
                           f"{args.serving_service_account}]"


def test_the_iam_check_catches_broad_grants() -> None:
    args = CASES["a3-confidential"]
    planted = [
        {"type": "gcp:storage/bucketIAMMember:BucketIAMMember", "name": "x", "inputs": {
            "role": "roles/storage.objectAdmin", "member": "serviceAccount:a-serve@p.iam.gserviceaccount.com"}},
        {"type": "gcp:projects/iAMMember:IAMMember", "name": "y", "inputs": {
            "role": "roles/storage.objectViewer", "member": "serviceAccount:a-serve@p.iam.gserviceaccount.com"}},
        {"type": "gcp:storage/bucketIAMBinding:BucketIAMBinding", "name": "z", "inputs": {
            "role": "roles/storage.objectViewer", "members": ["allUsers"]}},
        {"type": "gcp:serviceaccount/iAMMember:IAMMember", "name": "w", "inputs": {
            "role": "roles/iam.workloadIdentityUser", "member": "serviceAccount:acme-ml.svc.id.goog[default/default]"}},
    ]
    assert [p.split(":")[0] for p in iam_problems(planted, args)] == ["x", "y", "z", "w"]


def test_outputs_for_the_shared_kubernetes_layer(runs: dict[str, Any]) -> None:
    args = CASES["a3-confidential"]
    _, got = runs["a3-confidential"]
    assert got["uri"] == f"gs://{args.bucket_name}/{args.model_prefix}"
    assert got["gsa"].endswith(f"-serve@{args.project}.iam.gserviceaccount.com")
    assert got["lb"] == INTERNAL_LB_ANNOTATIONS == {"networking.gke.io/load-balancer-type": "Internal"}
    assert got["pod_labels"] == {}
    assert runs["g2-public-spot"][1]["lb"] == {}
    assert runs["g2-public-spot"][1]["labels"]["cloud.google.com/gke-spot"] == "true"
    (prov,) = of_type(runs["a3-confidential"][0], "pulumi:providers:kubernetes")
    kubeconfig = prov["inputs"]["kubeconfig"]
    assert isinstance(kubeconfig, dict) and "gke-gcloud-auth-plugin" in kubeconfig["value"]  # a secret, exec auth


@pytest.mark.parametrize(("change", "message"), [
    ({"zones": ("europe-west1-b",)}, "is not a zone of region europe-west4"),
    ({"zones": ()}, "no zones given"),
    ({"accelerator_zone": "europe-west4-z"}, "is not in"),
    ({"nodes": 3, "max_nodes": 2}, "nodes 3, max_nodes 2"),
    ({"accelerator_type": "h100"}, "unknown GKE accelerator type"),
    ({"accelerator_count": 0}, "per node"),
    ({"authorized_networks": ("0.0.0.0/0",)}, "whole internet"),
    ({"accelerator_type": "tpu-v5-lite-podslice", "accelerator_count": 4, "tpu_topology": "2x4", "nodes": 3,
      "max_nodes": 3}, "whole 2x4 slices"),
    ({"tpu_topology": "2x4"}, "TPU topology"),
])
def test_args_refuse_what_gke_would_reject_or_leak(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        base(**change)
    assert "To fix:" in err.value.one_line()


def test_plan_md_lists_the_gke_resources_with_their_region(runs: dict[str, Any]) -> None:
    """PLAN.md's offline preview (stacks.planmd.resource_lines over the mock records) names every GCP resource."""
    from stacks.planmd import resource_lines

    res, _ = runs["a3-confidential"]
    lines = resource_lines(res)
    assert "gcp:container/cluster:Cluster mlplan-llama-primary (europe-west4)" in lines
    assert "gcp:container/nodePool:NodePool mlplan-llama-primary-accel (europe-west4)" in lines
    assert "gcp:storage/bucket:Bucket mlplan-llama-primary-models (europe-west4)" in lines
    assert all(line.endswith("(europe-west4)") for line in lines if line.startswith("gcp:"))


def test_every_gcp_catalog_accelerator_has_a_gke_type() -> None:
    import yaml

    from stacks.gcp import GKE_ACCELERATOR_TYPES, accelerator_kind, gke_accelerator_type

    path = __import__("pathlib").Path(__file__).resolve().parents[2] / "planner/catalog/data/instances_gcp.yaml"
    catalog = {row["accelerator"] for row in yaml.safe_load(path.read_text())["rows"]}
    assert catalog <= set(GKE_ACCELERATOR_TYPES)
    assert all(accelerator_kind(gke_accelerator_type(a)) in ("nvidia", "tpu") for a in GKE_ACCELERATOR_TYPES)
    with pytest.raises(InputError, match="no GKE accelerator type"):
        gke_accelerator_type("mi300x")
