"""The Pulumi program behind ``infra/__main__.py``: reads ``plan.yaml`` and instantiates the components.

One function per target (see :mod:`stacks.layout`): AWS (EC2 or EKS), GKE and AKS (:mod:`stacks.gcp`,
:mod:`stacks.azure` through :mod:`stacks.clouds`), an on-prem cluster or an edge fleet (a kubeconfig). Every
cluster part then gets the same Kubernetes objects (:mod:`stacks.manifests`, applied by
:class:`stacks.k8s.ModelServing`), fitted to its cluster through a :class:`stacks.manifests.Context`.

Config (``Pulumi.<stack>.yaml``):

- ``gcp:project``          the GCP project of GKE parts (required when the plan has one)
- ``mlplan:modelBucket``   override the AWS model bucket name (default: the plan's ``names.bucket``)
- ``mlplan:kubeconfig``    SECRET, on-prem cluster kubeconfig: ``pulumi config set --secret mlplan:kubeconfig ...``
- ``mlplan:edgeKubeconfig`` SECRET, the edge fleet's (k3s) kubeconfig
- ``mlplan:cloudEndpoint`` hybrid: the cloud side's private endpoint ``host:port`` as seen from on-prem
- ``mlplan:installKubeRay`` false if the cluster already runs the KubeRay operator (default true)
- ``mlplan:gpuZone``       GKE: the zone of the accelerator pool (default: the region's first zone)

Stack outputs: ``endpoint`` (the plan's way in, ``scheme://host[:port]``), ``endpoints`` (per part), ``plan_id``,
``placement``, ``monthly_cost_usd``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from planner.errors import ArtifactError
from planner.plan import Plan, SystemPool
from serving import fetch
from stacks import layout, manifests
from stacks.manifests import access

GIB = 2**30

#: Zones of the catalog's GCP regions. Source: https://cloud.google.com/compute/docs/regions-zones (zone list).
GKE_ZONES = {
    "us-central1": ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"),
    "us-east4": ("us-east4-a", "us-east4-b", "us-east4-c"),
    "us-west1": ("us-west1-a", "us-west1-b", "us-west1-c"),
    "europe-west4": ("europe-west4-a", "europe-west4-b", "europe-west4-c"),
    "europe-west1": ("europe-west1-b", "europe-west1-c", "europe-west1-d"),
    "europe-west3": ("europe-west3-a", "europe-west3-b", "europe-west3-c"),
    "asia-northeast1": ("asia-northeast1-a", "asia-northeast1-b", "asia-northeast1-c"),
    "asia-southeast1": ("asia-southeast1-a", "asia-southeast1-b", "asia-southeast1-c"),
}
CMEK_CLASSES = ("confidential", "restricted")


def ami_type(resource: str | None) -> str:
    """EKS AMI for the accelerator: the NVIDIA AL2023 AMI (driver included), the Neuron one, or the standard one.

    Source: EKS API Nodegroup.amiType values (AL2023_x86_64_NVIDIA, AL2023_x86_64_NEURON, AL2023_x86_64_STANDARD)."""
    if resource == "aws.amazon.com/neuron":
        return "AL2023_x86_64_NEURON"
    return "AL2023_x86_64_NVIDIA" if resource == "nvidia.com/gpu" else "AL2023_x86_64_STANDARD"


def max_nodes(plan: Plan, info: layout.PartInfo) -> int:
    part = info.part
    return max(part.nodes, plan.serving.max_replicas * layout.nodes_per_replica(part))


def _aws_part(plan: Plan, info: layout.PartInfo, cfg: pulumi.Config) -> dict[str, Any]:
    import pulumi_aws as aws

    from stacks.aws import (
        LBC_SERVICE_ACCOUNT,
        Ec2GpuServer,
        EksGpuCluster,
        EncryptionKey,
        ModelBucket,
        Network,
        NodeGroupSpec,
    )
    from stacks.k8s import AwsLoadBalancerController, KubeRayOperator, NvidiaDevicePlugin, cluster_provider
    from stacks.userdata import docker_user_data

    part = info.part
    region = part.region or ""
    name = part.names.resource_prefix
    provider = aws.Provider(f"aws-{info.key}", region=region,
                            default_tags={"tags": {"managed-by": "mlplan", "mlplan-plan": plan.id[:250]}})
    key = EncryptionKey(name, provider=provider)
    net = Network(name, region=region, provider=provider,
                  eks_cluster_name=name if info.target == "aws-eks" else None)
    override = cfg.get("modelBucket")
    bucket_name = override or part.names.bucket or ""
    bucket = ModelBucket(f"{name}-models", bucket_name=bucket_name, kms_key_arn=key.arn, provider=provider)
    model_uri = f"s3://{override}/{fetch.dir_name(plan)}" if override else None
    if info.target == "aws-ec2":
        server = Ec2GpuServer(name, network=net, instance_type=part.instance, kms_key_arn=key.arn,
                              bucket_arn=bucket.arn, user_data=docker_user_data(plan, info, model_uri),
                              disk_gib=part.node_disk_gib, dedicated=part.tenancy == "dedicated",
                              port=manifests.SERVE_PORT, provider=provider)
        # reachable from inside the VPC only (no public IP): the private address and the serving port
        return {"url": server.instance.private_ip.apply(lambda ip: f"http://{ip}:{manifests.SERVE_PORT}")}
    cluster = EksGpuCluster(
        name, region=region, network=net, kms_key_arn=key.arn,
        nodes=NodeGroupSpec(instance_type=part.instance, nodes=part.nodes, max_nodes=max_nodes(plan, info),
                            gpus_per_node=part.gpus_per_node, spot=part.purchase == "spot",
                            dedicated=part.tenancy == "dedicated", disk_gib=part.node_disk_gib,
                            ami_type=ami_type(part.device.resource), gpu_taint=part.device.resource or "",
                            accelerator=part.accelerator),
        system=_system_pool(info),
        private_endpoint_only=plan.security.private_networking, bucket_arn=bucket.arn,
        serving_namespace=info.namespace, serving_service_account=info.app,
        irsa_role_name=part.names.role or "", provider=provider)
    k8s_provider = cluster_provider(f"{name}-k8s", pulumi.Output.secret(cluster.kubeconfig),
                                    depends_on=[cluster.node_group, cluster.system_node_group])
    deps: list[pulumi.Resource] = [AwsLoadBalancerController(
        f"{name}-lb-controller", provider=k8s_provider, cluster_name=cluster.cluster.name, region=region,
        vpc_id=cluster.vpc_id, role_arn=cluster.lb_controller_role.arn, service_account=LBC_SERVICE_ACCOUNT)]
    if part.device.resource == "nvidia.com/gpu":
        deps.append(NvidiaDevicePlugin(f"{name}-device-plugin", provider=k8s_provider))
    if manifests.needs_kuberay(plan, info):
        deps.append(KubeRayOperator(f"{name}-kuberay", provider=k8s_provider,
                                    node_selector={"mlplan.dev/pool": "system"}))
    ctx = manifests.Context(model_uri=model_uri,
                            service_account_annotations={"eks.amazonaws.com/role-arn": cluster.serving_role.arn})
    return {"provider": k8s_provider, "deps": deps, "ctx": ctx}


def _system_pool(info: layout.PartInfo) -> SystemPool:
    pool = info.part.system_pool
    if pool is None:
        raise ArtifactError(f"part {info.key} ({info.target}) has no system pool in its plan",
                            fix="re-run mlplan plan with this version of mlplan")
    return pool


def gke_args(plan: Plan, info: layout.PartInfo, project: str, gpu_zone: str | None) -> Any:
    """The plan's GKE part as :class:`stacks.gcp.GkePartArgs` (region and zones inside the plan's region)."""
    from stacks.gcp import GkePartArgs, gke_accelerator_type

    part = info.part
    region = part.region or ""
    if part.tenancy == "dedicated":
        raise ArtifactError(f"part {info.key}: dedicated (sole-tenant) GKE node pools are not emitted",
                            fix="keep restricted data on AWS dedicated tenancy or on-prem, or relax the data class")
    zones = GKE_ZONES.get(region)
    if zones is None:
        raise ArtifactError(f"part {info.key}: no zone list for GCP region {region}",
                            fix="add the region's zones to stacks.program.GKE_ZONES with its source")
    acc_type = gke_accelerator_type(part.accelerator) if part.device.resource else None
    return GkePartArgs(
        name=part.names.resource_prefix, project=project, region=region, zones=zones,
        machine_type=part.instance, accelerator_type=acc_type, accelerator_count=part.gpus_per_node,
        accelerator=part.accelerator, nodes=part.nodes, max_nodes=max_nodes(plan, info),
        bucket_name=part.names.bucket or "", model_prefix=fetch.dir_name(plan), serving_namespace=info.namespace,
        serving_service_account=info.app, spot=part.purchase == "spot", disk_gib=part.node_disk_gib,
        private=plan.security.private_networking, cmek=part.data_class in CMEK_CLASSES,
        internal_lb=access.internal(part), labels={"mlplan-spec": plan.names.stack},
        accelerator_zone=gpu_zone if gpu_zone in zones else None,
        system_machine_type=_system_pool(info).machine, system_nodes=_system_pool(info).nodes,
        system_disk_gib=_system_pool(info).disk_gib)


def aks_args(plan: Plan, info: layout.PartInfo) -> Any:
    """The plan's AKS part as :class:`stacks.azure.AksPartArgs`."""
    from stacks.azure import AksPartArgs

    part = info.part
    if not part.names.storage_account:
        raise ArtifactError(f"part {info.key} has no Azure storage account name",
                            fix="re-run mlplan plan with this version of mlplan")
    return AksPartArgs(
        name=part.names.resource_prefix, location=part.region or "", zones=(), vm_size=part.instance,
        gpus_per_node=part.gpus_per_node, gpu_vendor="amd" if part.device.vendor == "amd" else "nvidia",
        accelerator=part.accelerator, nodes=part.nodes, max_nodes=max_nodes(plan, info),
        storage_account=part.names.storage_account, container=fetch.AZURE_CONTAINER,
        model_prefix=fetch.dir_name(plan), serving_namespace=info.namespace, serving_service_account=info.app,
        spot=part.purchase == "spot", disk_gib=part.node_disk_gib, private=plan.security.private_networking,
        cmk=part.data_class in CMEK_CLASSES, dedicated=part.tenancy == "dedicated",
        internal_lb=access.internal(part), tags={"mlplan-spec": plan.names.stack},
        system_vm_size=_system_pool(info).machine, system_nodes=_system_pool(info).nodes,
        system_disk_gib=_system_pool(info).disk_gib)


