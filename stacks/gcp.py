"""GCP building blocks as Pulumi ComponentResources (pulumi-gcp 10.x): a private GKE cluster for one plan part.

Every component takes an explicit ``gcp.Provider`` pinned to the part's project and region, and every regional or
zonal resource names its location explicitly, so nothing lands outside the region the caller chose inside the
plan's ``allowed_regions``. Secure by default:

- nodes have no public IPs (private nodes) and reach the internet only through Cloud NAT; the control plane is
  private-endpoint-only when ``private`` (confidential / restricted data), else reachable only from the VPC and
  the CIDRs the caller lists; Dataplane V2 enforces the manifests' NetworkPolicies;
- Workload Identity: pods get Google credentials only through a Kubernetes service account bound to a Google
  service account, which may read (``roles/storage.objectViewer``) the model bucket and nothing else; nodes run as
  a dedicated service account with ``roles/container.defaultNodeServiceAccount`` only (never the Compute Engine
  default account, which holds Editor);
- the model bucket has uniform bucket-level access, public access prevention enforced and versioning; with
  ``cmek`` it, the cluster's Secrets (application-layer encryption) and the node boot disks use a Cloud KMS key
  with 90-day rotation;
- shielded nodes (secure boot, integrity monitoring), the GKE metadata server, legacy metadata endpoints off.

References: GKE private clusters and Cloud NAT (https://cloud.google.com/kubernetes-engine/docs/concepts/
private-cluster-concept), Workload Identity Federation for GKE (https://cloud.google.com/kubernetes-engine/docs/
how-to/workload-identity), GPU node pools and driver installation (https://cloud.google.com/kubernetes-engine/docs/
how-to/gpus: ``gpu_driver_version``, the automatic ``nvidia.com/gpu=present:NoSchedule`` taint), TPU node pools
(https://cloud.google.com/kubernetes-engine/docs/how-to/tpus: ``tpu_topology``, ``google.com/tpu``), CMEK for
Cloud Storage (https://cloud.google.com/storage/docs/encryption/customer-managed-keys), GKE internal load balancer
(https://cloud.google.com/kubernetes-engine/docs/how-to/internal-load-balancing).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_gcp as gcp

from planner.errors import InputError
from planner.names import dns_label as dns_name
from planner.names import gcp_prefix
from stacks.clouds import PartOutputs, Taint, gke_account_id

SUBNET_CIDR = "10.50.0.0/20"
PODS_CIDR = "10.52.0.0/14"
SERVICES_CIDR = "10.56.0.0/20"
#: GKE's own annotation for an internal passthrough Network Load Balancer.
#: Source: https://cloud.google.com/kubernetes-engine/docs/how-to/internal-load-balancing
INTERNAL_LB_ANNOTATIONS = {"networking.gke.io/load-balancer-type": "Internal"}
#: The one project-level role the node service account needs (logs, metrics, image pulls from the project).
#: Source: https://cloud.google.com/kubernetes-engine/docs/how-to/hardening-your-cluster#use_least_privilege_sa
NODE_SA_ROLE = "roles/container.defaultNodeServiceAccount"
#: Read-only access to the objects of one bucket (storage.objects.get / list).
#: Source: https://cloud.google.com/storage/docs/access-control/iam-roles
READER_ROLE = "roles/storage.objectViewer"
KMS_ROLE = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
#: Machine series whose boot disks must be Hyperdisk. Sources: the A3 Ultra / A4 / A4X machine-series pages
#: (https://cloud.google.com/compute/docs/accelerator-optimized-machines: "supports only Hyperdisk") and TPU v6e on
#: GKE (https://cloud.google.com/kubernetes-engine/docs/concepts/plan-tpus).
_HYPERDISK_ONLY = ("a3-ultragpu", "a4-highgpu", "a4x-", "ct6e-")
_ZONE = re.compile(r"^[a-z]+-[a-z]+\d+-[a-z]$")
_TOPOLOGY = re.compile(r"^\d+(x\d+){1,2}$")


#: The catalog's accelerator id -> GKE's accelerator type name (``--accelerator type=...``). Source: GKE GPU
#: platforms (https://cloud.google.com/kubernetes-engine/docs/how-to/gpus#multiple-gpus) and the machine-series pages
#: (A2: nvidia-tesla-a100 / nvidia-a100-80gb, A3: nvidia-h100-80gb / nvidia-h100-mega-80gb, A3 Ultra:
#: nvidia-h200-141gb, A4: nvidia-b200, G2: nvidia-l4, N1: nvidia-tesla-t4).
GKE_ACCELERATOR_TYPES: dict[str, str] = {
    "t4": "nvidia-tesla-t4", "l4": "nvidia-l4", "a100-40gb": "nvidia-tesla-a100", "a100-80gb": "nvidia-a100-80gb",
    "h100-sxm": "nvidia-h100-80gb", "h100-mega": "nvidia-h100-mega-80gb", "h200": "nvidia-h200-141gb",
    "b200": "nvidia-b200", "tpu-v5e": "tpu-v5-lite-podslice", "tpu-v6e": "tpu-v6e-slice",
}


def gke_accelerator_type(accelerator: str) -> str:
    """GKE's name for a catalog accelerator id (``l4`` -> ``nvidia-l4``)."""
    try:
        return GKE_ACCELERATOR_TYPES[accelerator]
    except KeyError:
        raise InputError(f"no GKE accelerator type for catalog accelerator {accelerator!r}",
                         fix="add it to stacks.gcp.GKE_ACCELERATOR_TYPES with its source") from None


