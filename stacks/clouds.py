"""GKE and AKS parts: what the GCP and Azure stacks hand to the shared Kubernetes layer, and how to call them.

The cloud-specific infrastructure lives in :mod:`stacks.gcp` (``build_gcp_part``) and :mod:`stacks.azure`
(``build_azure_part``). Both take explicit frozen dataclasses (:class:`stacks.gcp.GkePartArgs`,
:class:`stacks.azure.AksPartArgs`), never the Plan, and return one :class:`PartOutputs`: the Kubernetes provider of
the new cluster plus everything the shared manifests (:mod:`stacks.manifests`) need to fit that cluster.

The lead's Pulumi program calls, per GCP/Azure part::

    out = build_cloud_part(args)                                  # GkePartArgs or AksPartArgs
    deps = install_cluster_addons(name, out, kuberay=manifests.needs_kuberay(plan, info))
    ctx = manifests.Context(model_uri=out.model_uri, ...)         # plus out.service_account_annotations etc.
    ModelServing(f"{name}-serving", objs=..., provider=out.provider, depends_on=deps)

This module also holds the offline-preview stand-ins for GCP and Azure (:func:`fake_outputs`, :func:`mock_invoke`):
outputs a real create or data-source call would return (a GKE endpoint, an AKS OIDC issuer, a managed identity's
client id, a project number), so :mod:`stacks.preview` can run these components without a cloud.

No Pulumi import at module level: ``import stacks.clouds`` stays cheap.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pulumi
    import pulumi_kubernetes as k8s

    from stacks.azure import AksPartArgs
    from stacks.gcp import GkePartArgs


def gke_account_id(prefix: str, suffix: str) -> str:
    """A Google service-account id: 6-30 chars, ``[a-z][a-z0-9-]*[a-z0-9]``, unique per prefix (the GKE stack's
    node and serving accounts; the manifests name the serving one in the ServiceAccount's annotation)."""
    from planner.names import dns_label, short_hash

    digest = short_hash(prefix, 6)
    head = dns_label(prefix, 30 - len(suffix) - len(digest) - 2)
    out = f"{head}-{digest}-{suffix}"
    return out if out[0].isalpha() else f"m{out[1:]}"


def gke_serving_account_email(resource_prefix: str, project: str) -> str:
    """The e-mail of the serving Google service account of a GKE part named ``resource_prefix``."""
    from planner.names import gcp_prefix

    return f"{gke_account_id(gcp_prefix(resource_prefix), 'serve')}@{project}.iam.gserviceaccount.com"


@dataclass(frozen=True)
class Taint:
    """A node taint as Kubernetes writes it (``effect`` is ``NoSchedule`` / ``NoExecute`` / ``PreferNoSchedule``)."""

    key: str
    value: str
    effect: str = "NoSchedule"

    def toleration(self) -> dict[str, str]:
        """The pod toleration that matches this taint (``Exists``: any value)."""
        return {"key": self.key, "operator": "Exists", "effect": self.effect}


@dataclass(frozen=True)
class PartOutputs:
    """What one GKE/AKS part gives the shared Kubernetes layer.

    - ``provider``: a ``pulumi_kubernetes.Provider`` for the new cluster (its kubeconfig is a secret Output);
    - ``model_uri``: where the weights live (``gs://bucket/prefix`` or
      ``https://<account>.blob.core.windows.net/<container>/<prefix>``);
    - ``service_account_annotations``: on the serving ServiceAccount, for workload identity
      (GKE ``iam.gke.io/gcp-service-account``; AKS ``azure.workload.identity/client-id``);
    - ``pod_labels``: on the serving pods (AKS: ``azure.workload.identity/use: "true"``, without which the webhook
      injects no token; GKE: none);
    - ``service_annotations``: on a ``LoadBalancer`` Service, making it internal (empty when the data class asks
      for none);
    - ``gpu_node_labels`` / ``gpu_node_taints``: what the accelerator pool's nodes carry; pods that run there need a
      nodeSelector from the labels and a toleration for every taint (AKS Spot pools add their own taint);
    - ``device_resource``: the extended resource pods request (``nvidia.com/gpu``, ``amd.com/gpu``,
      ``google.com/tpu``);
    - ``device_plugin``: which device plugin the stack must install itself (``nvidia``, ``amd``) or ``None`` when the
      platform runs one (GKE installs NVIDIA drivers and its own device plugin; TPUs likewise);
    - ``system_node_labels``: the system pool's labels (CoreDNS, operators, the Ray head);
    - ``resources``: the cluster and node pools, to ``depends_on`` before anything is applied to the cluster.
    """

    provider: k8s.Provider
    model_uri: pulumi.Output[str]
    service_account_annotations: Mapping[str, pulumi.Input[str]]
    pod_labels: Mapping[str, str]
    service_annotations: Mapping[str, str]
    gpu_node_labels: Mapping[str, str]
    gpu_node_taints: tuple[Taint, ...]
    device_resource: str
    device_plugin: str | None
    system_node_labels: Mapping[str, str] = field(default_factory=dict)
    resources: Sequence[pulumi.Resource] = ()

    def tolerations(self) -> list[dict[str, str]]:
        """Tolerations a pod needs to run on the accelerator pool."""
        return [t.toleration() for t in self.gpu_node_taints]


def build_cloud_part(args: GkePartArgs | AksPartArgs) -> PartOutputs:
    """Dispatch to the cloud of ``args`` (imports only that cloud's Pulumi package: a GkePartArgs exists only once
    stacks.gcp is imported)."""
    import sys

    gcp_module = sys.modules.get("stacks.gcp")
    if gcp_module is not None and isinstance(args, gcp_module.GkePartArgs):
        from stacks.gcp import build_gcp_part

        return build_gcp_part(args)
    from stacks.azure import AksPartArgs, build_azure_part

    assert isinstance(args, AksPartArgs)
    return build_azure_part(args)


def install_cluster_addons(name: str, out: PartOutputs, *, kuberay: bool) -> list[pulumi.Resource]:
    """The device plugin the cluster lacks (from :mod:`stacks.k8s`) and, when asked, the KubeRay operator.

    Returns what the serving manifests must depend on. The device-plugin DaemonSet tolerates every taint of the
    accelerator pool (so it also lands on AKS Spot nodes)."""
    import pulumi

    from stacks.k8s import AmdDevicePlugin, KubeRayOperator, NvidiaDevicePlugin

    opts = pulumi.ResourceOptions(depends_on=list(out.resources))
    deps: list[pulumi.Resource] = []
    extra = [t.toleration() for t in out.gpu_node_taints]
    if out.device_plugin == "nvidia":
        deps.append(NvidiaDevicePlugin(f"{name}-device-plugin", provider=out.provider, extra_tolerations=extra,
                                       opts=opts))
    elif out.device_plugin == "amd":
        deps.append(AmdDevicePlugin(f"{name}-amd-device-plugin", provider=out.provider, extra_tolerations=extra,
                                    opts=opts))
    if kuberay:
        deps.append(KubeRayOperator(f"{name}-kuberay", provider=out.provider, opts=opts))
    return deps


# --------------------------------------------------------------------------------- offline preview stand-ins

MOCK_GCP_PROJECT_NUMBER = "123456789012"
MOCK_AZURE_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
MOCK_AZURE_TENANT = "11111111-1111-1111-1111-111111111111"
MOCK_AZURE_OBJECT_ID = "22222222-2222-2222-2222-222222222222"
_MOCK_CA = base64.b64encode(b"MOCK-CA").decode()


def _mock_kubeconfig(server: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": "mock",
                       "clusters": [{"name": "mock", "cluster": {"server": server,
                                                                 "certificate-authority-data": _MOCK_CA}}],
                       "contexts": [{"name": "mock", "context": {"cluster": "mock", "user": "mock"}}],
                       "users": [{"name": "mock", "user": {"token": "mock"}}]})