def _cloud_part(plan: Plan, info: layout.PartInfo, cfg: pulumi.Config) -> dict[str, Any]:
    """A GKE or AKS part: the cloud's stack, its add-ons, and the Context that fits the shared manifests to it."""
    from stacks.clouds import build_cloud_part, install_cluster_addons

    if info.target == "gcp-gke":
        args = gke_args(plan, info, pulumi.Config("gcp").require("project"), cfg.get("gpuZone"))
    else:
        args = aks_args(plan, info)
    out = build_cloud_part(args)
    deps = install_cluster_addons(info.part.names.resource_prefix, out, kuberay=manifests.needs_kuberay(plan, info))
    ctx = manifests.Context(service_account_annotations=dict(out.service_account_annotations),
                            pod_labels=dict(out.pod_labels), lb_annotations=dict(out.service_annotations) or None,
                            extra_tolerations=tuple(t for t in out.tolerations()
                                                    if t["key"] != info.part.device.resource))
    return {"provider": out.provider, "deps": deps, "ctx": ctx}


def _cluster_part(plan: Plan, info: layout.PartInfo, cfg: pulumi.Config) -> dict[str, Any]:
    from stacks.k8s import KubeRayOperator, cluster_provider

    secret = "kubeconfig" if info.target == "kubeconfig" else "edgeKubeconfig"
    name = info.part.names.resource_prefix
    provider = cluster_provider(f"{name}-k8s", cfg.require_secret(secret))
    deps: list[pulumi.Resource] = []
    if manifests.needs_kuberay(plan, info) and cfg.get_bool("installKubeRay") is not False:
        deps.append(KubeRayOperator(f"{name}-kuberay", provider=provider))
    return {"provider": provider, "deps": deps, "ctx": manifests.Context(cloud_endpoint=cfg.get("cloudEndpoint"))}


