"""The AKS part (stacks/azure.py) run under Pulumi's own mocks (the offline-preview mechanism of stacks/preview.py):
VM size and GPU pool as asked, every resource in the location, encryption and private networking when asked, no
public container or internet ingress, no role broader than read on the weights, and the dedicated-host guard."""

from __future__ import annotations

import functools
import random
from typing import Any, Literal

import pytest

from planner.errors import InputError
from stacks.azure import INTERNAL_LB_ANNOTATIONS, AksPartArgs

Res = dict[str, Any]

#: Built-in role ids, written here (not imported) so a change in stacks/azure.py cannot widen what the tests allow.
#: Source: https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
BLOB_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"  # Storage Blob Data Reader: read/list blobs, no write
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"
KV_CRYPTO_SERVICE_ENCRYPTION_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
AKS_RBAC_CLUSTER_ADMIN = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"


def _put(got: dict[str, Any], key: str, value: Any) -> None:
    got[key] = value


def base(**kw: Any) -> AksPartArgs:
    args: dict[str, Any] = dict(
        name="mlplan-llama-primary", location="westeurope", zones=("1", "2", "3"),
        vm_size="Standard_ND96isr_H100_v5", gpus_per_node=8, gpu_vendor="nvidia", accelerator="h100-sxm", nodes=2,
        max_nodes=3, storage_account="mlplanllama70b1a2b", container="models", model_prefix="llama-3-70b",
        serving_namespace="mlplan-llama-3-70b", serving_service_account="llama-3-70b", private=True, cmk=True,
        internal_lb=True)
    args.update(kw)
    return AksPartArgs(**args)


def random_args(rng: random.Random, i: int) -> AksPartArgs:
    """A random AKS part over the catalog's Azure sizes (NC/ND families, MI300X), locations and data classes."""
    shapes = [("Standard_NC24ads_A100_v4", 1, "nvidia", "a100-80gb-pcie"), ("Standard_NC40ads_H100_v5", 1, "nvidia",
                                                                              "h100-nvl"),
              ("Standard_NC80adis_H100_v5", 2, "nvidia", "h100-nvl"), ("Standard_ND96asr_v4", 8, "nvidia", "a100-40gb"),
              ("Standard_ND96isr_MI300X_v5", 8, "amd", "mi300x"), ("Standard_NC8as_T4_v3", 1, "nvidia", "t4")]
    size, gpus, vendor_name, acc = rng.choice(shapes)
    vendor: Literal["nvidia", "amd"] = "amd" if vendor_name == "amd" else "nvidia"
    nodes = rng.randint(1, 3)
    confidential = rng.random() < 0.5
    return AksPartArgs(name=f"mlplan-rand-{i}", location=rng.choice(["eastus", "swedencentral", "japaneast"]),
                       zones=tuple(sorted(rng.sample("123", rng.randint(0, 3)))), vm_size=size, gpus_per_node=gpus,
                       gpu_vendor=vendor, accelerator=acc, nodes=nodes, max_nodes=nodes + rng.randint(0, 2),
                       storage_account=f"mlplanrand{i}{rng.randrange(10**6)}", container="weights", model_prefix="m",
                       serving_namespace=f"ns-{i}", serving_service_account=f"ksa-{i}", spot=rng.random() < 0.3,
                       private=confidential, cmk=confidential, internal_lb=confidential,
                       upload_cidrs=("203.0.113.7/32",) if confidential else ())