def fake_outputs(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """Outputs a real GCP / Azure create would return for ``typ`` (None: not a GCP or Azure type)."""
    if typ.startswith("gcp:"):
        return _gcp_outputs(typ, name, dict(inputs))
    if typ.startswith("azure-native:"):
        return _azure_outputs(typ, name, dict(inputs))
    return None


def _gcp_outputs(typ: str, name: str, out: dict[str, Any]) -> dict[str, Any]:
    project = str(out.get("project") or "mock-project")
    out.setdefault("name", name)
    if typ == "gcp:container/cluster:Cluster":
        out["endpoint"] = "10.0.0.2"
        out["masterAuth"] = {"clusterCaCertificate": _MOCK_CA}
        out["selfLink"] = f"https://container.googleapis.com/v1/projects/{project}/locations/{out.get('location')}" \
                          f"/clusters/{out['name']}"
    elif typ == "gcp:serviceaccount/account:Account":
        email = f"{out.get('accountId', name)}@{project}.iam.gserviceaccount.com"
        out["email"] = email
        out["member"] = f"serviceAccount:{email}"
        out["name"] = f"projects/{project}/serviceAccounts/{email}"
    elif typ == "gcp:kms/keyRing:KeyRing":
        out["id"] = f"projects/{project}/locations/{out.get('location')}/keyRings/{out['name']}"
    elif typ == "gcp:storage/bucket:Bucket":
        out["url"] = f"gs://{out['name']}"
        out["selfLink"] = f"https://www.googleapis.com/storage/v1/b/{out['name']}"
    elif typ in ("gcp:compute/network:Network", "gcp:compute/subnetwork:Subnetwork"):
        out["selfLink"] = f"https://www.googleapis.com/compute/v1/projects/{project}/{out['name']}"
    return out


#: The input that carries the ARM name of each Azure type (azure-native names it per type); ``name`` echoes it.
_AZURE_NAME_INPUT = {"resources:ResourceGroup": "resourceGroupName", "network:VirtualNetwork": "virtualNetworkName",
                     "network:Subnet": "subnetName", "keyvault:Vault": "vaultName", "keyvault:Key": "keyName",
                     "storage:StorageAccount": "accountName", "storage:BlobContainer": "containerName",
                     "managedidentity:UserAssignedIdentity": "resourceName",
                     "managedidentity:FederatedIdentityCredential": "federatedIdentityCredentialResourceName",
                     "containerservice:ManagedCluster": "resourceName", "containerservice:AgentPool": "agentPoolName",
                     "compute:DiskEncryptionSet": "diskEncryptionSetName",
                     "compute:DedicatedHostGroup": "hostGroupName",
                     "compute:DedicatedHost": "hostName"}


def _azure_outputs(typ: str, name: str, out: dict[str, Any]) -> dict[str, Any]:
    key = _AZURE_NAME_INPUT.get(typ.removeprefix("azure-native:"))
    out["name"] = str(out.get(key) or name) if key else out.get("name", name)
    identity = out.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
        # ARM takes a list of identity ids and answers a map id -> {principalId, clientId}
        out["identity"] = {**identity, "userAssignedIdentities": {
            str(i): {"principalId": f"mock-principal-{n}", "clientId": f"mock-client-{n}"}
            for n, i in enumerate(identity["userAssignedIdentities"])}}
    if typ == "azure-native:containerservice:ManagedCluster":
        out["oidcIssuerProfile"] = {**(out.get("oidcIssuerProfile") or {}),
                                    "issuerURL": f"https://{out.get('location')}.oic.prod-aks.azure.com/"
                                                 f"{MOCK_AZURE_TENANT}/{name}/"}
        out["fqdn"] = f"{name}.hcp.{out.get('location')}.azmk8s.io"
        out["privateFQDN"] = f"{name}.privatelink.{out.get('location')}.azmk8s.io"
    elif typ == "azure-native:managedidentity:UserAssignedIdentity":
        out["clientId"] = f"mock-client-id-{name}"
        out["principalId"] = f"mock-principal-id-{name}"
        out["tenantId"] = MOCK_AZURE_TENANT
    elif typ == "azure-native:keyvault:Vault":
        out["properties"] = {**(out.get("properties") or {}), "vaultUri": f"https://{out.get('vaultName', name)}"
                                                                         f".vault.azure.net/"}
    elif typ == "azure-native:keyvault:Key":
        out["keyUri"] = f"https://mock.vault.azure.net/keys/{out.get('keyName', name)}"
        out["keyUriWithVersion"] = f"{out['keyUri']}/0123456789abcdef"
    elif typ == "azure-native:compute:DiskEncryptionSet":
        out["identity"] = {**(out.get("identity") or {}), "principalId": f"mock-principal-id-{name}"}
    return out


def mock_invoke(token: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a GCP / Azure data source returns under the offline preview (None: not one of these)."""
    if token == "gcp:organizations/getProject:getProject":
        project = str(args.get("projectId") or "mock-project")
        return {"projectId": project, "number": MOCK_GCP_PROJECT_NUMBER, "name": project, "id": f"projects/{project}"}
    if token == "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":
        email = f"service-{MOCK_GCP_PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com"
        return {"emailAddress": email, "member": f"serviceAccount:{email}", "id": email,
                "project": args.get("project") or "mock-project"}
    if token == "azure-native:authorization:getClientConfig":
        return {"clientId": "mock-deployer", "objectId": MOCK_AZURE_OBJECT_ID,
                "subscriptionId": MOCK_AZURE_SUBSCRIPTION,
                "tenantId": MOCK_AZURE_TENANT}
    if token == "azure-native:containerservice:listManagedClusterUserCredentials":
        server = f"https://{args.get('resourceName', 'aks')}.hcp.mock.azmk8s.io:443"
        value = base64.b64encode(_mock_kubeconfig(server).encode()).decode()
        return {"kubeconfigs": [{"name": "clusterUser", "value": value}]}
    return None
