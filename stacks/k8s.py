"""Kubernetes building blocks as Pulumi ComponentResources (pulumi-kubernetes 4.x).

The objects themselves come from :mod:`stacks.manifests` (the same dicts written to ``k8s/*.yaml``) and are
applied with ``pulumi_kubernetes.yaml.v2.ConfigGroup(objs=...)``, so the stack and the rendered manifests never
disagree. Operators come from their upstream Helm charts, pinned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

#: KubeRay operator chart. Source: https://ray-project.github.io/kuberay-helm/ (chart kuberay-operator).
KUBERAY_REPO = "https://ray-project.github.io/kuberay-helm/"
KUBERAY_VERSION = "1.4.2"
#: NVIDIA device plugin chart (advertises nvidia.com/gpu). Source: https://github.com/NVIDIA/k8s-device-plugin
DEVICE_PLUGIN_REPO = "https://nvidia.github.io/k8s-device-plugin"
DEVICE_PLUGIN_VERSION = "0.17.1"
#: AMD GPU device plugin chart (advertises amd.com/gpu). Source: https://github.com/ROCm/k8s-device-plugin
#: (helm/amd-gpu/Chart.yaml version 0.16.0, appVersion 1.31.0.2; values: node_selector_enabled, node_selector,
#: tolerations).
AMD_DEVICE_PLUGIN_REPO = "https://rocm.github.io/k8s-device-plugin/"
AMD_DEVICE_PLUGIN_VERSION = "0.16.0"
#: AWS Load Balancer Controller chart (runs the NLBs of Services of type LoadBalancer). Source:
#: https://github.com/aws/eks-charts (chart aws-load-balancer-controller 1.14.0, controller v2.14.0).
LBC_REPO = "https://aws.github.io/eks-charts"
LBC_VERSION = "1.14.0"
#: The system pool's label: operators run there, never on the tainted accelerator nodes.
SYSTEM_NODE_SELECTOR = {"mlplan.dev/pool": "system"}


def cluster_provider(name: str, kubeconfig: pulumi.Input[str], parent: pulumi.Resource | None = None,
                     depends_on: Sequence[pulumi.Resource] = ()) -> k8s.Provider:
    """A provider for one cluster. ``kubeconfig`` is a secret Output (config.require_secret or EKS output)."""
    return k8s.Provider(name, kubeconfig=kubeconfig, enable_server_side_apply=True,
                        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)))


class KubeRayOperator(pulumi.ComponentResource):
    """The KubeRay operator (RayService / RayCluster / RayJob CRDs and controller), from its Helm chart."""

    def __init__(self, name: str, *, provider: k8s.Provider, node_selector: dict[str, str] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:k8s:KubeRayOperator", name, None, opts)
        node_selector = node_selector or {}
        self.release = k8s.helm.v3.Release(
            name, name="kuberay-operator", chart="kuberay-operator", version=KUBERAY_VERSION,
            repository_opts={"repo": KUBERAY_REPO}, namespace="kuberay-system", create_namespace=True,
            atomic=True, values={"resources": {"requests": {"cpu": "100m", "memory": "512Mi"},
                                               "limits": {"cpu": "500m", "memory": "512Mi"}},
                                 "nodeSelector": dict(node_selector)},
            opts=pulumi.ResourceOptions(parent=self, provider=provider))
        self.register_outputs({"status": self.release.status})


class NvidiaDevicePlugin(pulumi.ComponentResource):
    """The NVIDIA device plugin DaemonSet on GPU nodes (the AL2023 NVIDIA AMI ships the driver, not the plugin)."""

    def __init__(self, name: str, *, provider: k8s.Provider, extra_tolerations: Sequence[dict[str, str]] = (),
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:k8s:NvidiaDevicePlugin", name, None, opts)
        tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        tolerations += [t for t in extra_tolerations if t not in tolerations]
        self.release = k8s.helm.v3.Release(
            name, name="nvidia-device-plugin", chart="nvidia-device-plugin", version=DEVICE_PLUGIN_VERSION,
            repository_opts={"repo": DEVICE_PLUGIN_REPO}, namespace="nvidia-device-plugin",
            create_namespace=True, atomic=True,
            values={"nodeSelector": {"mlplan.dev/gpu": "true"},
                    "tolerations": tolerations},
            opts=pulumi.ResourceOptions(parent=self, provider=provider))
        self.register_outputs({"status": self.release.status})


class AmdDevicePlugin(pulumi.ComponentResource):
    """The ROCm device plugin DaemonSet (advertises ``amd.com/gpu``) on the AMD GPU nodes (``mlplan.dev/gpu``)."""

    def __init__(self, name: str, *, provider: k8s.Provider, extra_tolerations: Sequence[dict[str, str]] = (),
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:k8s:AmdDevicePlugin", name, None, opts)
        tolerations = [{"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        tolerations += [t for t in extra_tolerations if t not in tolerations]
        self.release = k8s.helm.v3.Release(
            name, name="amd-gpu", chart="amd-gpu", version=AMD_DEVICE_PLUGIN_VERSION,
            repository_opts={"repo": AMD_DEVICE_PLUGIN_REPO}, namespace="kube-amd-gpu", create_namespace=True,
            atomic=True,
            values={"node_selector_enabled": True, "node_selector": {"mlplan.dev/gpu": "true"},
                    "tolerations": tolerations},
            opts=pulumi.ResourceOptions(parent=self, provider=provider))
        self.register_outputs({"status": self.release.status})


class AwsLoadBalancerController(pulumi.ComponentResource):
    """The AWS Load Balancer Controller (NLBs for Services of type LoadBalancer, from their annotations), on the
    system pool, running as the IRSA role ``role_arn``."""

    def __init__(self, name: str, *, provider: k8s.Provider, cluster_name: pulumi.Input[str], region: str,
                 vpc_id: pulumi.Input[str], role_arn: pulumi.Input[str], service_account: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:k8s:AwsLoadBalancerController", name, None, opts)
        self.release = k8s.helm.v3.Release(
            name, name="aws-load-balancer-controller", chart="aws-load-balancer-controller", version=LBC_VERSION,
            repository_opts={"repo": LBC_REPO}, namespace="kube-system", atomic=True,
            values={"clusterName": cluster_name, "region": region, "vpcId": vpc_id, "replicaCount": 2,
                    "serviceAccount": {"create": True, "name": service_account,
                                       "annotations": {"eks.amazonaws.com/role-arn": role_arn}},
                    "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                  "limits": {"cpu": "200m", "memory": "256Mi"}}},
            opts=pulumi.ResourceOptions(parent=self, provider=provider))
        self.register_outputs({"status": self.release.status})


def _field(obj: Any, snake: str, camel: str) -> Any:
    """A field of a typed Pulumi output (property getter) or of a plain dict (either spelling)."""
    if obj is None:
        return None
    value = getattr(obj, snake, None)
    if value is None and isinstance(obj, dict):
        value = obj.get(snake, obj.get(camel)) if snake in obj or camel in obj else None
    return value


def lb_url(status: Any, scheme: str, port: int) -> str:
    """``scheme://host:port`` of a LoadBalancer Service's first ingress, or a note while it has none."""
    ingress = _field(_field(status, "load_balancer", "loadBalancer"), "ingress", "ingress")
    if not ingress:
        return "pending: the load balancer has no address yet (pulumi refresh shows it once it has)"
    first = ingress[0]
    host = _field(first, "hostname", "hostname") or _field(first, "ip", "ip")
    return f"{scheme}://{host}" + ("" if (scheme, port) in (("https", 443), ("http", 80)) else f":{port}")


class ModelServing(pulumi.ComponentResource):
    """Applies one part's manifests (namespace, quota, policies, workload, service, HPA, PDB, RayService) and, when
    the part has a way in, reads its LoadBalancer Service back for the address (``endpoint``)."""

    def __init__(self, name: str, *, objs: list[dict[str, Any]], provider: k8s.Provider,
                 depends_on: Sequence[pulumi.Resource] = (), endpoint: dict[str, Any] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplan:k8s:ModelServing", name, None, opts)
        self.objects = k8s.yaml.v2.ConfigGroup(
            name, objs=objs, opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=list(depends_on)))
        self.endpoint: pulumi.Output[str] | None = None
        if endpoint is not None:
            svc = k8s.core.v1.Service.get(
                f"{name}-endpoint", id=f"{endpoint['namespace']}/{endpoint['service']}",
                opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.objects]))
            scheme, port = str(endpoint["scheme"]), int(endpoint["port"])
            self.endpoint = svc.status.apply(lambda st: lb_url(st, scheme, port))
        self.register_outputs({"objects": [f"{o['kind']}/{o['metadata']['name']}" for o in objs],
                               "endpoint": self.endpoint})