CASES: dict[str, AksPartArgs] = {
    "nd-h100-confidential": base(),
    "mi300x-public-spot": base(name="mlplan-ft-primary", vm_size="Standard_ND96isr_MI300X_v5", gpu_vendor="amd",
                               accelerator="mi300x", nodes=1, max_nodes=1, spot=True, private=False, cmk=False,
                               internal_lb=False, location="eastus", storage_account="mlplanft0000aaaa",
                               authorized_networks=("198.51.100.0/24",)),
    "nv-restricted-dedicated": base(name="mlplan-edge-primary", vm_size="Standard_NV12s_v3", gpus_per_node=1,
                                    accelerator="m60", nodes=2, max_nodes=5, dedicated=True, zones=("2",),
                                    storage_account="mlplanedge0000bbbb"),
    **{f"random-{i}": random_args(random.Random(2900 + i), i) for i in range(4)},
}


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[list[Res], dict[str, Any]]]:
    """Every case in one program run under fresh mocks, with the device plugins the shared layer installs."""
    import pulumi

    from stacks.azure import build_azure_part
    from stacks.clouds import install_cluster_addons
    from stacks.preview import run_under_mocks

    seen: dict[str, dict[str, Any]] = {k: {} for k in CASES}

    def program() -> None:
        for key, args in CASES.items():
            out = build_azure_part(args)
            got = seen[key]
            got.update(labels=dict(out.gpu_node_labels), taints=out.gpu_node_taints, lb=dict(out.service_annotations),
                       resource=out.device_resource, plugin=out.device_plugin, pod_labels=dict(out.pod_labels),
                       tolerations=out.tolerations())
            install_cluster_addons(args.name, out, kuberay=False)
            out.model_uri.apply(functools.partial(_put, got, "uri"))
            pulumi.Output.from_input(out.service_account_annotations["azure.workload.identity/client-id"]).apply(
                functools.partial(_put, got, "client_id"))

    resources = run_under_mocks(program)
    return {key: ([r for r in resources if r["name"].startswith(args.name) or r["name"] == f"azure-{args.name}"],
                  seen[key]) for key, args in CASES.items()}


def of_type(res: list[Res], suffix: str) -> list[Res]:
    return [r for r in res if r["type"].endswith(suffix)]


def one(res: list[Res], suffix: str, name_suffix: str = "") -> Res:
    found = [r for r in of_type(res, suffix) if r["name"].endswith(name_suffix)]
    assert len(found) == 1, [r["name"] for r in found]
    return found[0]


@pytest.mark.parametrize("key", sorted(CASES))
def test_gpu_pool_matches_the_args(runs: dict[str, Any], key: str) -> None:
    args = CASES[key]
    res, got = runs[key]
    pool = one(res, ":AgentPool")["inputs"]
    assert (pool["vmSize"], pool["count"], pool["mode"]) == (args.vm_size, args.nodes, "User")
    if args.max_nodes > args.nodes:
        assert (pool["enableAutoScaling"], pool["minCount"], pool["maxCount"]) == (True, args.nodes, args.max_nodes)
    else:
        assert pool["enableAutoScaling"] is False and "maxCount" not in pool
    if args.zones:
        assert pool["availabilityZones"] == list(args.zones)
    else:
        assert "availabilityZones" not in pool
    assert pool["nodeLabels"]["mlplan.dev/accelerator"] == args.accelerator
    resource = "amd.com/gpu" if args.gpu_vendor == "amd" else "nvidia.com/gpu"
    want_taints = {f"{resource}=present:NoSchedule"}
    if args.spot:
        want_taints.add("kubernetes.azure.com/scalesetpriority=spot:NoSchedule")
        assert (pool["scaleSetPriority"], pool["scaleSetEvictionPolicy"]) == ("Spot", "Delete")
        assert got["labels"]["kubernetes.azure.com/scalesetpriority"] == "spot"
    else:
        assert "scaleSetPriority" not in pool
    assert set(pool["nodeTaints"]) == want_taints
    assert {f"{t.key}={t.value}:{t.effect}" for t in got["taints"]} == want_taints
    assert pool["gpuProfile"] == {"driver": "Install" if args.gpu_vendor == "nvidia" else "None"}
    assert (got["resource"], got["plugin"]) == (resource, args.gpu_vendor)
    # the shared layer installs the vendor's device plugin, tolerating every taint of the pool (Spot included)
    charts = {r["inputs"]["chart"]: r["inputs"] for r in of_type(res, "helm.sh/v3:Release")}
    chart = "amd-gpu" if args.gpu_vendor == "amd" else "nvidia-device-plugin"
    assert set(charts) == {chart}
    tolerations = charts[chart]["values"]["tolerations"]
    assert all(t in tolerations for t in got["tolerations"])
    # the system pool: untainted, for CoreDNS, operators and the Ray head
    (system,) = one(res, ":ManagedCluster")["inputs"]["agentPoolProfiles"]
    assert system["mode"] == "System" and "nodeTaints" not in system


