"""The full monthly bill of one plan part: every billable resource its target makes the stack create, priced from
the catalog, the way infracost prices a Terraform plan.

The planner decides what a target implies (:mod:`planner.optimizer.targets`): ``aws-ec2`` is one EC2 instance in
a VPC with a NAT gateway, a KMS key and an S3 bucket; ``aws-eks`` / ``gcp-gke`` / ``azure-aks`` a managed
Kubernetes cluster with a system pool, the accelerator pool, NAT, keys, a weights bucket and a serving load
balancer; ``kubeconfig`` / ``local`` an existing on-prem cluster or machine; ``edge-fleet`` / ``firmware`` devices
in the field. Two tables hold that decision:

- :func:`part_kinds`: the cost kinds (:data:`KINDS`) the bill of a part on a target has. :class:`Biller` prices
  exactly these, one line (or more) per kind.
- :func:`resource_kinds`: which cost kinds each Pulumi resource type implies, or :class:`Free` with the reason
  (IAM, security groups, route tables ...). ``tests/test_bill.py`` runs the stacks of every example and factory
  plan under Pulumi's mocks and checks that every resource maps to a kind the bill of its part has; an unknown
  type is reported by name.

Prices: ``Catalog.service_price(provider, region, item)`` (``planner/catalog/data/services.yaml``: each row names
its source), overridable per item in the spec's ``assumptions.service_prices`` (``item`` or ``provider.item``, in
the row's unit) or by a catalog overlay's ``services`` section. Traffic lines (egress, load balancer data, KMS
requests) use the monthly request volume at the *average* rate: ``requests_per_s x hours_per_month x 3600`` times
the part's share of traffic; sizing uses the peak, billing the average.

What each line assumes is in its text; what the bill leaves out (cross-AZ transfer, log storage, the AWS 100 GB
free egress tier) is listed in :data:`NOT_BILLED`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from planner.catalog import Catalog
from planner.catalog.schema import EdgeDevice, Instance, OnPremServer
from planner.errors import SpecError
from planner.estimator.inference import weights_bytes
from planner.estimator.shape import shape_of
from planner.models.arch import ModelArch
from planner.optimizer.costs import GIB, BillLine, CostBreakdown, Group, edge_monthly, onprem_monthly
from planner.optimizer.nodes import SYSTEM_POOLS, model_volume_gib, node_disk_gib
from planner.plan import Target
from planner.specs import Spec

# ------------------------------------------------------------------------------------------------ cost kinds

KINDS: dict[str, tuple[Group, str]] = {
    "instances": ("compute", "accelerator nodes: instance hours at the plan's purchase option"),
    "system_nodes": ("compute", "the managed cluster's system node pool (CoreDNS, operators, the Ray head)"),
    "dedicated_fee": ("compute", "AWS Dedicated Instances per-region fee, per hour a dedicated instance runs"),
    "dedicated_uplift": ("compute", "dedicated-tenancy / sole-tenant price over the shared instance price"),
    "dedicated_host": ("compute", "dedicated hosts billed per host (Azure Dedicated Host)"),
    "capex": ("compute", "on-prem servers, amortized"),
    "devices": ("compute", "edge devices, amortized"),
    "power": ("compute", "on-prem / edge energy"),
    "k8s_control_plane": ("platform", "EKS / GKE / AKS control plane hours"),
    "control_plane_logs": ("platform", "control-plane logs the stack turns on (EKS api/audit/authenticator)"),
    "detailed_monitoring": ("platform", "EC2 detailed (1-minute) CloudWatch monitoring"),
    "kms_key": ("platform", "customer-managed encryption keys"),
    "kms_requests": ("platform", "key requests (volume attach, bucket reads, secrets)"),
    "operations": ("platform", "on-prem operations per server"),
    "nat_gateway": ("network", "NAT gateway hours (Cloud NAT per VM-hour)"),
    "nat_gateway_data": ("network", "NAT data processed: image pulls and updates from private nodes"),
    "public_ipv4": ("network", "public IPv4 addresses (NAT, internet-facing load balancers, AKS outbound)"),
    "load_balancer": ("network", "the serving load balancer's hours (and AKS's outbound load balancer)"),
    "load_balancer_data": ("network", "load balancer capacity units / data processed"),
    "egress_internet": ("network", "responses leaving the cloud"),
    "edge_connectivity": ("network", "per-device connectivity of fleets that connect"),
    "onprem_network": ("network", "on-prem network ports / cross-connects the server SKU lacks"),
    "block_volume": ("storage", "node root / boot volumes"),
    "model_cache": ("storage", "model-cache volumes (PVCs), 1.1 x the weight bytes per serving pod; the stacks fetch "
                               "models into emptyDir volumes on the node disks (block_volume) and create none today"),
    "object_storage": ("storage", "the weights bucket"),
    "onprem_storage": ("storage", "weights on on-prem storage (NAS / object store)"),
}

NOT_BILLED: tuple[str, ...] = (
    "cross-AZ data transfer between nodes (pipeline-parallel activations across zones; AWS $0.01/GB each way)",
    "log and metric storage beyond ingestion; GKE/VPC flow logs (inside Cloud Logging's free 50 GiB/project)",
    "free tiers that apply per account (AWS 100 GB/month free egress, the GKE credit for one zonal cluster)",
    "S3 / GCS / Blob request charges (a few thousand reads a month: well under $1)",
    "bucket versions kept after a re-upload of the weights (versioning is on)",
)

CLUSTER_TARGETS: tuple[Target, ...] = ("aws-eks", "gcp-gke", "azure-aks")
KMS_FREE_REQUESTS = {"aws": 20_000.0}
"""AWS KMS: 20,000 requests a month are free (https://aws.amazon.com/kms/pricing/); GCP and Azure bill from the
first request."""
NLB_NEW_FLOWS_PER_NLCU = 800.0
NLB_GB_PER_NLCU_HOUR = 1.0
"""One NLCU-hour covers 800 new TCP flows/s, 100,000 active flows or 1 GB processed in the hour, whichever binds
(https://aws.amazon.com/elasticloadbalancing/pricing/). mlplan counts one new flow per request (no keep-alive),
an upper bound."""
PUBLIC_LB_ADDRESSES = {"aws": 2}
"""An internet-facing NLB holds one public IPv4 per subnet it spans: the stack's VPC has two public subnets."""
TENSOR_BYTES = {"fp32": 4, "fp16": 2, "int64": 8, "int32": 4, "int8": 1, "uint8": 1, "bool": 1, "string": 64}
"""Bytes per element of a model input/output (``string``: 64 bytes assumed per element)."""


def is_private(data_class: str, routing: str) -> bool:
    """The serving load balancer is internal for confidential and restricted data, and for the cloud side of an
    on-prem hybrid (reached over the private link)."""
    return data_class in ("confidential", "restricted", "air-gapped") or routing == "marked-public"


def part_kinds(target: Target, provider: str, *, tenancy: str, data_class: str, training: bool = False
               ) -> tuple[str, ...]:
    """The cost kinds a part's bill has: what its target makes the stack create (see the module docstring)."""
    cmek = data_class in ("confidential", "restricted", "air-gapped")
    kinds: list[str]
    if target == "aws-ec2":
        kinds = ["instances", "kms_key", "kms_requests", "detailed_monitoring", "nat_gateway", "nat_gateway_data",
                 "public_ipv4", "egress_internet", "block_volume", "object_storage"]
    elif target == "aws-eks":
        kinds = ["instances", "system_nodes", "k8s_control_plane", "control_plane_logs", "kms_key", "kms_requests",
                 "nat_gateway", "nat_gateway_data", "public_ipv4", "load_balancer", "load_balancer_data",
                 "egress_internet", "block_volume", "object_storage"]
    elif target == "gcp-gke":
        kinds = ["instances", "system_nodes", "k8s_control_plane", *(["kms_key", "kms_requests"] if cmek else []),
                 "nat_gateway", "nat_gateway_data", "public_ipv4", "load_balancer", "load_balancer_data",
                 "egress_internet", "block_volume", "object_storage"]
    elif target == "azure-aks":
        kinds = ["instances", "system_nodes", "k8s_control_plane", *(["kms_key", "kms_requests"] if cmek else []),
                 "public_ipv4", "load_balancer", "load_balancer_data", "egress_internet", "block_volume",
                 "object_storage"]
    elif target in ("kubeconfig", "local"):
        return ("capex", "power", "operations", "onprem_network", "onprem_storage")
    else:  # edge-fleet, firmware
        return ("devices", "power") + (() if data_class == "air-gapped" else ("edge_connectivity",))
    if tenancy == "dedicated":
        kinds[1:1] = {"aws": ["dedicated_fee", "dedicated_uplift"], "gcp": ["dedicated_uplift"],
                      "azure": ["dedicated_host"]}[provider]
    if training:  # a run serves nothing: no serving load balancer, no responses, no serving cache
        serving = ("load_balancer_data", "egress_internet", "model_cache") + \
            (() if target == "azure-aks" else ("load_balancer",))  # AKS keeps its outbound load balancer
        kinds = [k for k in kinds if k not in serving]
    return tuple(kinds)


# ----------------------------------------------------------------------------------------------- node disks


def _h(hours: float) -> str:
    return f"{hours:,.0f} h" if hours >= 100 else f"{hours:.1f} h"


# ----------------------------------------------------------------------------------------------- traffic


@dataclass(frozen=True, slots=True)
class Traffic:
    """The spec's load for the bill: requests a month at the average rate, bytes in and out per request."""

    requests_per_month: float
    request_bytes: float
    response_bytes: float
    basis: str  # how the bytes were counted, shown on the egress line


def _tensor_bytes(specs: Any) -> tuple[float, bool]:
    total, dynamic = 0.0, False
    for t in specs or ():
        n = 1
        for d in t.shape:
            if d == -1:
                dynamic = True
            else:
                n *= d
        total += n * TENSOR_BYTES.get(t.dtype, 4)
    return total, dynamic


def traffic(spec: Spec, arch: ModelArch) -> Traffic:
    """Monthly requests at the average rate (``requests_per_s``, not the peak) and the bytes of each request and
    response: tokens x ``assumptions.bytes_per_token`` for LLMs, the model's input/output tensors for the rest
    (dynamic dimensions counted as 1)."""
    w, a = spec.workload, spec.assumptions
    if w.kind != "inference":
        return Traffic(0.0, 0.0, 0.0, "training: no requests")
    monthly = w.requests_per_s * a.hours_per_month * 3600.0
    if arch.is_llm:
        t = Traffic(monthly, w.input_tokens * a.bytes_per_token, w.output_tokens * a.bytes_per_token,
                    f"{w.output_tokens} output tokens x {a.bytes_per_token:g} B/token")
    else:
        out_b, dyn_o = _tensor_bytes(arch.outputs)
        in_b, _ = _tensor_bytes(arch.inputs)
        basis = f"output tensors {out_b:,.0f} B/request" if arch.outputs else \
            "output size unknown (no outputs in the model spec): 0 B"
        t = Traffic(monthly, in_b, out_b, basis + (" (dynamic dims as 1)" if dyn_o else ""))
    if a.request_bytes_per_request is not None:
        t = replace(t, request_bytes=a.request_bytes_per_request)
    if a.response_bytes_per_request is not None:
        t = replace(t, response_bytes=a.response_bytes_per_request,
                    basis=f"{a.response_bytes_per_request:,.0f} B/response (assumption)")
    return t


# -------------------------------------------------------------------------------------------- resources


@dataclass(frozen=True, slots=True)
class Free:
    """A resource type that costs nothing by itself, and why."""

    reason: str


IAM_FREE = Free("IAM / identity objects are free")
NET_FREE = Free("VPC plumbing (networks, subnets, route tables, gateways to the internet) has no charge")
CONFIG_FREE = Free("configuration of a billed resource (bucket settings, key aliases, policies)")
ResourceKinds = tuple[str, ...] | Free


def _ec2_instance(r: Mapping[str, Any], target: str) -> ResourceKinds:
    inputs = r.get("inputs") or {}
    kinds = ["instances", "block_volume"]
    if inputs.get("monitoring"):
        kinds.append("detailed_monitoring")
    if inputs.get("tenancy") == "dedicated":
        kinds += ["dedicated_fee", "dedicated_uplift"]
    return tuple(kinds)


def _launch_template(r: Mapping[str, Any], target: str) -> ResourceKinds:
    inputs = r.get("inputs") or {}
    kinds = ["block_volume"] if inputs.get("blockDeviceMappings") else []
    if (inputs.get("placement") or {}).get("tenancy") == "dedicated":
        kinds += ["dedicated_fee", "dedicated_uplift"]
    return tuple(kinds) or Free("a launch template without volumes or tenancy: its node group is billed")


def _pool(r: Mapping[str, Any], target: str) -> ResourceKinds:
    """A node group / node pool / agent pool: the accelerator pool's instances, or the system pool."""
    inputs = r.get("inputs") or {}
    labels = inputs.get("labels") or (inputs.get("nodeConfig") or {}).get("labels") or inputs.get("nodeLabels") \
        or {}
    system = labels.get("mlplan.dev/pool") == "system" or str(inputs.get("mode", "")).lower() == "system"
    if not system and labels.get("mlplan.dev/gpu") != "true":
        system = True  # a pool without accelerators is a system pool
    return ("system_nodes" if system else "instances", "block_volume")


def _vpc_endpoint(r: Mapping[str, Any], target: str) -> ResourceKinds:
    kind = (r.get("inputs") or {}).get("vpcEndpointType", "Gateway")
    return Free("S3 / DynamoDB gateway endpoints have no charge") if kind == "Gateway" else ("vpc_endpoint",)


def _eks_cluster(r: Mapping[str, Any], target: str) -> ResourceKinds:
    logs = (r.get("inputs") or {}).get("enabledClusterLogTypes")
    return ("k8s_control_plane", "control_plane_logs") if logs else ("k8s_control_plane",)


def _aks_cluster(r: Mapping[str, Any], target: str) -> ResourceKinds:
    inputs = r.get("inputs") or {}
    kinds = ["k8s_control_plane", "block_volume"]
    if inputs.get("agentPoolProfiles"):
        kinds.append("system_nodes")
    outbound = (inputs.get("networkProfile") or {}).get("outboundType", "loadBalancer")
    if outbound == "loadBalancer":  # AKS creates a Standard load balancer with an outbound public IP
        kinds += ["load_balancer", "public_ipv4"]
    elif outbound == "managedNATGateway":
        kinds += ["nat_gateway", "nat_gateway_data", "public_ipv4"]
    return tuple(kinds)


def _gcp_address(r: Mapping[str, Any], target: str) -> ResourceKinds:
    internal = (r.get("inputs") or {}).get("addressType") == "INTERNAL"
    return Free("internal addresses are free") if internal else ("public_ipv4",)


def _k8s_object_kinds(obj: Mapping[str, Any], target: str) -> tuple[str, ...]:
    """What one Kubernetes object makes the cloud bill: LoadBalancer Services (also a RayService's or RayCluster's
    serve / head service), Ingresses and Gateways become load balancers; PersistentVolumeClaims become volumes."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    lb = False
    if kind == "Service":
        lb = spec.get("type") == "LoadBalancer"
    elif kind in ("RayService", "RayCluster"):
        for svc in (spec.get("serveService"), (spec.get("rayClusterConfig") or spec).get("headServiceSpec")):
            lb = lb or ((svc or {}).get("spec") or svc or {}).get("type") == "LoadBalancer"
    elif kind in ("Ingress", "Gateway"):
        lb = True
    on_prem = target in ("kubeconfig", "local", "edge-fleet", "firmware")
    if lb:
        return () if on_prem else ("load_balancer", "load_balancer_data")
    if kind == "PersistentVolumeClaim":
        if target == "edge-fleet":
            return ()
        return ("onprem_storage",) if on_prem else ("model_cache",)
    return ()


LB_CHARTS = frozenset({"ingress-nginx", "traefik", "envoy-gateway", "kong", "istio-ingress", "gateway"})
"""Helm charts that create a LoadBalancer Service of their own."""


def _kubernetes(r: Mapping[str, Any], target: str) -> ResourceKinds:
    typ: str = r["type"]
    inputs = r.get("inputs") or {}
    if typ == "kubernetes:helm.sh/v3:Release" or typ == "kubernetes:helm.sh/v4:Chart":
        chart = str(inputs.get("chart") or inputs.get("name") or "")
        if chart.rsplit("/", 1)[-1] in LB_CHARTS and target in CLUSTER_TARGETS:
            return ("load_balancer", "load_balancer_data")
        return Free("a chart of operators / daemons running on the billed nodes")
    if typ.startswith("kubernetes:yaml/"):
        kinds: list[str] = []
        for obj in inputs.get("objs") or []:
            kinds += [k for k in _k8s_object_kinds(obj, target) if k not in kinds]
        return tuple(kinds) or Free("Kubernetes objects running on the billed nodes")
    kind = typ.rsplit(":", 1)[-1]
    found = _k8s_object_kinds({**inputs, "kind": kind}, target)
    return found or Free("Kubernetes objects running on the billed nodes")


Rule = tuple[str, ...] | Free | Callable[[Mapping[str, Any], str], ResourceKinds]

RESOURCE_RULES: dict[str, Rule] = {
    # ------------------------------------------------------------------------------------------- AWS
    "aws:ec2/instance:Instance": _ec2_instance,
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:eks/nodeGroup:NodeGroup": _pool,
    "aws:eks/cluster:Cluster": _eks_cluster,
    "aws:eks/addon:Addon": Free("EKS add-ons are free (they run on the billed nodes)"),
    "aws:eks/accessEntry:AccessEntry": IAM_FREE,
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": IAM_FREE,
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": IAM_FREE,
    "aws:eks/fargateProfile:FargateProfile": ("fargate",),
    "aws:ec2/natGateway:NatGateway": ("nat_gateway", "nat_gateway_data"),
    "aws:ec2/eip:Eip": ("public_ipv4",),
    "aws:ec2/vpc:Vpc": NET_FREE,
    "aws:ec2/subnet:Subnet": NET_FREE,
    "aws:ec2/routeTable:RouteTable": NET_FREE,
    "aws:ec2/route:Route": NET_FREE,
    "aws:ec2/routeTableAssociation:RouteTableAssociation": NET_FREE,
    "aws:ec2/internetGateway:InternetGateway": NET_FREE,
    "aws:ec2/securityGroup:SecurityGroup": Free("security groups are free"),
    "aws:ec2/securityGroupRule:SecurityGroupRule": Free("security groups are free"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": Free("security groups are free"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": Free("security groups are free"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": _vpc_endpoint,
    "aws:ec2/placementGroup:PlacementGroup": Free("placement groups are free"),
    "aws:lb/loadBalancer:LoadBalancer": ("load_balancer", "load_balancer_data"),
    "aws:lb/targetGroup:TargetGroup": CONFIG_FREE,
    "aws:lb/listener:Listener": CONFIG_FREE,
    "aws:kms/key:Key": ("kms_key", "kms_requests"),
    "aws:kms/alias:Alias": CONFIG_FREE,
    "aws:s3/bucket:Bucket": ("object_storage",),
    "aws:s3/bucketV2:BucketV2": ("object_storage",),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": CONFIG_FREE,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": CONFIG_FREE,
    "aws:s3/bucketVersioning:BucketVersioning": CONFIG_FREE,
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": CONFIG_FREE,
    "aws:s3/bucketPolicy:BucketPolicy": CONFIG_FREE,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": CONFIG_FREE,
    "aws:iam/role:Role": IAM_FREE,
    "aws:iam/rolePolicy:RolePolicy": IAM_FREE,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": IAM_FREE,
    "aws:iam/policy:Policy": IAM_FREE,
    "aws:iam/instanceProfile:InstanceProfile": IAM_FREE,
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": IAM_FREE,
    "aws:cloudwatch/logGroup:LogGroup": ("log_storage",),
    # ------------------------------------------------------------------------------------------- GCP
    "gcp:container/cluster:Cluster": ("k8s_control_plane",),
    "gcp:container/nodePool:NodePool": _pool,
    "gcp:compute/routerNat:RouterNat": ("nat_gateway", "nat_gateway_data", "public_ipv4"),
    "gcp:compute/address:Address": _gcp_address,
    "gcp:compute/forwardingRule:ForwardingRule": ("load_balancer", "load_balancer_data"),
    "gcp:compute/network:Network": NET_FREE,
    "gcp:compute/subnetwork:Subnetwork": NET_FREE,
    "gcp:compute/router:Router": Free("Cloud Router is free (its Cloud NAT is billed)"),
    "gcp:compute/firewall:Firewall": Free("firewall rules are free"),
    "gcp:kms/keyRing:KeyRing": Free("key rings are free (keys are billed)"),
    "gcp:kms/cryptoKey:CryptoKey": ("kms_key", "kms_requests"),
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": IAM_FREE,
    "gcp:storage/bucket:Bucket": ("object_storage",),
    "gcp:storage/bucketIAMMember:BucketIAMMember": IAM_FREE,
    "gcp:serviceaccount/account:Account": IAM_FREE,
    "gcp:serviceaccount/iAMMember:IAMMember": IAM_FREE,
    "gcp:projects/iAMMember:IAMMember": IAM_FREE,
    "gcp:projects/service:Service": Free("enabling an API is free"),
    # ----------------------------------------------------------------------------------------- Azure
    "azure-native:containerservice:ManagedCluster": _aks_cluster,
    "azure-native:containerservice:AgentPool": _pool,
    "azure-native:network:NatGateway": ("nat_gateway", "nat_gateway_data"),
    "azure-native:network:PublicIPAddress": ("public_ipv4",),
    "azure-native:network:LoadBalancer": ("load_balancer", "load_balancer_data"),
    "azure-native:network:VirtualNetwork": NET_FREE,
    "azure-native:network:Subnet": NET_FREE,
    "azure-native:network:NetworkSecurityGroup": Free("network security groups are free"),
    "azure-native:network:RouteTable": NET_FREE,
    "azure-native:resources:ResourceGroup": Free("resource groups are free"),
    "azure-native:keyvault:Vault": Free("a Key Vault has no monthly fee (keys and operations are billed)"),
    "azure-native:keyvault:Key": ("kms_key", "kms_requests"),
    "azure-native:storage:StorageAccount": ("object_storage",),
    "azure-native:storage:BlobContainer": CONFIG_FREE,
    "azure-native:managedidentity:UserAssignedIdentity": IAM_FREE,
    "azure-native:managedidentity:FederatedIdentityCredential": IAM_FREE,
    "azure-native:authorization:RoleAssignment": IAM_FREE,
    "azure-native:compute:DedicatedHostGroup": Free("a host group is free (its hosts are billed)"),
    "azure-native:compute:DedicatedHost": ("dedicated_host",),
    "azure-native:compute:DiskEncryptionSet": Free("a disk encryption set is free (its Key Vault key is billed)"),
}


def resource_kinds(resource: Mapping[str, Any], target: str) -> ResourceKinds | None:
    """The cost kinds a recorded resource (``{"type", "name", "inputs", "custom"}``, as :mod:`stacks.preview`
    records it) implies on a part of ``target``; :class:`Free` with the reason; None for a type no rule covers."""
    typ = str(resource.get("type", ""))
    rule = RESOURCE_RULES.get(typ)
    if rule is None:
        if typ.startswith("pulumi:providers:") or typ == "pulumi:pulumi:Stack":
            return Free("a Pulumi provider / stack: no cloud resource")
        if typ.startswith("kubernetes:"):  # before the component check: a ConfigGroup is a component
            return _kubernetes(resource, target)
        if resource.get("custom") is False:
            return Free("a component resource: its children are listed")
        return None
    if isinstance(rule, Free | tuple):
        return rule
    return rule(resource, target)


# ------------------------------------------------------------------------------------------------- prices


@dataclass(frozen=True, slots=True)
class Price:
    usd: float
    source: str
    where: str  # "" for a provider-wide row, else the row's region


@dataclass(frozen=True, slots=True)
class CloudPart:
    """What the bill needs to know about a cloud part (from the search's side and sizing)."""

    inst: Instance
    target: Target
    nodes: int
    replicas: int
    gpus_per_replica: int
    dtype: str
    purchase: str
    price_per_h: float
    tenancy: str
    data_class: str
    routing: str = "all"
    fraction: float = 1.0
    has_device: bool = True


class Biller:
    """Prices parts for one spec and catalog. Cheap per call: prices are looked up once per (provider, region,
    item), weight bytes once per dtype."""

    def __init__(self, spec: Spec, catalog: Catalog, arch: ModelArch) -> None:
        self.spec = spec
        self.a = spec.assumptions
        self.cat = catalog
        self.arch = arch
        self.traffic = traffic(spec, arch)
        self._prices: dict[tuple[str, str, str], Price] = {}
        self._weights: dict[str, float] = {}
        self._check_overrides()

    def _check_overrides(self) -> None:
        known = {k[2] for k in self.cat.services}
        providers = {k[0] for k in self.cat.services}
        for key in self.a.service_prices:
            provider, _, item = key.rpartition(".")
            if item not in known or (provider and provider not in providers):
                raise SpecError(f"assumptions.service_prices: unknown item {key!r}",
                                fix=f"use an item of the catalog's services ({', '.join(sorted(known))}), "
                                    f"optionally prefixed by the provider ({', '.join(sorted(providers))}.)")

    # ---------------------------------------------------------------------------------------- lookups
    def price(self, provider: str, region: str, item: str) -> Price:
        key = (provider, region, item)
        got = self._prices.get(key)
        if got is None:
            over = self.a.service_prices.get(f"{provider}.{item}", self.a.service_prices.get(item))
            if over is not None:
                name = f"{provider}.{item}" if f"{provider}.{item}" in self.a.service_prices else item
                got = Price(float(over), f"assumptions.service_prices.{name}", "")
            else:
                row = self.cat.service_price(provider, region, item)
                got = Price(row.usd, row.source, "" if row.region == "*" else row.region)
            self._prices[key] = got
        return got

    def weights(self, dtype: str) -> float:
        got = self._weights.get(dtype)
        if got is None:
            got = self._weights[dtype] = float(weights_bytes(shape_of(self.arch), dtype))
        return got

    def _line(self, kind: str, item: str, usd: float, p: Price | str) -> BillLine:
        src = p if isinstance(p, str) else p.source
        return BillLine(KINDS[kind][0], kind, item, usd, src)

    # ------------------------------------------------------------------------------------------- cloud
    def cloud(self, part: CloudPart, *, hours: float | None = None, training: bool = False) -> CostBreakdown:
        """Every line of a cloud part for ``hours`` (default: a month of ``hours_per_month``)."""
        a, inst = self.a, part.inst
        hours = a.hours_per_month if hours is None else hours
        months = hours / a.hours_per_month
        prov, reg, target = inst.provider, inst.region, part.target
        kinds = part_kinds(target, prov, tenancy=part.tenancy, data_class=part.data_class, training=training)
        pool = SYSTEM_POOLS.get(target)
        sys_n = pool.nodes if pool else 0
        private = is_private(part.data_class, part.routing)
        weights = self.weights(part.dtype)
        t = self.traffic
        requests = 0.0 if training else t.requests_per_month * part.fraction * months
        lines: list[BillLine] = []
        notes: list[str] = []

        def at(p: Price) -> str:
            return f" ({p.where})" if p.where else ""

        for kind in kinds:
            if kind == "instances":
                spot = " spot" if part.purchase == "spot" else ""
                lines.append(self._line(kind, f"{part.nodes} x {inst.instance}{spot} x {_h(hours)} x "
                                              f"${part.price_per_h:.4f}/h", part.price_per_h * hours * part.nodes,
                                        inst.price_source or inst.source))
            elif kind == "dedicated_fee":
                p = self.price(prov, reg, "dedicated_region_fee")
                lines.append(self._line(kind, f"dedicated instances per-region fee: {_h(hours)} x ${p.usd:g}/h "
                                              "(once per account and region)",
                                        p.usd * hours, p))
            elif kind == "dedicated_uplift":
                if inst.dedicated_usd_per_h is not None:
                    extra = max(0.0, inst.dedicated_usd_per_h - inst.on_demand_usd_per_h)
                    src, how = "catalog row dedicated_usd_per_h", f"${inst.dedicated_usd_per_h:.4f}/h dedicated"
                else:
                    extra = inst.on_demand_usd_per_h * a.dedicated_tenancy_premium
                    src = ("assumption dedicated_tenancy_premium (the catalog has no dedicated-tenancy price for "
                           f"{inst.instance}; set dedicated_usd_per_h in an overlay row)")
                    how = f"{a.dedicated_tenancy_premium:.0%} over ${inst.on_demand_usd_per_h:.4f}/h (assumed)"
                label = "sole-tenant premium" if prov == "gcp" else "dedicated tenancy"
                lines.append(self._line(kind, f"{label}: {part.nodes} node(s) x {_h(hours)}, {how}",
                                        extra * hours * part.nodes, src))
            elif kind == "dedicated_host":
                p = self.price(prov, reg, "dedicated_host")
                lines.append(self._line(kind, f"dedicated hosts: {part.nodes} x {_h(hours)} x ${p.usd:g}/h",
                                        p.usd * hours * part.nodes, p))
            elif kind == "system_nodes":
                assert pool is not None
                p = self.price(prov, reg, "system_node")
                lines.append(self._line(kind, f"system pool: {pool.nodes} x {pool.machine} x {_h(hours)} x "
                                              f"${p.usd:g}/h{at(p)}", p.usd * hours * pool.nodes, p))
            elif kind == "k8s_control_plane":
                p = self.price(prov, reg, "k8s_control_plane")
                name = {"aws": "EKS", "gcp": "GKE (regional)", "azure": "AKS Standard"}[prov]
                lines.append(self._line(kind, f"{name} control plane: {_h(hours)} x ${p.usd:g}/h",
                                        p.usd * hours, p))
            elif kind == "control_plane_logs":
                p = self.price(prov, reg, "log_ingestion")
                gb = a.control_plane_log_gb_per_month * months
                lines.append(self._line(kind, f"control-plane logs: {gb:,.1f} GB x ${p.usd:g}/GB ingested",
                                        p.usd * gb, p))
            elif kind == "detailed_monitoring":
                p = self.price(prov, reg, "detailed_monitoring")
                lines.append(self._line(kind, f"detailed monitoring: {part.nodes} instance(s) x ${p.usd:g}/month",
                                        p.usd * part.nodes * months, p))
            elif kind == "kms_key":
                p = self.price(prov, reg, "kms_key")
                lines.append(self._line(kind, f"encryption key: 1 x ${p.usd:g}/month", p.usd * months, p))
            elif kind == "kms_requests":
                p = self.price(prov, reg, "kms_requests")
                req = a.kms_requests_per_month * months
                billable = max(0.0, req - KMS_FREE_REQUESTS.get(prov, 0.0) * months)
                free = f" ({KMS_FREE_REQUESTS[prov]:,.0f}/month free)" if prov in KMS_FREE_REQUESTS else ""
                lines.append(self._line(kind, f"key requests: {req:,.0f}{free} x ${p.usd:g}/10k",
                                        billable / 1e4 * p.usd, p))
            elif kind == "nat_gateway":
                p = self.price(prov, reg, "nat_gateway")
                if prov == "gcp":
                    vm = self.price(prov, reg, "nat_gateway_vm")
                    vms = part.nodes + sys_n
                    rate = min(p.usd, vm.usd * vms)
                    lines.append(self._line(kind, f"Cloud NAT: {vms} VMs x ${vm.usd:g}/h (cap ${p.usd:g}/h) x "
                                                  f"{_h(hours)}", rate * hours, p))
                else:
                    lines.append(self._line(kind, f"NAT gateway: 1 x {_h(hours)} x ${p.usd:g}/h{at(p)}",
                                            p.usd * hours, p))
            elif kind == "nat_gateway_data":
                p = self.price(prov, reg, "nat_gateway_data")
                gb = a.nat_gb_per_node_month * (part.nodes + sys_n) * (1.0 if training else months)
                lines.append(self._line(kind, f"NAT data: {part.nodes + sys_n} node(s) x "
                                              f"{a.nat_gb_per_node_month:g} GB (images, updates) x ${p.usd:g}/GB"
                                              f"{at(p)}", gb * p.usd, p))
            elif kind == "public_ipv4":
                p = self.price(prov, reg, "public_ipv4")
                n, why = 1, {"aws": "NAT", "gcp": "Cloud NAT", "azure": "AKS outbound"}[prov]
                if target in CLUSTER_TARGETS and not training and not private and prov in ("aws", "azure"):
                    extra = PUBLIC_LB_ADDRESSES.get(prov, 1)
                    n, why = n + extra, why + f" + {extra} on the internet-facing load balancer"
                lines.append(self._line(kind, f"public IPv4: {n} ({why}) x {_h(hours)} x ${p.usd:g}/h",
                                        n * p.usd * hours, p))
            elif kind == "load_balancer":
                lines.append(self._lb_hours(prov, reg, target, hours, private, training))
            elif kind == "load_balancer_data":
                lines.append(self._lb_data(prov, reg, requests, hours, part.fraction))
            elif kind == "egress_internet":
                p = self.price(prov, reg, "egress_internet")
                gb = requests * t.response_bytes / GIB
                lines.append(self._line(kind, f"egress: {requests:,.0f} responses x {t.basis} = {gb:,.1f} GB x "
                                              f"${p.usd:g}/GB", gb * p.usd, p))
            elif kind == "block_volume":
                p = self.price(prov, reg, "block_volume")
                disk = node_disk_gib(weights, gpus_per_replica=part.gpus_per_replica,
                                     gpus_per_node=inst.accelerator_count, has_device=part.has_device)
                gib = part.nodes * disk + (sys_n * pool.disk_gib if pool else 0)
                text = f"node volumes: {part.nodes} x {disk:,} GiB" + \
                    (f" + {sys_n} x {pool.disk_gib} GiB system" if pool else "")
                lines.append(self._line(kind, f"{text} x ${p.usd:g}/GiB-month", gib * p.usd * months, p))
            elif kind == "model_cache":
                p = self.price(prov, reg, "block_volume")
                gib = model_volume_gib(weights)
                pods = part.replicas * max(1, math.ceil(part.gpus_per_replica / inst.accelerator_count))
                lines.append(self._line(kind, f"model cache: {pods} pod(s) x {gib:,} GiB x ${p.usd:g}/GiB-month",
                                        pods * gib * p.usd * months, p))
            elif kind == "object_storage":
                p = self.price(prov, reg, "object_storage")
                stored = weights / GIB
                lines.append(self._line(kind, f"weights bucket: {stored:,.1f} GiB x ${p.usd:g}/GiB-month",
                                        stored * p.usd * months, p))
            else:  # pragma: no cover - part_kinds and this loop are kept in step by the tests
                raise AssertionError(f"no price rule for {kind}")
        if part.purchase == "spot":
            notes.append(f"spot {inst.instance} in {inst.provider}/{inst.region}: {inst.spot_risk()}")
        return CostBreakdown.of(lines, tuple(notes))

    def _lb_hours(self, prov: str, reg: str, target: str, hours: float, private: bool, training: bool) -> BillLine:
        if prov == "aws":
            p = self.price(prov, reg, "load_balancer_nlb")
            what = f"{'internal' if private else 'internet-facing'} NLB"
            return self._line("load_balancer", f"{what}: 1 x {_h(hours)} x ${p.usd:g}/h", p.usd * hours, p)
        p = self.price(prov, reg, "load_balancer")
        if prov == "azure":  # the outbound load balancer AKS creates; an internal serving one is a second
            n = 2 if private and not training else 1
            what = "outbound + internal serving load balancer" if n == 2 else \
                "load balancer (outbound and serving rules)"
            return self._line("load_balancer", f"{what}: {n} x {_h(hours)} x ${p.usd:g}/h", n * p.usd * hours, p)
        what = f"{'internal' if private else 'external'} passthrough load balancer (forwarding rule)"
        return self._line("load_balancer", f"{what}: {_h(hours)} x ${p.usd:g}/h", p.usd * hours, p)

    def _lb_data(self, prov: str, reg: str, requests: float, hours: float, fraction: float) -> BillLine:
        t = self.traffic
        if prov == "aws":
            p = self.price(prov, reg, "load_balancer_nlb_lcu")
            rps = self.spec.workload.requests_per_s * fraction if self.spec.workload.kind == "inference" else 0.0
            gb_h = rps * 3600.0 * (t.request_bytes + t.response_bytes) / 1e9
            nlcu = max(rps / NLB_NEW_FLOWS_PER_NLCU, gb_h / NLB_GB_PER_NLCU_HOUR)
            return self._line("load_balancer_data", f"NLB capacity: {nlcu:.3f} NLCU x {_h(hours)} x "
                                                     f"${p.usd:g}/NLCU-h", nlcu * hours * p.usd, p)
        p = self.price(prov, reg, "load_balancer_data")
        per = t.request_bytes + (t.response_bytes if prov == "azure" else 0.0)  # GCP bills inbound data only
        gb = requests * per / GIB
        way = "in and out" if prov == "azure" else "inbound"
        return self._line("load_balancer_data", f"load balancer data ({way}): {gb:,.1f} GB x ${p.usd:g}/GB",
                          gb * p.usd, p)

    # ----------------------------------------------------------------------------------------- on-prem
    def onprem(self, srv: OnPremServer, servers: int, dtype: str, *, hours: float | None = None) -> CostBreakdown:
        """Amortized capex, power, operations, and the network and storage the SKU lacks (catalog ``onprem_*``)."""
        a = self.a
        months = (a.hours_per_month if hours is None else hours) / a.hours_per_month
        lines = [BillLine(x.group, x.kind, x.item, x.usd * months, x.source)
                 for x in onprem_monthly(srv.capex_usd, srv.power_w, servers, a)]
        net = self.price("onprem", srv.site, "onprem_network")
        lines.append(self._line("onprem_network", f"network: {servers} server(s) x ${net.usd:g}/server-month"
                                + (" (inside operations)" if net.usd == 0 else ""), net.usd * servers * months, net))
        st = self.price("onprem", srv.site, "onprem_storage")
        gib = self.weights(dtype) / GIB
        lines.append(self._line("onprem_storage", f"weights storage: {gib:,.1f} GiB x ${st.usd:g}/GiB-month",
                                gib * st.usd * months, st))
        return CostBreakdown.of(lines)

    # -------------------------------------------------------------------------------------------- edge
    def edge(self, dev: EdgeDevice, devices: int, data_class: str) -> CostBreakdown:
        """Devices and power from the device row; connectivity only for fleets that connect (not air-gapped)."""
        a = self.a
        lines = edge_monthly(dev.price_usd, dev.power_w, devices, a)
        if "edge_connectivity" in part_kinds("edge-fleet", "edge", tenancy="owned", data_class=data_class):
            if "edge_connectivity_usd_per_device_month" in a.model_fields_set:
                p = Price(a.edge_connectivity_usd_per_device_month,
                          "assumption edge_connectivity_usd_per_device_month", "")
            else:
                p = self.price("edge", "*", "edge_connectivity")
            lines.append(self._line("edge_connectivity", f"connectivity ${p.usd:g}/device/month x {devices}",
                                    p.usd * devices, p))
        return CostBreakdown.of(lines)


# ----------------------------------------------------------------------------------- bill vs the stack


@dataclass(frozen=True, slots=True)
class Finding:
    """One recorded resource that the bill does not cover: ``kind`` None for a type no rule maps."""

    type: str
    name: str
    part: str
    kind: str | None


@dataclass(frozen=True, slots=True)
class BillCheck:
    """The resources of a plan's stack against its bill (see :func:`check_resources`)."""

    unmapped: tuple[Finding, ...]  # types no rule covers: add a rule (a cost kind or Free with the reason)
    missing: tuple[Finding, ...]  # billable resources whose kind the part's bill lacks
    billed: dict[str, frozenset[str]]  # part key -> kinds the bill has
    created: dict[str, frozenset[str]]  # part key -> kinds the resources imply
    free: dict[str, str]  # free type -> reason
    from_table: bool  # the plan's cost lines carry no kinds (a hand-made plan): the table of part_kinds was used

    @property
    def ok(self) -> bool:
        return not self.unmapped and not self.missing

    def billed_not_created(self) -> dict[str, frozenset[str]]:
        """Kinds billed with no resource in the stack that implies them (the stack is expected to grow them, or
        the line is a traffic-only / attribute line)."""
        return {k: v - self.created.get(k, frozenset()) for k, v in self.billed.items()}


def parts_of(name: str, parts: Any) -> list[Any]:
    """The parts a resource belongs to, by its name's prefix (``Part.names.resource_prefix``, the longest that
    matches; the GKE/AKS builders cut names to 30 characters); every part when none matches."""
    exact = [p for p in parts if name.startswith(p.names.resource_prefix)]
    if exact:
        return [max(exact, key=lambda p: len(p.names.resource_prefix))]
    return [p for p in parts if name.startswith(p.names.resource_prefix[:30])] or list(parts)


def check_resources(plan: Any, resources: list[Mapping[str, Any]]) -> BillCheck:
    """Check every resource a plan's stack creates (as :mod:`stacks.preview` records them) against the plan's bill:
    each must map to a rule (:func:`resource_kinds`), and each billable kind must appear among the cost lines of
    its part. ``plan`` is a :class:`planner.plan.Plan` (typed loosely to keep this module's imports small)."""
    parts = plan.parts
    training = plan.workload == "training"
    billed: dict[str, frozenset[str]] = {}
    from_table = not any(line.kind for line in plan.cost.lines)
    for p in parts:
        if from_table:
            billed[p.names.key] = frozenset(part_kinds(p.target, p.provider, tenancy=p.tenancy,
                                                       data_class=p.data_class, training=training))
        else:
            billed[p.names.key] = frozenset(x.kind for x in plan.cost.lines if x.part == p.names.key and x.kind)
    unmapped: list[Finding] = []
    missing: list[Finding] = []
    created: dict[str, set[str]] = {p.names.key: set() for p in parts}
    free: dict[str, str] = {}
    for r in resources:
        typ, name = str(r.get("type")), str(r.get("name"))
        owners = parts_of(name, parts)
        results = [(p, resource_kinds(r, p.target)) for p in owners]
        if all(k is None for _, k in results):
            unmapped.append(Finding(typ, name, owners[0].names.key, None))
            continue
        for p, kinds in results:
            if isinstance(kinds, Free):
                free[typ] = kinds.reason
                continue
            for kind in kinds or ():
                created[p.names.key].add(kind)
        for kind in {k for _, ks in results if isinstance(ks, tuple) for k in ks}:
            if not any(kind in billed[p.names.key] for p, ks in results if isinstance(ks, tuple) and kind in ks):
                missing.append(Finding(typ, name, owners[0].names.key, kind))
    return BillCheck(tuple(unmapped), tuple(missing), billed, {k: frozenset(v) for k, v in created.items()}, free,
                     from_table)