def accelerator_kind(accelerator_type: str | None) -> Literal["nvidia", "tpu", "none"]:
    """``nvidia-*`` GKE accelerator types are GPUs, ``tpu-*`` ones TPUs (GKE's own names, e.g. ``nvidia-l4``,
    ``nvidia-h100-80gb``, ``tpu-v5-lite-podslice``)."""
    if not accelerator_type:
        return "none"
    if accelerator_type.startswith("nvidia-"):
        return "nvidia"
    if accelerator_type.startswith("tpu-"):
        return "tpu"
    raise InputError(f"unknown GKE accelerator type {accelerator_type!r}",
                     fix="use GKE's name: nvidia-l4, nvidia-tesla-a100, nvidia-a100-80gb, nvidia-h100-80gb, "
                         "nvidia-h200-141gb, nvidia-b200, or tpu-v5-lite-podslice, tpu-v6e-slice ...")


def boot_disk_type(machine_type: str) -> str:
    """``hyperdisk-balanced`` for the series that support only Hyperdisk, else ``pd-balanced``."""
    return "hyperdisk-balanced" if machine_type.startswith(_HYPERDISK_ONLY) else "pd-balanced"


def tpu_chips(topology: str) -> int:
    """Chips in a TPU slice topology (``2x4`` -> 8, ``4x4x4`` -> 64)."""
    return math.prod(int(d) for d in topology.split("x"))


def _account_id(prefix: str, suffix: str) -> str:
    """A Google service-account id (see :func:`stacks.clouds.gke_account_id`)."""
    return gke_account_id(prefix, suffix)


