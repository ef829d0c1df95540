"""The Pulumi program behind ``infra/__main__.py``: reads ``plan.yaml`` and instantiates the components.

One function per target (see :mod:`stacks.layout`). Config (``Pulumi.<stack>.yaml``, namespace ``mlplan``):

- ``mlplan:modelBucket``   override the model bucket name (default: the plan's ``names.bucket``)
- ``mlplan:kubeconfig``    SECRET, on-prem cluster kubeconfig: ``pulumi config set --secret mlplan:kubeconfig ...``
- ``mlplan:edgeKubeconfig`` SECRET, the edge fleet's (k3s) kubeconfig
- ``mlplan:cloudEndpoint`` hybrid: the cloud side's private endpoint ``host:port`` as seen from on-prem
- ``mlplan:installKubeRay`` false if the cluster already runs the KubeRay operator (default true)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from planner.plan import Plan
from stacks import layout, manifests
from stacks.aws import Ec2GpuServer, EksGpuCluster, EncryptionKey, ModelBucket, Network, NodeGroupSpec
from stacks.k8s import KubeRayOperator, ModelServing, NvidiaDevicePlugin, cluster_provider
from stacks.userdata import docker_user_data

GIB = 2**30


def node_disk_gib(plan: Plan, info: layout.PartInfo) -> int:
    """Root volume: the weights per node twice (image layers + emptyDir copy) plus 100 GiB for images."""
    per_node = manifests.weights_bytes(plan, info.part) / layout.nodes_per_replica(info.part)
    pods_per_node = max(1, info.part.gpus_per_node // max(1, layout.gpus_per_pod(info.part)))
    return int(min(16000, 100 + 2 * per_node * pods_per_node / GIB))


def ami_type(resource: str | None) -> str:
    """EKS AMI for the accelerator: the NVIDIA AL2023 AMI (driver included) or the Neuron one.

    Source: EKS API Nodegroup.amiType values (AL2023_x86_64_NVIDIA, AL2023_x86_64_NEURON)."""
    return "AL2023_x86_64_NEURON" if resource == "aws.amazon.com/neuron" else "AL2023_x86_64_NVIDIA"


def _aws_part(plan: Plan, info: layout.PartInfo, cfg: pulumi.Config, pair: Any) -> dict[str, Any]:
    part = info.part
    region = part.region or ""
    name = part.names.resource_prefix
    provider = aws.Provider(f"aws-{info.key}", region=region,
                            default_tags={"tags": {"managed-by": "mlplan", "mlplan-plan": plan.id[:250]}})
    key = EncryptionKey(name, provider=provider)
    net = Network(name, region=region, provider=provider,
                  eks_cluster_name=name if info.target == "aws-eks" else None)
    bucket_name = cfg.get("modelBucket") or part.names.bucket or ""
    bucket = ModelBucket(f"{name}-models", bucket_name=bucket_name, kms_key_arn=key.arn, provider=provider)
    model_uri = f"s3://{bucket_name}/{plan.model.name}"
    if info.target == "aws-ec2":
        Ec2GpuServer(name, network=net, instance_type=part.instance, kms_key_arn=key.arn, bucket_arn=bucket.arn,
                     user_data=docker_user_data(plan, info, model_uri), disk_gib=node_disk_gib(plan, info),
                     dedicated=part.tenancy == "dedicated", port=manifests.SERVE_PORT, provider=provider)
        return {}
    max_nodes = max(part.nodes, plan.serving.max_replicas * layout.nodes_per_replica(part))
    cluster = EksGpuCluster(
        name, region=region, network=net, kms_key_arn=key.arn,
        nodes=NodeGroupSpec(instance_type=part.instance, nodes=part.nodes, max_nodes=max_nodes,
                            gpus_per_node=part.gpus_per_node, spot=part.purchase == "spot",
                            dedicated=part.tenancy == "dedicated", disk_gib=node_disk_gib(plan, info),
                            ami_type=ami_type(part.device.resource), gpu_taint=part.device.resource or ""),
        private_endpoint_only=plan.security.private_networking, bucket_arn=bucket.arn,
        serving_namespace=info.namespace, serving_service_account=info.app,
        irsa_role_name=part.names.role or "", provider=provider)
    k8s_provider = cluster_provider(f"{name}-k8s", pulumi.Output.secret(cluster.kubeconfig),
                                    depends_on=[cluster.node_group])
    deps: list[pulumi.Resource] = []
    if part.device.resource == "nvidia.com/gpu":
        deps.append(NvidiaDevicePlugin(f"{name}-device-plugin", provider=k8s_provider))
    if manifests.needs_kuberay(plan, info):
        deps.append(KubeRayOperator(f"{name}-kuberay", provider=k8s_provider))
    return {"provider": k8s_provider, "deps": deps,
            "ctx": manifests.Context(model_uri=model_uri, service_account_role_arn=cluster.serving_role.arn)}


def _cluster_part(plan: Plan, info: layout.PartInfo, cfg: pulumi.Config) -> dict[str, Any]:
    secret = "kubeconfig" if info.target == "kubeconfig" else "edgeKubeconfig"
    name = info.part.names.resource_prefix
    provider = cluster_provider(f"{name}-k8s", cfg.require_secret(secret))
    deps: list[pulumi.Resource] = []
    if manifests.needs_kuberay(plan, info) and cfg.get_bool("installKubeRay") is not False:
        deps.append(KubeRayOperator(f"{name}-kuberay", provider=provider))
    return {"provider": provider, "deps": deps,
            "ctx": manifests.Context(model_uri=plan.model.artifact, cloud_endpoint=cfg.get("cloudEndpoint"))}


def build(plan: Plan) -> None:
    """Instantiate every component the plan needs (called inside a Pulumi program, on a plan the folder loader
    has verified against its spec)."""
    cfg = pulumi.Config("mlplan")
    infos = layout.parts(plan)
    pair = manifests.hybrid_local_remote(infos) if plan.placement == "hybrid" else None
    sides: dict[str, dict[str, Any]] = {}
    for info in infos:
        if info.target in ("aws-eks", "aws-ec2"):
            sides[info.key] = _aws_part(plan, info, cfg, pair)
        elif info.target in ("kubeconfig", "edge-fleet"):
            sides[info.key] = _cluster_part(plan, info, cfg)
        elif info.target in ("gcp-gke", "azure-aks"):
            pulumi.log.warn(f"part {info.key}: {info.part.provider} is not generated as IaC (AWS only); "
                            "apply k8s/*.yaml to your cluster instead")
    contexts = {k: v["ctx"] for k, v in sides.items() if "ctx" in v}
    rendered = manifests.render(plan, contexts)
    for key, objs in rendered.items():
        side = sides.get(key)
        if not side or "provider" not in side:
            continue
        name = next(i.part.names.resource_prefix for i in infos if i.key == key)
        ModelServing(f"{name}-serving", objs=objs, provider=side["provider"], depends_on=side["deps"])
    pulumi.export("plan_id", plan.id)
    pulumi.export("placement", plan.placement)
    pulumi.export("monthly_cost_usd", plan.monthly_cost_usd)


def run(plan_file: str | Path) -> None:
    """Entry point of ``infra/__main__.py``: load and verify the plan folder (marker hashes, the spec copy, the
    plan against the spec), then build."""
    from stacks.folder import load_folder

    build(load_folder(Path(plan_file).parent).plan)
