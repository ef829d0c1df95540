"""Azure building blocks as Pulumi ComponentResources (pulumi-azure-native 3.x): an AKS cluster for one plan part.

Every component takes an explicit ``azure_native.Provider`` pinned to the part's location, and every resource
names ``location`` (or lives in the resource group that does), so nothing lands outside the region the caller
chose inside the plan's ``allowed_regions``. Secure by default:

- a resource group and VNet of the part's own; AKS with Azure CNI Overlay and Cilium (the manifests'
  NetworkPolicies are enforced), no public node IPs, Entra ID auth with Azure RBAC and local accounts disabled;
  the API server is private (private cluster) when ``private`` (confidential / restricted data), else open only to
  ``authorized_networks`` when given;
- workload identity: the OIDC issuer on, a user-assigned identity federated with exactly the serving Kubernetes
  service account, holding ``Storage Blob Data Reader`` on the model container only;
- the weights' storage account: no anonymous blob access, no shared-key access (Entra ID only), TLS 1.2, HTTPS
  only; with ``cmk`` a Key Vault key (RBAC, purge protection) encrypts it (infrastructure encryption too) and the
  node OS disks (a disk encryption set); with ``private`` the account admits only the cluster subnet and
  ``upload_cidrs``;
- ``dedicated`` (restricted data) places both pools on Azure Dedicated Hosts, which only a few VM sizes allow
  (:data:`DEDICATED_HOST_SKUS`): for any other size :class:`AksPartArgs` raises, as the planner refuses such plans.

References: AKS workload identity (https://learn.microsoft.com/azure/aks/workload-identity-overview), private AKS
(https://learn.microsoft.com/azure/aks/private-clusters), GPU node pools and ``gpuProfile.driver``
(https://learn.microsoft.com/azure/aks/use-nvidia-gpu), internal load balancer
(https://learn.microsoft.com/azure/aks/internal-lb), Azure Dedicated Host with AKS
(https://learn.microsoft.com/azure/aks/use-azure-dedicated-hosts), storage CMK
(https://learn.microsoft.com/azure/storage/common/customer-managed-keys-overview).
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_azure_native as azure

from planner.errors import InputError
from planner.names import dns_label as dns_name
from planner.names import short_hash
from stacks.clouds import PartOutputs, Taint

VNET_CIDR = "10.60.0.0/16"
NODE_SUBNET_CIDR = "10.60.0.0/20"
POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.0.0.0/16"
DNS_SERVICE_IP = "10.0.0.10"
#: AKS's annotation for an internal Standard Load Balancer. Source: https://learn.microsoft.com/azure/aks/internal-lb
INTERNAL_LB_ANNOTATIONS = {"service.beta.kubernetes.io/azure-load-balancer-internal": "true"}
#: Pod label without which the workload-identity webhook injects no token.
#: Source: https://learn.microsoft.com/azure/aks/workload-identity-overview#pod-labels
WORKLOAD_IDENTITY_POD_LABELS = {"azure.workload.identity/use": "true"}
#: The taint and label AKS puts on every Spot pool node. Source: https://learn.microsoft.com/azure/aks/spot-node-pool
SPOT_TAINT = Taint("kubernetes.azure.com/scalesetpriority", "spot", "NoSchedule")
SPOT_LABELS = {"kubernetes.azure.com/scalesetpriority": "spot"}

#: Built-in role definition ids. Source: https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
ROLES = {
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "Network Contributor": "4d97b98b-1d4f-4787-a291-c67834d212e7",
    "Key Vault Crypto Service Encryption User": "e147488a-f6f5-4113-8e2d-b22465e65bf6",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Azure Kubernetes Service RBAC Cluster Admin": "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b",
}

#: VM size -> (Azure Dedicated Host SKU, VMs of that size per host). Every GPU host SKU Azure offers is here:
#: NVasv4-Type1 (NVv4, AMD MI25 partitions) and NVsv3-Type1 (NVv3, Tesla M60), packings from
#: https://learn.microsoft.com/azure/virtual-machines/dedicated-host-gpu-optimized-skus; the complete host SKU list
#: (no NC, ND, NCads, NDv5 or MI300X host exists) as validated by terraform-provider-azurerm's
#: ``azurerm_dedicated_host.sku_name``. NVv4 is left out: AKS does not support NVv4 node pools
#: (https://learn.microsoft.com/azure/aks/use-nvidia-gpu). The system pool's size runs on DSv5-Type1 (Dsv5-series).
DEDICATED_HOST_SKUS: dict[str, tuple[str, int]] = {
    "Standard_NV12s_v3": ("NVSv3-Type1", 4),
    "Standard_NV24s_v3": ("NVSv3-Type1", 2),
    "Standard_NV48s_v3": ("NVSv3-Type1", 1),
    "Standard_D2s_v5": ("DSv5-Type1", 32),
    "Standard_D4s_v5": ("DSv5-Type1", 16),
}
_STORAGE_NAME = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


def dedicated_host_sku(vm_size: str) -> tuple[str, int] | None:
    """The dedicated host SKU and packing for ``vm_size``, or None when no dedicated host runs that size."""
    return DEDICATED_HOST_SKUS.get(vm_size)


def hosts_needed(vm_size: str, vms: int) -> int:
    sku = dedicated_host_sku(vm_size)
    if sku is None:
        raise InputError(f"{vm_size} runs on no Azure Dedicated Host", fix="choose a size in DEDICATED_HOST_SKUS")
    return max(1, math.ceil(vms / sku[1]))


@dataclass(frozen=True)
class AksPartArgs:
    """One plan part on AKS, in the caller's terms (the lead maps plan fields onto these).

    ``zones`` are availability-zone numbers (``"1"``, ``"2"``, ``"3"``) of ``location``; empty in a region without
    zones. ``nodes`` / ``max_nodes`` count GPU nodes of ``vm_size`` with ``gpus_per_node`` GPUs of ``gpu_vendor``.
    ``storage_account`` (3-24 lowercase letters and digits, globally unique) and ``container`` hold the weights
    under ``model_prefix``. ``dedicated`` (restricted data): both pools on dedicated hosts, refused for sizes no
    dedicated host runs."""

    name: str
    location: str
    zones: tuple[str, ...]
    vm_size: str
    gpus_per_node: int
    gpu_vendor: Literal["nvidia", "amd"]
    accelerator: str  # the catalog's accelerator id (h100-nvl, mi300x, ...): node label mlplan.dev/accelerator
    nodes: int
    max_nodes: int
    storage_account: str
    container: str
    model_prefix: str
    serving_namespace: str
    serving_service_account: str
    spot: bool = False
    disk_gib: int = 256
    private: bool = True
    cmk: bool = False
    dedicated: bool = False
    internal_lb: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    system_vm_size: str = "Standard_D4s_v5"
    system_nodes: int = 2
    system_disk_gib: int = 128
    kubernetes_version: str | None = None
    authorized_networks: tuple[str, ...] = ()
    upload_cidrs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = [z for z in self.zones if z not in ("1", "2", "3")]
        if bad:
            raise InputError(f"AKS part {self.name}: zones {', '.join(bad)} are not Azure availability zones",
                             fix='pass zone numbers "1", "2" or "3" of the location (or none)')
        if self.nodes < 1 or self.max_nodes < self.nodes:
            raise InputError(f"AKS part {self.name}: nodes {self.nodes}, max_nodes {self.max_nodes}",
                             fix="need 1 <= nodes <= max_nodes")
        if self.gpus_per_node < 1:
            raise InputError(f"AKS part {self.name}: {self.vm_size} with {self.gpus_per_node} GPUs per node",
                             fix="pass the GPUs per node of the VM size (>= 1)")
        if not _STORAGE_NAME.match(self.storage_account):
            raise InputError(f"AKS part {self.name}: storage account name {self.storage_account!r} is invalid",
                             fix="3-24 lowercase letters and digits, globally unique")
        if not _CONTAINER_NAME.match(self.container):
            raise InputError(f"AKS part {self.name}: container name {self.container!r} is invalid",
                             fix="3-63 lowercase letters, digits and single hyphens")
        if self.private and any(c in ("0.0.0.0/0", "*") for c in (*self.authorized_networks, *self.upload_cidrs)):
            raise InputError(f"AKS part {self.name}: a private part with the whole internet allowed",
                             fix="drop 0.0.0.0/0 from authorized_networks / upload_cidrs")
        if self.dedicated:
            for size in (self.vm_size, self.system_vm_size):
                if dedicated_host_sku(size) is None:
                    raise InputError(
                        f"AKS part {self.name}: restricted data needs Azure Dedicated Hosts, and no dedicated host "
                        f"runs {size} (GPU hosts exist only for NVv3 and NVv4 sizes)",
                        fix="keep restricted data on-prem or on a cloud with dedicated GPU hosts (AWS dedicated "
                            "tenancy), or relax the data class")
            if self.spot:
                raise InputError(f"AKS part {self.name}: Spot VMs cannot run on dedicated hosts",
                                 fix="use on-demand capacity for restricted data")

    @property
    def device_resource(self) -> str:
        return "amd.com/gpu" if self.gpu_vendor == "amd" else "nvidia.com/gpu"


def _opts(parent: pulumi.Resource, provider: azure.Provider, **kw: Any) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, provider=provider, **kw)


def _tags(args: AksPartArgs) -> dict[str, str]:
    return {"managed-by": "mlplan", **args.tags}


def role_definition_id(subscription: pulumi.Input[str], role: str) -> pulumi.Output[str]:
    return pulumi.Output.concat("/subscriptions/", subscription,
                                f"/providers/Microsoft.Authorization/roleDefinitions/{ROLES[role]}")


class AzureNetwork(pulumi.ComponentResource):
    """The part's resource group, a VNet and the node subnet (with the Storage service endpoint)."""

    def __init__(self, name: str, *, args: AksPartArgs, provider: azure.Provider,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:azure:Network", name, None, opts)
        self.group = azure.resources.ResourceGroup(f"{name}-rg", resource_group_name=f"{name}-rg",
                                                   location=args.location, tags=_tags(args),
                                                   opts=_opts(self, provider))
        self.vnet = azure.network.VirtualNetwork(
            f"{name}-vnet", virtual_network_name=f"{name}-vnet", resource_group_name=self.group.name,
            location=args.location, address_space={"address_prefixes": [VNET_CIDR]}, tags=_tags(args),
            opts=_opts(self, provider, ignore_changes=["subnets"]))
        self.subnet = azure.network.Subnet(
            f"{name}-nodes", subnet_name="nodes", resource_group_name=self.group.name,
            virtual_network_name=self.vnet.name, address_prefix=NODE_SUBNET_CIDR,
            service_endpoints=[{"service": "Microsoft.Storage", "locations": [args.location]}],
            opts=_opts(self, provider))
        self.register_outputs({"group": self.group.name, "subnet": self.subnet.id})


class KeyVaultKey(pulumi.ComponentResource):
    """A Key Vault (RBAC authorization, purge protection, firewall: trusted Azure services only) and an RSA-3072 key
    with yearly rotation, for the storage account and the node OS disks."""

    def __init__(self, name: str, *, args: AksPartArgs, group: pulumi.Input[str], tenant: pulumi.Input[str],
                 provider: azure.Provider, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:azure:KeyVaultKey", name, None, opts)
        vault_name = f"kv{args.storage_account[:14]}{short_hash(name, 6)}"
        self.vault = azure.keyvault.Vault(
            f"{name}-kv", vault_name=vault_name, resource_group_name=group, location=args.location,
            properties={"tenant_id": tenant, "sku": {"family": "A", "name": "premium"},
                        "enable_rbac_authorization": True, "enable_purge_protection": True,
                        "enable_soft_delete": True, "soft_delete_retention_in_days": 90,
                        "network_acls": {"bypass": "AzureServices", "default_action": "Deny"}},
            tags=_tags(args), opts=_opts(self, provider))
        self.key = azure.keyvault.Key(
            f"{name}-key", key_name="models", resource_group_name=group, vault_name=self.vault.name,
            properties={"kty": "RSA", "key_size": 3072, "key_ops": ["wrapKey", "unwrapKey"],
                        "rotation_policy": {"attributes": {"expiry_time": "P2Y"}, "lifetime_actions": [
                            {"trigger": {"time_after_create": "P1Y"}, "action": {"type": "rotate"}}]}},
            opts=_opts(self, provider))
        self.vault_uri = self.vault.properties.apply(lambda p: p.vault_uri if p is not None else None)
        self.register_outputs({"vault": self.vault.id, "key": self.key.id})


class AzureModelStorage(pulumi.ComponentResource):
    """The weights' storage account and container: no anonymous or shared-key access, TLS 1.2, HTTPS only, CMK with
    infrastructure encryption when asked, and a firewall admitting only the cluster subnet when private."""

    def __init__(self, name: str, *, args: AksPartArgs, group: pulumi.Input[str], subnet_id: pulumi.Input[str],
                 key: KeyVaultKey | None, subscription: pulumi.Input[str], provider: azure.Provider,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:azure:ModelStorage", name, None, opts)
        extra: dict[str, Any] = {}
        deps: list[pulumi.Resource] = []
        if key is not None:
            cmk_identity = azure.managedidentity.UserAssignedIdentity(
                f"{name}-cmk", resource_name_=f"{name}-cmk", resource_group_name=group, location=args.location,
                tags=_tags(args), opts=_opts(self, provider))
            deps.append(azure.authorization.RoleAssignment(
                f"{name}-cmk-key", principal_id=cmk_identity.principal_id, principal_type="ServicePrincipal",
                role_definition_id=role_definition_id(subscription, "Key Vault Crypto Service Encryption User"),
                scope=key.vault.id, opts=_opts(self, provider)))
            extra["identity"] = {"type": "UserAssigned", "user_assigned_identities": [cmk_identity.id]}
            extra["encryption"] = {
                "key_source": "Microsoft.Keyvault", "require_infrastructure_encryption": True,
                "key_vault_properties": {"key_name": key.key.name, "key_vault_uri": key.vault_uri},
                "encryption_identity": {"encryption_user_assigned_identity": cmk_identity.id},
                "services": {"blob": {"enabled": True, "key_type": "Account"},
                             "file": {"enabled": True, "key_type": "Account"}}}
        rules: dict[str, Any] = {"bypass": "AzureServices", "default_action": "Allow"}
        if args.private:
            rules = {"bypass": "AzureServices", "default_action": "Deny",
                     "virtual_network_rules": [{"virtual_network_resource_id": subnet_id, "action": "Allow"}],
                     "ip_rules": [{"i_p_address_or_range": c, "action": "Allow"} for c in args.upload_cidrs]}
        self.account = azure.storage.StorageAccount(
            f"{name}-account", account_name=args.storage_account, resource_group_name=group, location=args.location,
            kind="StorageV2", sku={"name": "Standard_LRS"}, access_tier="Hot",
            allow_blob_public_access=False, allow_shared_key_access=False, default_to_o_auth_authentication=True,
            minimum_tls_version="TLS1_2", enable_https_traffic_only=True, allow_cross_tenant_replication=False,
            public_network_access="Enabled", network_rule_set=rules, tags=_tags(args), **extra,
            opts=_opts(self, provider, depends_on=deps))
        self.container = azure.storage.BlobContainer(
            f"{name}-container", container_name=args.container, account_name=self.account.name,
            resource_group_name=group, public_access="None", opts=_opts(self, provider))
        self.register_outputs({"account": self.account.name, "container": self.container.id})


class DedicatedHosts(pulumi.ComponentResource):
    """A dedicated host group (one fault domain, automatic placement) with hosts for both pools, in a resource group
    of its own: the cluster identity needs Contributor on the host group's resource group, and that group holds
    nothing else (in particular not the weights)."""

    def __init__(self, name: str, *, args: AksPartArgs, cluster_principal: pulumi.Input[str],
                 subscription: pulumi.Input[str], provider: azure.Provider,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:azure:DedicatedHosts", name, None, opts)
        group = azure.resources.ResourceGroup(f"{name}-hosts-rg", resource_group_name=f"{name}-hosts-rg",
                                              location=args.location, tags=_tags(args), opts=_opts(self, provider))
        zone = {"zones": [args.zones[0]]} if args.zones else {}
        self.group = azure.compute.DedicatedHostGroup(
            f"{name}-hosts", host_group_name=f"{name}-hosts", resource_group_name=group.name, location=args.location,
            platform_fault_domain_count=1, support_automatic_placement=True, tags=_tags(args), **zone,
            opts=_opts(self, provider))
        self.hosts: list[azure.compute.DedicatedHost] = []
        for pool, size, vms in (("gpu", args.vm_size, args.max_nodes), ("system", args.system_vm_size,
                                                                         args.system_nodes)):
            sku = DEDICATED_HOST_SKUS[size][0]
            for i in range(hosts_needed(size, vms)):
                self.hosts.append(azure.compute.DedicatedHost(
                    f"{name}-{pool}-{i}", host_name=f"{pool}-{i}", host_group_name=self.group.name,
                    resource_group_name=group.name, location=args.location, sku={"name": sku},
                    platform_fault_domain=0, auto_replace_on_failure=True, tags=_tags(args),
                    opts=_opts(self, provider)))
        self.grant = azure.authorization.RoleAssignment(
            f"{name}-hosts-contributor", principal_id=cluster_principal, principal_type="ServicePrincipal",
            role_definition_id=role_definition_id(subscription, "Contributor"), scope=group.id,
            opts=_opts(self, provider))
        self.id = self.group.id
        self.register_outputs({"host_group": self.group.id})


class AksCluster(pulumi.ComponentResource):
    """AKS with a system pool (CoreDNS, operators, the Ray head) and one GPU pool (tainted, labelled), Entra ID +
    Azure RBAC with local accounts off, OIDC issuer + workload identity, Azure CNI Overlay with Cilium."""

    def __init__(self, name: str, *, args: AksPartArgs, network: AzureNetwork, subscription: pulumi.Input[str],
                 tenant: pulumi.Input[str], deployer: pulumi.Input[str], disk_encryption_set: pulumi.Input[str] | None,
                 provider: azure.Provider, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:azure:AksCluster", name, None, opts)
        group = network.group.name
        self.identity = azure.managedidentity.UserAssignedIdentity(
            f"{name}-control-plane", resource_name_=f"{name}-control-plane", resource_group_name=group,
            location=args.location, tags=_tags(args), opts=_opts(self, provider))
        subnet_role = azure.authorization.RoleAssignment(
            f"{name}-subnet", principal_id=self.identity.principal_id, principal_type="ServicePrincipal",
            role_definition_id=role_definition_id(subscription, "Network Contributor"), scope=network.subnet.id,
            opts=_opts(self, provider))
        deps: list[pulumi.Resource] = [subnet_role]
        self.hosts: DedicatedHosts | None = None
        if args.dedicated:
            self.hosts = DedicatedHosts(name, args=args, cluster_principal=self.identity.principal_id,
                                        subscription=subscription, provider=provider)
            deps += [self.hosts.grant, *self.hosts.hosts]
        zones = list(args.zones) or None
        system_pool: dict[str, Any] = {
            "name": "system", "mode": "System", "vm_size": args.system_vm_size, "count": args.system_nodes,
            "os_type": "Linux", "os_sku": "AzureLinux", "os_disk_size_gb": args.system_disk_gib,
            "type": "VirtualMachineScaleSets",
            "vnet_subnet_id": network.subnet.id, "enable_node_public_ip": False, "availability_zones": zones,
            "node_labels": {"mlplan.dev/pool": "system"}, "upgrade_settings": {"max_surge": "33%"}}
        if self.hosts is not None:
            system_pool["host_group_id"] = self.hosts.id
        api: dict[str, Any] = {"enable_private_cluster": args.private}
        if args.private:
            api["enable_private_cluster_public_fqdn"] = False
        elif args.authorized_networks:
            api["authorized_ip_ranges"] = list(args.authorized_networks)
        extra: dict[str, Any] = {}
        if disk_encryption_set is not None:
            extra["disk_encryption_set_id"] = disk_encryption_set
        if args.kubernetes_version:
            extra["kubernetes_version"] = args.kubernetes_version
        self.cluster = azure.containerservice.ManagedCluster(
            name, resource_name_=name, resource_group_name=group, location=args.location, dns_prefix=name,
            identity={"type": "UserAssigned", "user_assigned_identities": [self.identity.id]},
            sku={"name": "Base", "tier": "Standard"}, agent_pool_profiles=[system_pool],
            enable_rbac=True, disable_local_accounts=True,
            aad_profile={"managed": True, "enable_azure_rbac": True, "tenant_id": tenant},
            api_server_access_profile=api, oidc_issuer_profile={"enabled": True},
            security_profile={"workload_identity": {"enabled": True}, "image_cleaner": {"enabled": True,
                                                                                        "interval_hours": 168}},
            network_profile={"network_plugin": "azure", "network_plugin_mode": "overlay",
                             "network_dataplane": "cilium", "network_policy": "cilium", "pod_cidr": POD_CIDR,
                             "service_cidr": SERVICE_CIDR, "dns_service_ip": DNS_SERVICE_IP,
                             "load_balancer_sku": "standard", "outbound_type": "loadBalancer"},
            auto_upgrade_profile={"upgrade_channel": "patch", "node_os_upgrade_channel": "NodeImage"},
            tags=_tags(args), **extra, opts=_opts(self, provider, depends_on=deps))
        self.gpu_labels = {"mlplan.dev/pool": "accelerators", "mlplan.dev/gpu": "true",
                           "mlplan.dev/accelerator": args.accelerator}
        taints = [Taint(args.device_resource, "present", "NoSchedule")]
        pool: dict[str, Any] = {}
        if args.spot:
            taints.append(SPOT_TAINT)
            pool.update(scale_set_priority="Spot", scale_set_eviction_policy="Delete", spot_max_price=-1)
        if self.hosts is not None:
            pool["host_group_id"] = self.hosts.id
        self.taints = tuple(taints)
        self.gpu_pool = azure.containerservice.AgentPool(
            f"{name}-gpu", agent_pool_name="gpu", resource_group_name=group, resource_name_=self.cluster.name,
            mode="User", vm_size=args.vm_size, count=args.nodes, enable_auto_scaling=args.max_nodes > args.nodes,
            min_count=args.nodes if args.max_nodes > args.nodes else None,
            max_count=args.max_nodes if args.max_nodes > args.nodes else None,
            os_type="Linux", os_sku="Ubuntu", os_disk_size_gb=args.disk_gib, type="VirtualMachineScaleSets",
            vnet_subnet_id=network.subnet.id, enable_node_public_ip=False, availability_zones=zones,
            node_labels=self.gpu_labels, node_taints=[f"{t.key}={t.value}:{t.effect}" for t in self.taints],
            # AKS installs NVIDIA drivers ("Install"); it installs no AMD driver, so MI300X pools skip it ("None")
            gpu_profile={"driver": "Install" if args.gpu_vendor == "nvidia" else "None"},
            upgrade_settings={"max_surge": "1"}, tags=_tags(args), **pool,
            opts=_opts(self, provider, ignore_changes=["count"]))
        azure.authorization.RoleAssignment(
            f"{name}-deployer", principal_id=deployer, principal_type="User",
            role_definition_id=role_definition_id(subscription, "Azure Kubernetes Service RBAC Cluster Admin"),
            scope=self.cluster.id, description="mlplan: the identity running pulumi applies the manifests",
            opts=_opts(self, provider))
        creds = azure.containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=group, resource_name=self.cluster.name, format="exec",
            opts=pulumi.InvokeOutputOptions(provider=provider, depends_on=[self.cluster]))
        self.kubeconfig = creds.kubeconfigs.apply(lambda ks: base64.b64decode(ks[0].value).decode())
        self.issuer = self.cluster.oidc_issuer_profile.apply(lambda p: p.issuer_url if p is not None else None)
        self.register_outputs({"cluster": self.cluster.name})


class ServingIdentity(pulumi.ComponentResource):
    """A user-assigned identity federated with exactly ``system:serviceaccount:<namespace>:<ksa>`` of the cluster's
    OIDC issuer, holding Storage Blob Data Reader on the model container only."""

    def __init__(self, name: str, *, args: AksPartArgs, group: pulumi.Input[str], issuer: pulumi.Input[str],
                 container_id: pulumi.Input[str], subscription: pulumi.Input[str], provider: azure.Provider,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:azure:ServingIdentity", name, None, opts)
        self.identity = azure.managedidentity.UserAssignedIdentity(
            f"{name}-serving", resource_name_=f"{name}-serving", resource_group_name=group, location=args.location,
            tags=_tags(args), opts=_opts(self, provider))
        azure.managedidentity.FederatedIdentityCredential(
            f"{name}-serving-federation", federated_identity_credential_resource_name="serving",
            resource_group_name=group, resource_name_=self.identity.name, issuer=issuer,
            subject=f"system:serviceaccount:{args.serving_namespace}:{args.serving_service_account}",
            audiences=["api://AzureADTokenExchange"], opts=_opts(self, provider))
        azure.authorization.RoleAssignment(
            f"{name}-read-models", principal_id=self.identity.principal_id, principal_type="ServicePrincipal",
            role_definition_id=role_definition_id(subscription, "Storage Blob Data Reader"), scope=container_id,
            opts=_opts(self, provider))
        self.client_id = self.identity.client_id
        self.register_outputs({"client_id": self.identity.client_id})


def build_azure_part(args: AksPartArgs) -> PartOutputs:
    """Every Azure resource of one AKS part, and what the shared Kubernetes layer needs to use the cluster."""
    from stacks.k8s import cluster_provider

    name = dns_name(args.name, 40)
    provider = azure.Provider(f"azure-{name}", location=args.location)
    client = azure.authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(provider=provider))
    net = AzureNetwork(name, args=args, provider=provider)
    key: KeyVaultKey | None = None
    des_id: pulumi.Output[str] | None = None
    if args.cmk:
        key = KeyVaultKey(name, args=args, group=net.group.name, tenant=client.tenant_id, provider=provider)
        des = azure.compute.DiskEncryptionSet(
            f"{name}-disks", disk_encryption_set_name=f"{name}-disks", resource_group_name=net.group.name,
            location=args.location, encryption_type="EncryptionAtRestWithCustomerKey",
            active_key={"key_url": key.key.key_uri}, rotation_to_latest_key_version_enabled=True,
            identity={"type": "SystemAssigned"}, tags=_tags(args), opts=pulumi.ResourceOptions(provider=provider))
        des_grant = azure.authorization.RoleAssignment(
            f"{name}-disks-key", principal_id=des.identity.apply(lambda i: i.principal_id if i else ""),
            principal_type="ServicePrincipal",
            role_definition_id=role_definition_id(client.subscription_id, "Key Vault Crypto Service Encryption User"),
            scope=key.vault.id, opts=pulumi.ResourceOptions(provider=provider))
        des_id = pulumi.Output.all(des.id, des_grant.id).apply(lambda a: a[0])
    storage = AzureModelStorage(f"{name}-models", args=args, group=net.group.name, subnet_id=net.subnet.id, key=key,
                                subscription=client.subscription_id, provider=provider)
    cluster = AksCluster(name, args=args, network=net, subscription=client.subscription_id, tenant=client.tenant_id,
                         deployer=client.object_id, disk_encryption_set=des_id, provider=provider)
    identity = ServingIdentity(name, args=args, group=net.group.name, issuer=cluster.issuer,
                               container_id=storage.container.id, subscription=client.subscription_id,
                               provider=provider)
    if args.gpu_vendor == "amd":
        pulumi.log.warn(f"AKS part {args.name}: AKS node images carry no AMD GPU driver; the {args.vm_size} pool is "
                        "created without one (gpuProfile.driver None) and the AMD device plugin is installed, but "
                        "amd.com/gpu appears only once a driver is loaded: install the AMD GPU Operator with "
                        "driver management (https://instinct.docs.amd.com/projects/gpu-operator) before serving")
    resources: list[pulumi.Resource] = [cluster.cluster, cluster.gpu_pool]
    k8s_provider = cluster_provider(f"{name}-k8s", pulumi.Output.secret(cluster.kubeconfig), depends_on=resources)
    prefix = args.model_prefix.strip("/")
    uri = pulumi.Output.concat("https://", storage.account.name, ".blob.core.windows.net/", args.container,
                               f"/{prefix}" if prefix else "")
    return PartOutputs(
        provider=k8s_provider, model_uri=uri,
        service_account_annotations={"azure.workload.identity/client-id": identity.client_id},
        pod_labels=dict(WORKLOAD_IDENTITY_POD_LABELS),
        service_annotations=dict(INTERNAL_LB_ANNOTATIONS) if args.internal_lb else {},
        gpu_node_labels={**cluster.gpu_labels, "kubernetes.azure.com/agentpool": "gpu",
                         **(SPOT_LABELS if args.spot else {})},
        gpu_node_taints=cluster.taints, device_resource=args.device_resource, device_plugin=args.gpu_vendor,
        system_node_labels={"mlplan.dev/pool": "system", "kubernetes.azure.com/agentpool": "system"},
        resources=resources)