@pytest.mark.parametrize("key", sorted(CASES))
def test_every_resource_in_the_location(runs: dict[str, Any], key: str) -> None:
    args = CASES[key]
    res, _ = runs[key]
    azure = [r for r in res if r["type"].startswith("azure-native:")]
    assert len(azure) >= 13
    (provider,) = of_type(res, "pulumi:providers:azure-native")
    assert provider["inputs"]["location"] == args.location
    groups = {r["inputs"]["resourceGroupName"] for r in of_type(res, "resources:ResourceGroup")}
    for r in azure:
        assert r["region"] == args.location, (r["type"], r["name"])
        inputs = r["inputs"]
        if "location" in inputs:
            assert inputs["location"] == args.location, (r["type"], r["name"])
        elif not r["type"].endswith(":RoleAssignment"):  # child resources live in the part's resource groups
            assert inputs["resourceGroupName"] in groups, (r["type"], r["name"])
        for zone in inputs.get("availabilityZones") or inputs.get("zones") or []:
            assert zone in args.zones, (r["name"], zone)


@pytest.mark.parametrize("key", sorted(CASES))
def test_encryption_and_private_networking_when_asked(runs: dict[str, Any], key: str) -> None:
    args = CASES[key]
    res, _ = runs[key]
    cluster = one(res, ":ManagedCluster")["inputs"]
    account = one(res, "storage:StorageAccount")["inputs"]
    assert cluster["apiServerAccessProfile"]["enablePrivateCluster"] is args.private
    assert "0.0.0.0/0" not in cluster["apiServerAccessProfile"].get("authorizedIPRanges", [])
    assert cluster["disableLocalAccounts"] is True and cluster["aadProfile"]["enableAzureRBAC"] is True
    assert cluster["oidcIssuerProfile"] == {"enabled": True}
    assert cluster["securityProfile"]["workloadIdentity"] == {"enabled": True}
    net = cluster["networkProfile"]
    assert (net["networkPlugin"], net["networkPluginMode"], net["networkPolicy"]) == ("azure", "overlay", "cilium")
    pools = [*cluster["agentPoolProfiles"], one(res, ":AgentPool")["inputs"]]
    assert all(p["enableNodePublicIP"] is False for p in pools)
    rules = account["networkRuleSet"]
    if args.private:
        assert rules["defaultAction"] == "Deny"
        assert [v["virtualNetworkResourceId"] for v in rules["virtualNetworkRules"]] == [f"{args.name}-nodes-id"]
        assert all(ip["iPAddressOrRange"] != "0.0.0.0/0" for ip in rules.get("ipRules", []))
    if args.cmk:
        enc = account["encryption"]
        assert (enc["keySource"], enc["requireInfrastructureEncryption"]) == ("Microsoft.Keyvault", True)
        assert enc["keyVaultProperties"]["keyName"] == "models"
        vault = one(res, "keyvault:Vault")["inputs"]["properties"]
        assert vault["enablePurgeProtection"] is True and vault["enableRbacAuthorization"] is True
        assert vault["networkAcls"]["defaultAction"] == "Deny"
        des = one(res, "compute:DiskEncryptionSet")["inputs"]
        assert des["encryptionType"] == "EncryptionAtRestWithCustomerKey"
        assert cluster["diskEncryptionSetID"] == f"{args.name}-disks-id"
    else:
        assert "encryption" not in account and "diskEncryptionSetID" not in cluster
        assert not of_type(res, "keyvault:Vault")


