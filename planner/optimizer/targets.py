"""How each part becomes infrastructure: decided once by the planner (``Part.target``), read by every emitter.

The target decides what the stack creates, and so what it costs (a managed Kubernetes control plane, a load
balancer, a NAT gateway ...); see :data:`planner.plan.Target` for the meaning of each value.
"""

from __future__ import annotations

from planner.plan import Target

_MANAGED_K8S: dict[str, Target] = {"aws": "aws-eks", "gcp": "gcp-gke", "azure": "azure-aks"}


def deploy_target(*, placement: str, provider: str, instance: str, runtime: str, nodes: int, replicas: int,
                  gpus_per_replica: int, training: bool) -> Target:
    """``aws-ec2`` only for one inference replica on one single-GPU node (nothing to schedule or scale, so a
    cluster would only add cost); every other cloud part runs on the provider's managed Kubernetes."""
    if runtime == "firmware":
        return "firmware"
    if placement == "edge":
        return "edge-fleet"
    if placement == "on-prem":
        return "local" if instance == "localhost" else "kubeconfig"
    if provider == "aws" and nodes == 1 and replicas == 1 and gpus_per_replica == 1 and not training:
        return "aws-ec2"
    return _MANAGED_K8S[provider]