def build(plan: Plan) -> None:
    """Instantiate every component the plan needs (called inside a Pulumi program, on a plan the folder loader
    has verified against its spec)."""
    from stacks.k8s import ModelServing

    cfg = pulumi.Config("mlplan")
    infos = layout.parts(plan)
    sides: dict[str, dict[str, Any]] = {}
    for info in infos:
        if info.target in ("aws-eks", "aws-ec2"):
            sides[info.key] = _aws_part(plan, info, cfg)
        elif info.target in ("gcp-gke", "azure-aks"):
            sides[info.key] = _cloud_part(plan, info, cfg)
        elif info.target in ("kubeconfig", "edge-fleet"):
            sides[info.key] = _cluster_part(plan, info, cfg)
    contexts = {k: v["ctx"] for k, v in sides.items() if "ctx" in v}
    rendered = manifests.render(plan, contexts)
    urls: dict[str, pulumi.Output[str]] = {k: v["url"] for k, v in sides.items() if "url" in v}
    for info in infos:
        side = sides.get(info.key)
        if info.key not in rendered or not side or "provider" not in side:
            continue
        objs = rendered[info.key]
        serving = ModelServing(f"{info.part.names.resource_prefix}-serving", objs=objs, provider=side["provider"],
                               depends_on=side["deps"], endpoint=access.endpoint(info, objs))
        if serving.endpoint is not None:
            urls[info.key] = serving.endpoint
    entry = next((i.key for i in infos if i.key in urls and i.part.routing != "marked-public"), None)
    if entry is not None:
        pulumi.export("endpoint", urls[entry])
    pulumi.export("endpoints", urls)
    pulumi.export("plan_id", plan.id)
    pulumi.export("placement", plan.placement)
    pulumi.export("monthly_cost_usd", plan.monthly_cost_usd)


def run(plan_file: str | Path) -> None:
    """Entry point of ``infra/__main__.py``: load and verify the plan folder (marker hashes, the spec copy, the
    plan against the spec), then build."""
    from stacks.folder import load_folder

    build(load_folder(Path(plan_file).parent).plan)