@pytest.mark.parametrize("key", sorted(CASES))
def test_no_public_container(runs: dict[str, Any], key: str) -> None:
    res, _ = runs[key]
    account = one(res, "storage:StorageAccount")["inputs"]
    assert account["allowBlobPublicAccess"] is False
    assert account["allowSharedKeyAccess"] is False  # Entra ID only: listing keys gives no data access
    assert (account["minimumTlsVersion"], account["enableHttpsTrafficOnly"]) == ("TLS1_2", True)
    assert one(res, "storage:BlobContainer")["inputs"]["publicAccess"] == "None"
    assert not of_type(res, "network:NetworkSecurityGroup")  # nothing opens the VNet to the internet


def role_problems(res: list[Res], args: AksPartArgs) -> list[str]:
    """Every role assignment of the part: read on the weights, and nothing else that reaches them."""
    name = args.name
    allowed = {  # role -> the only scope it may have (the mock ids of the resources)
        BLOB_READER: {f"{name}-models-container-id"},
        NETWORK_CONTRIBUTOR: {f"{name}-nodes-id"},
        KV_CRYPTO_SERVICE_ENCRYPTION_USER: {f"{name}-kv-id"},
        CONTRIBUTOR: {f"{name}-hosts-rg-id"},
        AKS_RBAC_CLUSTER_ADMIN: {f"{name}-id"},
    }
    problems = []
    for r in of_type(res, "authorization:RoleAssignment"):
        role = str(r["inputs"]["roleDefinitionId"]).rsplit("/", 1)[-1]
        scope = r["inputs"]["scope"]
        if scope not in allowed.get(role, set()):
            problems.append(f"{r['name']}: role {role} on {scope}")
    return problems


@pytest.mark.parametrize("key", sorted(CASES))
def test_no_role_broader_than_read_on_the_weights(runs: dict[str, Any], key: str) -> None:
    args = CASES[key]
    res, got = runs[key]
    assert role_problems(res, args) == []
    on_weights = [r for r in of_type(res, "authorization:RoleAssignment")
                  if r["inputs"]["scope"] in (f"{args.name}-models-container-id", f"{args.name}-models-account-id",
                                              f"{args.name}-rg-id")]
    assert [r["inputs"]["roleDefinitionId"].rsplit("/", 1)[-1] for r in on_weights] == [BLOB_READER]
    assert on_weights[0]["inputs"]["principalId"] == f"mock-principal-id-{args.name}-serving"
    assert got["client_id"] == f"mock-client-id-{args.name}-serving"
    fed = one(res, "managedidentity:FederatedIdentityCredential")["inputs"]
    assert fed["subject"] == f"system:serviceaccount:{args.serving_namespace}:{args.serving_service_account}"
    assert fed["audiences"] == ["api://AzureADTokenExchange"]
    assert fed["issuer"].endswith(f"/{args.name}/")  # the cluster's own OIDC issuer


def test_the_role_check_catches_broad_grants() -> None:
    args = CASES["nd-h100-confidential"]
    sub = "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/"
    planted = [
        {"type": "azure-native:authorization:RoleAssignment", "name": "a", "inputs": {
            "roleDefinitionId": sub + "ba92f5b4-2d11-453d-a403-e96b0029c9fe",  # Storage Blob Data Contributor
            "scope": f"{args.name}-models-container-id"}},
        {"type": "azure-native:authorization:RoleAssignment", "name": "b", "inputs": {
            "roleDefinitionId": sub + CONTRIBUTOR, "scope": f"{args.name}-rg-id"}},
        {"type": "azure-native:authorization:RoleAssignment", "name": "c", "inputs": {
            "roleDefinitionId": sub + BLOB_READER, "scope": "/subscriptions/s"}},
    ]
    assert [p.split(":")[0] for p in role_problems(planted, args)] == ["a", "b", "c"]


