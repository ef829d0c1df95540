"""How each part of a plan becomes infrastructure: the one place that decides the target per part.

Pure (no Pulumi import), so the plan writer, the manifests builder, the Pulumi program and ``mlplan diff`` all
agree on the same decision:

==================  ==========================================================================================
target              when
==================  ==========================================================================================
``aws-ec2``         AWS part with one node, one replica and one GPU: a single EC2 GPU instance running the
                    serving container (private subnet, IMDSv2, encrypted root volume, SSM instead of SSH)
``aws-eks``         any other AWS part: VPC + EKS + GPU managed node group + KubeRay + the manifests
``kubeconfig``      on-prem part: an existing cluster reached through a kubeconfig (a Pulumi secret)
``edge-fleet``      edge part served by a container runtime: a k3s-style fleet, pods pinned by node labels
``firmware``        microcontroller part: a firmware build plan, no IaC at all
``manifests-only``  GCP / Azure part: plan + Kubernetes manifests only (only the AWS stack is generated)
``local``           on-prem part on ``localhost``: served on this machine by ``mlplan deploy`` (no IaC)
==================  ==========================================================================================
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Literal

from planner.errors import InputError
from planner.plan import Part, Plan

Target = Literal["aws-ec2", "aws-eks", "kubeconfig", "edge-fleet", "firmware", "manifests-only", "local"]

#: Kubernetes targets: the parts whose manifests are rendered into ``k8s/``.
K8S_TARGETS: tuple[Target, ...] = ("aws-eks", "kubeconfig", "edge-fleet", "manifests-only")

_DNS = re.compile(r"[^a-z0-9-]+")

#: AWS region prefix -> geography, as used by ``Constraints.allowed_regions`` (see planner/optimizer/privacy.py).
#: Source: AWS region naming, https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html
_AWS_GEO = {"us": "us", "ca": "ca", "sa": "sa", "eu": "eu", "me": "me", "il": "me", "af": "af", "ap": "apac",
            "cn": "cn", "mx": "us"}


def dns_name(text: str, max_len: int = 63) -> str:
    """A DNS-1123 label from any text (lowercase, ``[a-z0-9-]``, starts and ends alphanumeric)."""
    out = _DNS.sub("-", text.lower()).strip("-")
    out = re.sub(r"-{2,}", "-", out)[:max_len].strip("-")
    return out or "mlplan"


def short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def region_geography(provider: str, region: str) -> str:
    """Geography of a cloud region id (``eu-west-1`` -> ``eu``), from the provider's naming scheme."""
    head = region.split("-", 1)[0].lower()
    if provider == "aws":
        return _AWS_GEO.get(head, head)
    if provider == "gcp":
        return {"us": "us", "northamerica": "us", "southamerica": "sa", "europe": "eu", "asia": "apac",
                "australia": "apac", "me": "me", "africa": "af"}.get(head, head)
    return head


def region_allowed(provider: str, region: str, allowed: tuple[str, ...] | None) -> bool:
    """Same rule as :func:`planner.optimizer.privacy.region_allowed`: id, geography or ``provider:region``."""
    if allowed is None:
        return True
    names = {a.lower() for a in allowed}
    return region.lower() in names or region_geography(provider, region) in names or f"{provider}:{region}" in names


def check_residency(plan: Plan) -> None:
    """Refuse a plan whose cloud parts lie outside its own residency set (``security.allowed_regions``).

    The optimizer never produces one; a hand-edited or tampered ``plan.yaml`` can. Every emitter that turns a
    plan into infrastructure calls this first (the manifests and the Pulumi program), so such a plan yields no
    folder, no manifest and no resource."""
    for info in parts(plan):
        p = info.part
        if p.placement == "cloud" and p.region and not region_allowed(p.provider, p.region,
                                                                       plan.security.allowed_regions):
            raise InputError(f"part {info.key}: region {p.region} is outside allowed_regions "
                             f"{', '.join(plan.security.allowed_regions or ())}",
                             fix="re-plan with a region inside the allowed set")


#: Extended resource each accelerator family's Kubernetes device plugin advertises. Sources: NVIDIA
#: k8s-device-plugin, ROCm k8s-device-plugin (amd.com/gpu), AWS Neuron device plugin, Intel Gaudi device plugin.
def device_resource(accelerator: str) -> str:
    """The pod resource name for ``accelerator`` (see :func:`serving.hardware.device_resource`)."""
    from serving.hardware import device_resource as resource

    return resource(accelerator)


def gpus_per_replica(part: Part) -> int:
    """Accelerators one model replica uses: tensor-parallel degree x pipeline stages."""
    return max(1, part.tensor_parallel * part.pipeline_parallel)


def nodes_per_replica(part: Part) -> int:
    """Nodes one replica spans (a replica larger than a node spreads its pipeline stages over nodes)."""
    if part.gpus_per_node <= 0:
        return 1
    return max(1, math.ceil(gpus_per_replica(part) / part.gpus_per_node))


def gpus_per_pod(part: Part) -> int:
    """GPUs one pod requests: the replica's GPUs on one node (TP degree x PP stages per node); 0 on CPU."""
    if part.gpus_per_node <= 0 or part.accelerator.startswith("cpu"):
        return 0
    return gpus_per_replica(part) // nodes_per_replica(part)


def target(plan: Plan, part: Part) -> Target:
    if part.runtime == "firmware":
        return "firmware"
    if part.placement == "edge":
        return "edge-fleet"
    if part.placement == "on-prem":
        return "local" if part.instance == "localhost" else "kubeconfig"
    if part.provider != "aws":
        return "manifests-only"
    if part.nodes == 1 and part.replicas == 1 and gpus_per_replica(part) == 1 and plan.workload == "inference":
        return "aws-ec2"
    return "aws-eks"


@dataclass(frozen=True)
class PartInfo:
    """Names and target of one part, shared by every emitter (so manifests and IaC name things the same)."""

    index: int
    part: Part
    target: Target
    key: str  # unique per plan: "primary", "sensitive-onprem", ...
    namespace: str
    app: str

    @property
    def uses_k8s(self) -> bool:
        return self.target in K8S_TARGETS


def parts(plan: Plan) -> list[PartInfo]:
    """Every part of the plan with its target and the names the emitters use."""
    base = dns_name(plan.model.name, 40)
    out: list[PartInfo] = []
    multi = len(plan.parts) > 1
    for i, part in enumerate(plan.parts):
        key = dns_name(f"{part.role}-{part.placement}" if multi else part.role, 30)
        out.append(PartInfo(index=i, part=part, target=target(plan, part), key=key,
                            namespace=dns_name(f"mlplan-{base}", 63), app=base))
    return out


def has_iac(plan: Plan) -> bool:
    """False for plans with nothing for Pulumi to create (firmware, localhost): those get no ``infra/``."""
    return any(p.target not in ("firmware", "local") for p in parts(plan))


def stack_name(plan: Plan) -> str:
    """The Pulumi stack name: short, stable for a given placement (``prod`` style names are the user's choice)."""
    return dns_name(f"{plan.placement}-{plan.model.name}", 40)


def model_bucket_name(plan: Plan, region: str) -> str:
    """A deterministic, globally-unique-enough S3 bucket name for the model artifacts of this plan."""
    digest = short_hash(f"{plan.model.name}/{region}")
    return dns_name(f"mlplan-{plan.model.name}-{digest}", 63)


def irsa_role_name(plan: Plan, region: str) -> str:
    """IAM role the serving pods assume (IRSA); a fixed name so manifests can name it before deploy."""
    return dns_name(f"mlplan-{plan.model.name}-{region}-serving", 64)