@dataclass(frozen=True)
class GkePartArgs:
    """One plan part on GKE, in the caller's terms (the lead maps plan fields onto these).

    ``zones`` are the zones the caller allows (inside ``region``, inside ``allowed_regions``); the system pool
    spans them, the accelerator pool sits in ``accelerator_zone`` (default: the first), because GPU and TPU capacity
    is zonal and a replica that spans nodes wants them close. ``nodes`` / ``max_nodes`` count accelerator nodes.
    ``accelerator_count`` is per node (A2/A3/G2 machine types come with a fixed count; GKE still needs it named).
    ``tpu_topology`` (e.g. ``2x4``) makes a TPU slice pool (``accelerator_type`` ``tpu-*``)."""

    name: str
    project: str
    region: str
    zones: tuple[str, ...]
    machine_type: str
    accelerator_type: str | None
    accelerator_count: int
    accelerator: str  # the catalog's accelerator id (l4, h100-sxm, ...): node label mlplan.dev/accelerator
    nodes: int
    max_nodes: int
    bucket_name: str
    model_prefix: str
    serving_namespace: str
    serving_service_account: str
    spot: bool = False
    disk_gib: int = 200
    private: bool = True
    cmek: bool = False
    internal_lb: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    tpu_topology: str | None = None
    accelerator_zone: str | None = None
    system_machine_type: str = "e2-standard-4"
    system_nodes: int = 3
    """system nodes in all, one per zone in the first ``system_nodes`` zones (the rest in the last ones)"""
    system_disk_gib: int = 100
    release_channel: str = "REGULAR"
    gpu_driver_version: str = "LATEST"
    authorized_networks: tuple[str, ...] = ()
    kms_protection_level: str = "SOFTWARE"

    def __post_init__(self) -> None:
        if not self.zones:
            raise InputError(f"GKE part {self.name}: no zones given", fix=f"pass zones of {self.region}")
        for z in self.zones:
            if not (_ZONE.match(z) and z.rsplit("-", 1)[0] == self.region):
                raise InputError(f"GKE part {self.name}: zone {z} is not a zone of region {self.region}",
                                 fix=f"pass zones such as {self.region}-a inside the plan's region")
        if self.accelerator_zone is not None and self.accelerator_zone not in self.zones:
            raise InputError(f"GKE part {self.name}: accelerator zone {self.accelerator_zone} is not in "
                             f"{', '.join(self.zones)}", fix="pick one of the zones passed")
        if self.nodes < 1 or self.max_nodes < self.nodes:
            raise InputError(f"GKE part {self.name}: nodes {self.nodes}, max_nodes {self.max_nodes}",
                             fix="need 1 <= nodes <= max_nodes")
        kind = accelerator_kind(self.accelerator_type)
        if kind != "none" and self.accelerator_count < 1:
            raise InputError(f"GKE part {self.name}: {self.accelerator_type} with {self.accelerator_count} per node",
                             fix="pass the accelerators per node (>= 1)")
        if self.tpu_topology is not None:
            if kind != "tpu" or not _TOPOLOGY.match(self.tpu_topology):
                raise InputError(f"GKE part {self.name}: TPU topology {self.tpu_topology!r} for "
                                 f"{self.accelerator_type}", fix="a topology like 2x4 or 4x4x4 with a tpu-* type")
            per_slice = tpu_chips(self.tpu_topology)
            if per_slice % self.accelerator_count or self.nodes % (per_slice // self.accelerator_count):
                raise InputError(f"GKE part {self.name}: {self.nodes} nodes x {self.accelerator_count} chips do not "
                                 f"make whole {self.tpu_topology} slices of {per_slice} chips",
                                 fix="nodes must be a multiple of chips per slice / chips per node")
        if self.private and any(c in ("0.0.0.0/0", "::/0") for c in self.authorized_networks):
            raise InputError(f"GKE part {self.name}: a private cluster with the whole internet authorized",
                             fix="drop 0.0.0.0/0 from authorized_networks")

    @property
    def kind(self) -> Literal["nvidia", "tpu", "none"]:
        return accelerator_kind(self.accelerator_type)

    @property
    def gpu_zone(self) -> str:
        return self.accelerator_zone or self.zones[0]

    @property
    def device_resource(self) -> str:
        return {"nvidia": "nvidia.com/gpu", "tpu": "google.com/tpu", "none": ""}[self.kind]


def _opts(parent: pulumi.Resource, provider: gcp.Provider, **kw: Any) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, provider=provider, **kw)


def _labels(args: GkePartArgs) -> dict[str, str]:
    return {"managed-by": "mlplan", **{dns_name(k, 63): dns_name(v, 63) for k, v in args.labels.items()}}