def test_outputs_for_the_shared_kubernetes_layer(runs: dict[str, Any]) -> None:
    args = CASES["nd-h100-confidential"]
    _, got = runs["nd-h100-confidential"]
    assert got["uri"] == f"https://{args.storage_account}.blob.core.windows.net/models/{args.model_prefix}"
    assert got["pod_labels"] == {"azure.workload.identity/use": "true"}
    assert got["lb"] == INTERNAL_LB_ANNOTATIONS == {"service.beta.kubernetes.io/azure-load-balancer-internal": "true"}
    assert runs["mi300x-public-spot"][1]["lb"] == {}
    (prov,) = of_type(runs["nd-h100-confidential"][0], "pulumi:providers:kubernetes")
    assert isinstance(prov["inputs"]["kubeconfig"], dict)  # a secret


def test_restricted_data_runs_on_dedicated_hosts(runs: dict[str, Any]) -> None:
    args = CASES["nv-restricted-dedicated"]
    res, _ = runs["nv-restricted-dedicated"]
    group = one(res, "compute:DedicatedHostGroup")["inputs"]
    assert (group["platformFaultDomainCount"], group["zones"], group["supportAutomaticPlacement"]) == (1, ["2"], True)
    hosts = sorted((r["inputs"]["sku"]["name"], r["name"]) for r in of_type(res, "compute:DedicatedHost"))
    # NV12s_v3: 4 per NVSv3-Type1 host (Azure's packing table), max 5 nodes -> 2 hosts; the system pool: 1 DSv5 host
    assert [h[0] for h in hosts] == ["DSv5-Type1", "NVSv3-Type1", "NVSv3-Type1"]
    assert one(res, ":AgentPool")["inputs"]["hostGroupID"] == f"{args.name}-hosts-id"
    assert one(res, ":ManagedCluster")["inputs"]["agentPoolProfiles"][0]["hostGroupID"] == f"{args.name}-hosts-id"
    for key, other in CASES.items():
        if not other.dedicated:
            assert not of_type(runs[key][0], "compute:DedicatedHost"), key


@pytest.mark.parametrize("size", ["Standard_ND96isr_H100_v5", "Standard_ND96isr_MI300X_v5", "Standard_NC24ads_A100_v4",
                                  "Standard_NC40ads_H100_v5", "Standard_NC8as_T4_v3", "Standard_NV36ads_A10_v5"])
def test_restricted_on_a_size_without_dedicated_hosts_is_refused(size: str) -> None:
    with pytest.raises(InputError, match=f"no dedicated host runs {size}") as err:
        base(vm_size=size, dedicated=True)
    assert "To fix:" in err.value.one_line()


@pytest.mark.parametrize(("change", "message"), [
    ({"dedicated": True, "vm_size": "Standard_NV12s_v3", "spot": True}, "Spot VMs cannot run on dedicated hosts"),
    ({"dedicated": True, "vm_size": "Standard_NV12s_v3", "system_vm_size": "Standard_D8s_v3"},
     "no dedicated host runs Standard_D8s_v3"),
    ({"zones": ("westeurope-1",)}, "not Azure availability zones"),
    ({"storage_account": "Mlplan-Weights"}, "storage account name"),
    ({"container": "a"}, "container name"),
    ({"nodes": 0}, "nodes 0"),
    ({"upload_cidrs": ("0.0.0.0/0",)}, "whole internet"),
])
def test_args_refuse_what_azure_would_reject_or_leak(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        base(**change)


def test_plan_md_lists_the_aks_resources_with_their_location(runs: dict[str, Any]) -> None:
    """PLAN.md's offline preview (stacks.planmd.resource_lines over the mock records) names every Azure resource."""
    from stacks.planmd import resource_lines

    res, _ = runs["nd-h100-confidential"]
    lines = resource_lines(res)
    assert "azure-native:containerservice:ManagedCluster mlplan-llama-primary (westeurope)" in lines
    assert "azure-native:containerservice:AgentPool mlplan-llama-primary-gpu (westeurope)" in lines
    assert "kubernetes:helm.sh/v3:Release mlplan-llama-primary-device-plugin (chart nvidia-device-plugin 0.17.1)" \
        in lines
    assert all(line.endswith("(westeurope)") for line in lines if line.startswith("azure-native:"))