class GcpNetwork(pulumi.ComponentResource):
    """A custom-mode VPC with one private subnet (pod and service secondary ranges, Private Google Access) and a
    Cloud Router + Cloud NAT for egress from nodes without public IPs. No firewall rule admits the internet."""

    def __init__(self, name: str, *, region: str, provider: gcp.Provider,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:gcp:Network", name, None, opts)
        self.network = gcp.compute.Network(f"{name}-vpc", name=f"{name}-vpc", auto_create_subnetworks=False,
                                           routing_mode="REGIONAL", opts=_opts(self, provider))
        self.subnet = gcp.compute.Subnetwork(
            f"{name}-nodes", name=f"{name}-nodes", region=region, network=self.network.id, ip_cidr_range=SUBNET_CIDR,
            private_ip_google_access=True,
            secondary_ip_ranges=[{"range_name": "pods", "ip_cidr_range": PODS_CIDR},
                                 {"range_name": "services", "ip_cidr_range": SERVICES_CIDR}],
            log_config={"aggregation_interval": "INTERVAL_5_MIN", "flow_sampling": 0.5,
                        "metadata": "INCLUDE_ALL_METADATA"},
            opts=_opts(self, provider))
        router = gcp.compute.Router(f"{name}-router", name=f"{name}-router", region=region,
                                    network=self.network.id, opts=_opts(self, provider))
        gcp.compute.RouterNat(f"{name}-nat", name=f"{name}-nat", router=router.name, region=region,
                              nat_ip_allocate_option="AUTO_ONLY",
                              source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
                              log_config={"enable": True, "filter": "ERRORS_ONLY"}, opts=_opts(self, provider))
        self.register_outputs({"network": self.network.id, "subnet": self.subnet.id})


class KmsKey(pulumi.ComponentResource):
    """A Cloud KMS key ring and key (90-day rotation) in the region, usable by the Google service agents named in
    ``agents`` (Cloud Storage, GKE, Compute Engine), each with encrypt/decrypt on this key only.

    Key rings cannot be deleted in GCP: a destroyed stack leaves the (empty) ring, and a new stack needs a new name.
    """

    def __init__(self, name: str, *, region: str, agents: dict[str, pulumi.Input[str]], protection_level: str,
                 provider: gcp.Provider, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:gcp:KmsKey", name, None, opts)
        ring = gcp.kms.KeyRing(f"{name}-ring", name=f"{name}-ring", location=region, opts=_opts(self, provider))
        self.key = gcp.kms.CryptoKey(f"{name}-key", name=f"{name}-key", key_ring=ring.id, purpose="ENCRYPT_DECRYPT",
                                     rotation_period="7776000s",
                                     version_template={"algorithm": "GOOGLE_SYMMETRIC_ENCRYPTION",
                                                       "protection_level": protection_level},
                                     opts=_opts(self, provider))
        self.grants = [gcp.kms.CryptoKeyIAMMember(f"{name}-{short}", crypto_key_id=self.key.id, role=KMS_ROLE,
                                                  member=pulumi.Output.concat("serviceAccount:", email),
                                                  opts=_opts(self, provider))
                       for short, email in agents.items()]
        self.id = self.key.id
        self.register_outputs({"key": self.key.id})


class GcsModelBucket(pulumi.ComponentResource):
    """The weights bucket: in the region, uniform bucket-level access, public access prevention enforced,
    versioning on, and the CMEK default key when given."""

    def __init__(self, name: str, *, bucket_name: str, region: str, kms_key: pulumi.Input[str] | None,
                 labels: dict[str, str], provider: gcp.Provider, depends_on: list[pulumi.Resource] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:gcp:ModelBucket", name, None, opts)
        extra: dict[str, Any] = {"encryption": {"default_kms_key_name": kms_key}} if kms_key is not None else {}
        self.bucket = gcp.storage.Bucket(
            name, name=bucket_name, location=region, uniform_bucket_level_access=True,
            public_access_prevention="enforced", versioning={"enabled": True}, force_destroy=False,
            labels=labels, **extra, opts=_opts(self, provider, depends_on=depends_on or []))
        self.name = self.bucket.name
        self.register_outputs({"bucket": self.bucket.name})


class GkeCluster(pulumi.ComponentResource):
    """A regional GKE cluster (private nodes, Workload Identity, release channel, Dataplane V2), a system node pool
    over the zones and one accelerator node pool (GPU with GKE-installed NVIDIA drivers, or a TPU slice)."""

    def __init__(self, name: str, *, args: GkePartArgs, network: GcpNetwork, kms_key: pulumi.Input[str] | None,
                 provider: gcp.Provider, depends_on: list[pulumi.Resource] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:gcp:GkeCluster", name, None, opts)
        labels = _labels(args)
        self.node_sa = gcp.serviceaccount.Account(f"{name}-nodes", account_id=_account_id(name, "nodes"),
                                                  display_name=f"mlplan {name} GKE nodes", project=args.project,
                                                  opts=_opts(self, provider))
        node_role = gcp.projects.IAMMember(f"{name}-nodes-role", project=args.project, role=NODE_SA_ROLE,
                                           member=self.node_sa.member, opts=_opts(self, provider))
        authorized = [{"cidr_block": SUBNET_CIDR, "display_name": "cluster VPC"}]
        if not args.private:
            authorized += [{"cidr_block": c, "display_name": f"authorized-{i}"}
                           for i, c in enumerate(args.authorized_networks)]
        extra: dict[str, Any] = {}
        if kms_key is not None:
            extra["database_encryption"] = {"state": "ENCRYPTED", "key_name": kms_key}
        self.cluster = gcp.container.Cluster(
            name, name=name, location=args.region, node_locations=list(args.zones), project=args.project,
            network=network.network.id, subnetwork=network.subnet.id,
            remove_default_node_pool=True, initial_node_count=1, deletion_protection=False,
            release_channel={"channel": args.release_channel},
            workload_identity_config={"workload_pool": f"{args.project}.svc.id.goog"},
            ip_allocation_policy={"cluster_secondary_range_name": "pods", "services_secondary_range_name": "services"},
            private_cluster_config={"enable_private_nodes": True, "enable_private_endpoint": args.private},
            master_authorized_networks_config={"cidr_blocks": authorized, "gcp_public_cidrs_access_enabled": False},
            master_auth={"client_certificate_config": {"issue_client_certificate": False}},
            datapath_provider="ADVANCED_DATAPATH", enable_shielded_nodes=True, enable_legacy_abac=False,
            resource_labels=labels, **extra,
            opts=_opts(self, provider, depends_on=[node_role, *(depends_on or [])],
                       ignore_changes=["initialNodeCount"]))
        base_config: dict[str, Any] = {
            "service_account": self.node_sa.email, "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            "workload_metadata_config": {"mode": "GKE_METADATA"},
            "shielded_instance_config": {"enable_secure_boot": True, "enable_integrity_monitoring": True},
            "metadata": {"disable-legacy-endpoints": "true"}, "resource_labels": labels,
        }
        if kms_key is not None:
            base_config["boot_disk_kms_key"] = kms_key
        self.system_pool = gcp.container.NodePool(
            f"{name}-system", name="system", cluster=self.cluster.id, location=args.region,
            node_locations=list(args.zones)[:max(1, args.system_nodes)],
            node_count=max(1, -(-args.system_nodes // len(args.zones))), project=args.project,
            node_config={**base_config, "machine_type": args.system_machine_type, "disk_size_gb": args.system_disk_gib,
                         "disk_type": boot_disk_type(args.system_machine_type),
                         "labels": {"mlplan.dev/pool": "system"}},
            management={"auto_repair": True, "auto_upgrade": True}, opts=_opts(self, provider))
        self.accelerator_labels = {"mlplan.dev/pool": "accelerators", "mlplan.dev/gpu": "true",
                                   "mlplan.dev/accelerator": args.accelerator}
        self.taints = accelerator_taints(args)
        node_config: dict[str, Any] = {
            **base_config, "machine_type": args.machine_type, "disk_size_gb": args.disk_gib,
            "disk_type": boot_disk_type(args.machine_type), "spot": args.spot, "labels": self.accelerator_labels,
            "taints": [{"key": t.key, "value": t.value, "effect": "NO_SCHEDULE"} for t in self.taints]}
        pool: dict[str, Any] = {}
        if args.kind == "nvidia":
            node_config["guest_accelerators"] = [{
                "type": args.accelerator_type, "count": args.accelerator_count,
                "gpu_driver_installation_config": {"gpu_driver_version": args.gpu_driver_version}}]
        if args.kind == "tpu":  # a TPU slice is all or nothing: fixed size, compact placement with its topology
            pool["node_count"] = args.nodes
            if args.tpu_topology:
                pool["placement_policy"] = {"type": "COMPACT", "tpu_topology": args.tpu_topology}
        else:
            pool["initial_node_count"] = args.nodes
            pool["autoscaling"] = {"min_node_count": args.nodes, "max_node_count": args.max_nodes}
        self.accelerator_pool = gcp.container.NodePool(
            f"{name}-accel", name="accelerators", cluster=self.cluster.id, location=args.region,
            node_locations=[args.gpu_zone], project=args.project, node_config=node_config,
            management={"auto_repair": True, "auto_upgrade": True}, **pool,
            opts=_opts(self, provider, ignore_changes=["initialNodeCount"]))
        self.kubeconfig = pulumi.Output.all(self.cluster.name, self.cluster.endpoint,
                                            self.cluster.master_auth).apply(
            lambda a: gke_kubeconfig(a[0], a[1], a[2]))
        self.register_outputs({"cluster": self.cluster.name})


def accelerator_taints(args: GkePartArgs) -> tuple[Taint, ...]:
    """The taints GKE itself puts on GPU and TPU nodes (``nvidia.com/gpu=present`` / ``google.com/tpu=present``),
    written explicitly so the pool carries them whatever the cluster's other pools are."""
    if args.kind == "none":
        return ()
    return (Taint(args.device_resource, "present", "NoSchedule"),)


def gke_kubeconfig(cluster: str, endpoint: str, master_auth: Any) -> str:
    """A kubeconfig that authenticates with ``gke-gcloud-auth-plugin`` (no long-lived credentials in state).
    Source: https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl"""
    ca = (master_auth or {}).get("clusterCaCertificate") if isinstance(master_auth, dict) \
        else getattr(master_auth, "cluster_ca_certificate", None)
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": cluster,
        "clusters": [{"name": cluster, "cluster": {"server": f"https://{endpoint}",
                                                   "certificate-authority-data": ca}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
        "users": [{"name": cluster, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "gke-gcloud-auth-plugin",
            "provideClusterInfo": True, "installHint": "gcloud components install gke-gcloud-auth-plugin"}}}],
    }, sort_keys=True)


class ServingIdentity(pulumi.ComponentResource):
    """Workload Identity for the serving pods: a Google service account that the Kubernetes service account
    ``namespace/ksa`` may impersonate (``roles/iam.workloadIdentityUser`` on that account only), with
    ``roles/storage.objectViewer`` on the model bucket only. No project-level role."""

    def __init__(self, name: str, *, project: str, bucket: pulumi.Input[str], namespace: str, ksa: str,
                 provider: gcp.Provider, depends_on: list[pulumi.Resource] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:gcp:ServingIdentity", name, None, opts)
        self.account = gcp.serviceaccount.Account(f"{name}-serving", account_id=_account_id(name, "serve"),
                                                  display_name=f"mlplan {name}: reads the model bucket",
                                                  project=project, opts=_opts(self, provider))
        gcp.serviceaccount.IAMMember(
            f"{name}-workload-identity", service_account_id=self.account.name, role="roles/iam.workloadIdentityUser",
            member=f"serviceAccount:{project}.svc.id.goog[{namespace}/{ksa}]",
            opts=_opts(self, provider, depends_on=depends_on or []))
        gcp.storage.BucketIAMMember(f"{name}-read-models", bucket=bucket, role=READER_ROLE,
                                    member=self.account.member, opts=_opts(self, provider))
        self.email = self.account.email
        self.register_outputs({"email": self.account.email})


def build_gcp_part(args: GkePartArgs) -> PartOutputs:
    """Every GCP resource of one GKE part, and what the shared Kubernetes layer needs to use the cluster."""
    from stacks.k8s import cluster_provider

    name = gcp_prefix(args.name)
    provider = gcp.Provider(f"gcp-{name}", project=args.project, region=args.region,
                            default_labels={"managed-by": "mlplan"})
    invoke = pulumi.InvokeOutputOptions(provider=provider)
    net = GcpNetwork(name, region=args.region, provider=provider)
    kms_key: pulumi.Output[str] | None = None
    grants: list[pulumi.Resource] = []
    if args.cmek:
        number = gcp.organizations.get_project_output(project_id=args.project, opts=invoke).number
        gcs_agent = gcp.storage.get_project_service_account_output(project=args.project, opts=invoke).email_address
        key = KmsKey(name, region=args.region, protection_level=args.kms_protection_level, provider=provider, agents={
            "gcs": gcs_agent,
            "gke": number.apply(lambda n: f"service-{n}@container-engine-robot.iam.gserviceaccount.com"),
            "gce": number.apply(lambda n: f"service-{n}@compute-system.iam.gserviceaccount.com")})
        kms_key, grants = key.id, list(key.grants)
    bucket = GcsModelBucket(f"{name}-models", bucket_name=args.bucket_name, region=args.region, kms_key=kms_key,
                            labels=_labels(args), provider=provider, depends_on=grants)
    cluster = GkeCluster(name, args=args, network=net, kms_key=kms_key, provider=provider, depends_on=grants)
    identity = ServingIdentity(name, project=args.project, bucket=bucket.name, namespace=args.serving_namespace,
                               ksa=args.serving_service_account, provider=provider, depends_on=[cluster.cluster])
    pools = [cluster.cluster, cluster.system_pool, cluster.accelerator_pool]
    k8s_provider = cluster_provider(f"{name}-k8s", pulumi.Output.secret(cluster.kubeconfig), depends_on=pools)
    gke_labels = {"cloud.google.com/gke-nodepool": "accelerators"}
    if args.kind == "nvidia" and args.accelerator_type:
        gke_labels["cloud.google.com/gke-accelerator"] = args.accelerator_type
    if args.kind == "tpu" and args.accelerator_type:
        gke_labels["cloud.google.com/gke-tpu-accelerator"] = args.accelerator_type
        if args.tpu_topology:
            gke_labels["cloud.google.com/gke-tpu-topology"] = args.tpu_topology
    if args.spot:
        gke_labels["cloud.google.com/gke-spot"] = "true"
    prefix = args.model_prefix.strip("/")
    return PartOutputs(
        provider=k8s_provider,
        model_uri=bucket.name.apply(lambda b: f"gs://{b}/{prefix}" if prefix else f"gs://{b}"),
        service_account_annotations={"iam.gke.io/gcp-service-account": identity.email},
        pod_labels={}, service_annotations=dict(INTERNAL_LB_ANNOTATIONS) if args.internal_lb else {},
        gpu_node_labels={**cluster.accelerator_labels, **gke_labels}, gpu_node_taints=cluster.taints,
        device_resource=args.device_resource, device_plugin=None,
        system_node_labels={"mlplan.dev/pool": "system", "cloud.google.com/gke-nodepool": "system"},
        resources=pools)
